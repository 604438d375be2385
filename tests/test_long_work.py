"""Long work says what it does while it works; bad files read by DataLoader workers are one line.

Progress of steps other than training (the dataset classifier, feature passes) goes to standard
error: plain lines when it is not a terminal. A corrupt image reads the same whether a worker
process or the main process decodes it.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import GANZOO, REPO, run_cli
from PIL import Image

from ganzoo.compare import fid_between
from ganzoo.progress import Reporter, track

# how long a finished piece of work took: seconds under a minute, h:mm:ss from a minute on
TOOK = r"(\d+\.\d s|\d+:\d\d:\d\d)"
PIXELS = '''
import torch
from ganzoo.api import Extractor


class Pixels(Extractor):
    """The pixels as features; logits from a fixed map."""

    def __init__(self):
        self.name = "pixels"

    @classmethod
    def build(cls, params, request):
        return cls()

    def protocol(self):
        return {"extractor": "pixels", "features": "the pixels"}

    def __call__(self, images):
        flat = images.flatten(1).float()
        return flat, torch.stack([flat.sum(1), -flat.sum(1)], 1)
'''


@pytest.fixture
def pixels_extractor(plugin_site):
    """A feature extractor plugin that needs no weights: ``--extractor pixels``."""
    return plugin_site(
        "ganzoo-pixels", "0.1", {"ganzoo.extractors": {"pixels": "pixelplug:Pixels"}},
        {"pixelplug": PIXELS},
    )  # fmt: skip


def write_pngs(folder: Path, n: int, seed: int, size: int = 12) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = [folder / f"{i:03d}.png" for i in range(n)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return paths


def corrupt_png(folder: Path) -> Path:
    bad = folder / "007_bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but nothing of an image follows")
    return bad


# --- progress of long steps ---------------------------------------------------------------------


def test_classifier_fid_says_what_it_does_before_it_ends(tmp_path):
    from test_train import write_idx_mnist

    write_idx_mnist(tmp_path / "data", n=128)
    write_pngs(tmp_path / "a", 8, seed=1, size=28)
    write_pngs(tmp_path / "b", 8, seed=2, size=28)
    cache = tmp_path / "cache"
    env = {**os.environ, "NO_COLOR": "1", "GANZOO_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    started = time.monotonic()
    process = subprocess.Popen(
        [GANZOO, "fid", str(tmp_path / "a"), str(tmp_path / "b"), "--extractor",
         "classifier:mnist", "--data-dir", str(tmp_path / "data"), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    try:
        first = lines.get(timeout=60)
        running = process.poll() is None
        waited = time.monotonic() - started
        assert process.stdout is not None
        stdout = process.stdout.read()  # stderr is the reader's alone
        process.wait(timeout=300)
    finally:
        process.kill()
    assert first == (
        "training the mnist classifier (the feature extractor) once: 30 epochs on "
        f"mnist train[:102], 30 batches; cached in {cache / 'classifiers'} for later evaluations"
    )
    # the first line comes while the classifier trains, not with the result at the end
    assert running, f"the first line came only when the command had ended ({waited:.1f} s)"
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    assert process.returncode == 0, rest
    assert json.loads(stdout)["protocols"][0]["extractor"] == "classifier:mnist"
    done = rest.index(next(line for line in rest if ": done, 30 batches" in line))
    assert re.fullmatch(
        rf"training the mnist classifier: done, 30 batches in {TOOK}; "
        r"test accuracy 0\.\d{4} on mnist train\[102:\]",
        rest[done],
    )
    for line in rest[:done]:  # every few seconds: the count, the epoch, the time
        assert re.fullmatch(
            r"training the mnist classifier: \d+/30 batches \(\d+%\), epoch \d+/30, "
            r"(test accuracy 0\.\d{4} after epoch \d+, )?"
            r"\d+:\d\d:\d\d elapsed, eta \d+:\d\d:\d\d",
            line,
        ), line
    for name in ("a", "b"):
        assert f"classifier:mnist features of {tmp_path / name} (8 images)" in rest[done + 1 :]
        assert any(
            re.fullmatch(rf"classifier:mnist features of {tmp_path / name}: done, 8 images in "
                         rf"{TOOK}", line)
            for line in rest[done + 1 :]
        )  # fmt: skip
    assert len(rest) == done + 5
    again = run_cli(
        "fid", str(tmp_path / "a"), str(tmp_path / "b"), "--extractor", "classifier:mnist",
        "--data-dir", str(tmp_path / "data"), env={"GANZOO_CACHE_DIR": str(cache)},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "training" not in again.stderr  # cached: said once, done once


def test_plain_lines_count_the_work_and_a_failed_task_ends_without_done():
    lines: list[str] = []
    with track(lines.append, "reading", 3, "files", "reading 3 files, because") as task:
        task.interval = 0.0
        task.advance(1, "first")
        task.advance(2)
    assert lines[:3] == [
        "reading 3 files, because",
        "reading: 1/3 files (33%), first, 0:00:00 elapsed, eta 0:00:00",
        # the last count is said by the closing line, not twice
        "reading: done, 3 files in 0.0 s",
    ]
    with pytest.raises(OSError), track(lines.append, "writing", 2, "files") as task:
        raise OSError("disk full")
    assert lines[3:] == ["writing (2 files)"]
    assert task.finished


def test_the_library_is_quiet_without_a_reporter(pixels_extractor, tmp_path, capsys):
    write_pngs(tmp_path / "a", 6, seed=1)
    write_pngs(tmp_path / "b", 6, seed=2)
    quiet, _ = fid_between(tmp_path / "a", tmp_path / "b", extractor="pixels", device="cpu")
    assert capsys.readouterr() == ("", "")
    said: list[str] = []
    value, _ = fid_between(
        tmp_path / "a", tmp_path / "b", extractor="pixels", device="cpu", report=said.append
    )
    assert value == quiet
    assert said[0] == f"pixels features of {tmp_path / 'a'} (6 images)"
    assert said[1].startswith(f"pixels features of {tmp_path / 'a'}: done, 6 images in ")
    assert said[2] == f"pixels features of {tmp_path / 'b'} (6 images)"
    assert len(said) == 4 and capsys.readouterr() == ("", "")
    Reporter("none")("nothing")
    with track(Reporter("none"), "nothing", 2, "units") as task:
        task.advance(2)
    assert not task.shown and capsys.readouterr() == ("", "")


def image_run(folder: Path, out: Path, *settings: str, progress: str = "none") -> list[str]:
    """``ganzoo run`` arguments: the quickstart MLPs on a folder of 12x12 PNGs, 20 steps."""
    sets = [
        'data.name="image-folder"', f"data.path={json.dumps(str(folder))}", "data.size=8",
        "data.channels=3", "generator.hidden=[8]", "discriminator.hidden=[8]",
        "train.batch_size=4", "train.steps=20", "train.log_every=10", "train.num_samples=4",
        "train.sample_every=100", "train.checkpoint_every=100", *settings,
    ]  # fmt: skip
    args = ["run", "quickstart", "--out", str(out), "--progress", progress]
    for setting in sets:
        args += ["--set", setting]
    return args


def test_the_end_of_run_evaluation_shows_its_feature_passes(pixels_extractor, tmp_path):
    write_pngs(tmp_path / "imgs", 16, seed=0)
    evaluated = ('eval.metrics=["fid"]', 'eval.extractor="pixels"', "eval.num_samples=12",
                 "train.num_workers=0")  # fmt: skip
    shown = run_cli(*image_run(tmp_path / "imgs", tmp_path / "r1", *evaluated, progress="plain"))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stderr.splitlines()
    for what, n in (("the generated samples", 12), ("the reference set, image-folder", 16)):
        assert f"pixels features of {what} ({n} images)" in lines
        assert any(
            line.startswith(f"pixels features of {what}: done, {n} images in ") for line in lines
        )
    assert any(line.startswith("evaluation: fid ") for line in lines)
    silent = run_cli(*image_run(tmp_path / "imgs", tmp_path / "r2", *evaluated, progress="none"))
    assert silent.returncode == 0, silent.stderr
    assert "features" not in silent.stderr
    assert (tmp_path / "r2" / "eval.json").is_file()


# --- unreadable files ---------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 0])
def test_a_corrupt_image_read_by_workers_is_one_line(tmp_path, workers):
    write_pngs(tmp_path / "imgs", 15, seed=0)
    bad = corrupt_png(tmp_path / "imgs")  # 16 files, batches of 4: every epoch reads it
    done = run_cli(*image_run(tmp_path / "imgs", tmp_path / "run", f"train.num_workers={workers}"))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"error: {bad}: cannot read image: cannot identify image file '{bad}'"
    ]
    assert "Traceback" not in done.stdout + done.stderr


def test_fid_names_a_corrupt_image_in_a_folder(pixels_extractor, tmp_path):
    write_pngs(tmp_path / "a", 5, seed=1)
    write_pngs(tmp_path / "b", 5, seed=2)
    bad = corrupt_png(tmp_path / "b")
    done = run_cli("fid", str(tmp_path / "a"), str(tmp_path / "b"), "--extractor", "pixels")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        f"error: {bad}: cannot read image: cannot identify image file '{bad}'"
    )
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error")] == [
        done.stderr.splitlines()[-1]
    ]
    assert done.stdout == ""


def test_a_run_asked_to_skip_unreadable_images_leaves_them_out_and_counts_them(tmp_path):
    write_pngs(tmp_path / "imgs", 15, seed=0)
    bad = corrupt_png(tmp_path / "imgs")
    settings = ("train.num_workers=2", "data.skip_unreadable=true")
    done = run_cli(*image_run(tmp_path / "imgs", tmp_path / "run", *settings))
    assert done.returncode == 0, done.stderr
    warning = (
        f"warning: {tmp_path / 'imgs'}: skipped 1 unreadable of 16 images "
        f"(data.skip_unreadable); the first: {bad}: cannot read image"
    )
    assert any(line.startswith(warning) for line in done.stderr.splitlines()), done.stderr
    assert "Traceback" not in done.stderr


def test_fid_can_skip_unreadable_files_and_says_how_many(pixels_extractor, tmp_path):
    write_pngs(tmp_path / "a", 5, seed=1)
    write_pngs(tmp_path / "b", 5, seed=2)
    bad = corrupt_png(tmp_path / "b")
    args = ["fid", str(tmp_path / "a"), str(tmp_path / "b"), "--extractor", "pixels"]
    skipped = run_cli(*args, "--skip-unreadable", "--json")
    assert skipped.returncode == 0, skipped.stderr
    assert f"warning: {tmp_path / 'b'}: skipped 1 unreadable image files" in skipped.stderr
    assert f"the first: {bad}: cannot read image" in skipped.stderr
    result = json.loads(skipped.stdout)
    assert result["protocols"][1]["num_images"] == 5
    assert result["protocols"][1]["skipped_unreadable"] == 1
    bad.unlink()
    clean = json.loads(run_cli(*args, "--json").stdout)
    assert clean["fid"] == result["fid"]  # the same five images either way


def test_a_classifier_that_another_process_trains_is_waited_for_not_trained_twice(
    tmp_path, monkeypatch
):
    from test_train import write_idx_mnist

    from ganzoo.metrics.classifier import load_or_train_classifier
    from ganzoo.writes import WriterLock

    write_idx_mnist(tmp_path / "data", n=128)
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
    cpu = torch.device("cpu")
    first = load_or_train_classifier("mnist", tmp_path / "data", cpu, epochs=1)
    stored = [first.path, first.path.with_suffix(".json")]
    kept = {p: p.read_bytes() for p in stored}
    for p in stored:  # as before the other process stored them
        p.unlink()
    lock = WriterLock.try_acquire(first.path.with_suffix(".lock"))  # the other one trains
    assert lock is not None
    lines: list[str] = []
    got = []
    waiter = threading.Thread(
        target=lambda: got.append(
            load_or_train_classifier("mnist", tmp_path / "data", cpu, epochs=1, report=lines.append)
        )
    )
    waiter.start()
    deadline = time.monotonic() + 30
    while not lines:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert lines == [
        f"waiting for pid {os.getpid()}, which trains the mnist classifier into "
        f"{tmp_path / 'cache' / 'classifiers'}"
    ]
    time.sleep(2 * 0.5)  # it keeps waiting while the lock is held
    assert waiter.is_alive() and not got
    for p, data in kept.items():  # the other process stores its classifier and is done
        p.write_bytes(data)
    lock.release()
    waiter.join(timeout=30)
    assert len(lines) == 1  # loaded what the other stored: no "training the mnist classifier"
    for name, value in first.net.state_dict().items():
        assert torch.equal(got[0].net.state_dict()[name], value)
