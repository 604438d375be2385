"""``ganzoo sample RUN --export DIR``: one PNG per sample, the very samples ``ganzoo eval`` scores.

The files decode to the evaluation's quantised samples bit for bit; an interrupted or grown
export completes without rewriting what is there; a different export into the same folder is
refused; a conditional run exports one class, or the evaluation's labels beside a labels.csv.
"""

from __future__ import annotations

import builtins
import csv
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image
from test_long_work import PIXELS
from test_train import write_idx_mnist

import ganzoo
from ganzoo.api import to_model_space
from ganzoo.errors import UsageError, WriteError
from ganzoo.export import export_samples
from ganzoo.plots import class_labels
from ganzoo.runs import RunFolder
from ganzoo.sources import GeneratorSamples, conditioning_labels

TINY = [
    "generator.hidden=[16]", "generator.latent_dim=8", "discriminator.hidden=[16]",
    "train.batch_size=16", "train.steps=4", "train.log_every=2", "train.sample_every=4",
    "train.checkpoint_every=4", "train.num_samples=4", "eval.metrics=[]",
    "eval.num_samples=300", "eval.seed=3",
]  # fmt: skip
CONDITIONAL = ["generator.conditional=true", "discriminator.conditional=true"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    write_idx_mnist(data)
    return data


@pytest.fixture(scope="module")
def grey_run(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, one_thread: None) -> Path:
    """A tiny unconditional MNIST run whose [eval] asks for 300 samples of seed 3."""
    out = tmp_path_factory.mktemp("grey") / "run"
    ganzoo.run("vanilla_mnist", overrides=TINY, out=out, data_dir=mnist_dir, progress="none")
    return out


@pytest.fixture(scope="module")
def labelled_run(
    tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path, one_thread: None
) -> Path:
    """A tiny class-conditional MNIST run whose fakes' labels follow the data's counts."""
    out = tmp_path_factory.mktemp("labelled") / "run"
    overrides = [*TINY, *CONDITIONAL, "train.fake_labels='data'"]
    ganzoo.run("vanilla_mnist", overrides=overrides, out=out, data_dir=mnist_dir, progress="none")
    return out


def decoded(folder: Path, mode: str) -> torch.Tensor:
    """The folder's PNGs in name order, in model space; each must have PIL mode ``mode``."""
    images = []
    for path in sorted(folder.glob("*.png")):
        with Image.open(path) as image:
            assert image.mode == mode
            array = np.array(image)
        images.append(
            torch.from_numpy(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
        )
    return to_model_space(torch.stack(images))


def evaluated(run: Path, n: int, seed: int, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The samples the evaluation scores: n of the seed, in batches of the default 250."""
    trained = RunFolder.open(run).load_generator()
    samples = GeneratorSamples(
        trained.generator, n, seed, torch.device("cpu"), trained.spec, labels
    )
    return torch.cat(list(samples.batches(250)))


def identities(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.glob("*.png")}


def test_exported_files_are_the_evaluated_samples(grey_run, tmp_path):
    out = tmp_path / "export"
    done = run_cli("sample", str(grey_run), "--export", str(out), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    # [eval] num_samples and seed are the defaults: 300 samples of seed 3, batches of 250
    assert done.stdout == f"300 samples of step 4 (seed 3) in {out}: 300 written, 0 already there\n"
    assert "exporting samples: done, 300 images" in done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{i:06d}.png" for i in range(300)] + ["export.json"]
    assert torch.equal(decoded(out, "L"), evaluated(grey_run, 300, seed=3))
    manifest = json.loads((out / "export.json").read_text())
    assert {k: manifest[k] for k in ("run", "step", "generator", "seed", "class", "n")} == {
        "run": str(grey_run.resolve()), "step": 4, "generator": "ema", "seed": 3, "class": None,
        "n": 300,
    }  # fmt: skip
    assert manifest["batch_size"] == 250 and manifest["checkpoint"] == "step_00000004.pt"


def test_an_interrupted_export_completes_what_is_missing(grey_run, tmp_path, monkeypatch):
    out = tmp_path / "export"
    first = export_samples(grey_run, out, 100, seed=1, batch_size=32, device="cpu")
    assert (first.written, first.present) == (100, 0)
    # interrupted: two files of the second batch missing, a file left in the making
    (out / "000040.png").unlink()
    (out / "000041.png").unlink()
    (out / ".000050.png.tmp-99999").write_bytes(b"half a png")
    before = identities(out)
    generated = []
    original = GeneratorSamples.generate

    def spy(self: GeneratorSamples, start: int, z: torch.Tensor) -> torch.Tensor:
        generated.append(start)
        return original(self, start, z)

    monkeypatch.setattr(GeneratorSamples, "generate", spy)
    # grown to 250: batches of 32, the first export's short batch (96..99) is drawn anew
    again = export_samples(grey_run, out, 250, seed=1, batch_size=32, device="cpu")
    assert (again.written, again.present) == (2 + 4 + 150, 94)
    assert generated == [32, 96, 128, 160, 192, 224]  # complete batches were not generated
    after = identities(out)
    kept = {name for name in before if name < "000096.png"}
    assert {name: after[name] for name in kept} == {name: before[name] for name in kept}
    assert not list(out.glob(".*"))
    monkeypatch.undo()
    fresh = export_samples(grey_run, tmp_path / "fresh", 250, seed=1, batch_size=32, device="cpu")
    assert fresh.written == 250
    for i in range(250):
        name = f"{i:06d}.png"
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes(), name
    trained = RunFolder.open(grey_run).load_generator()
    samples = GeneratorSamples(trained.generator, 250, 1, torch.device("cpu"), trained.spec)
    assert torch.equal(decoded(out, "L"), torch.cat(list(samples.batches(32))))


def test_a_failed_write_keeps_whole_batches_and_resumes(grey_run, tmp_path, monkeypatch):
    out = tmp_path / "export"
    real_open = builtins.open

    def full_disk(file, *args, **kwargs):
        if "000020.png" in str(file):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(WriteError, match=r"cannot write .*000020\.png: no space left on device"):
        export_samples(grey_run, out, 40, batch_size=16, device="cpu")
    # the first batch is there; of the second, whose writing failed, nothing (not even a part)
    assert sorted(p.name for p in out.iterdir()) == [f"{i:06d}.png" for i in range(16)] + [
        "export.json"
    ]
    monkeypatch.undo()
    again = export_samples(grey_run, out, 40, batch_size=16, device="cpu")
    assert (again.written, again.present) == (24, 16)


def test_another_export_into_the_folder_is_refused(grey_run, tmp_path):
    out = tmp_path / "export"
    export_samples(grey_run, out, 20, device="cpu")
    done = run_cli("sample", str(grey_run), "--export", str(out), "--seed", "5")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {out} holds another export (seed 3 there, 5 asked): export into another folder"
    ]
    with pytest.raises(UsageError, match=r"\(seed 3 there, 5 asked; batch_size 250 there, 10 "):
        export_samples(grey_run, out, 20, seed=5, batch_size=10, device="cpu")
    with pytest.raises(UsageError, match="holds 20 samples, more than --n 10"):
        export_samples(grey_run, out, 10, device="cpu")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "cat.png").write_bytes(b"")
    with pytest.raises(UsageError, match=r"holds files but no export\.json"):
        export_samples(grey_run, tmp_path / "other", 20, device="cpu")
    both = run_cli("sample", str(grey_run), "--export", str(out), "--interpolate")
    assert both.returncode == 2 and "it takes no --interpolate or --out" in both.stderr


def test_points_are_not_exported(tmp_path):
    ring = ganzoo.run(
        "quickstart", overrides=["train.steps=2", "eval.metrics=[]"], out=tmp_path / "ring",
        progress="none",
    )  # fmt: skip
    with pytest.raises(UsageError, match=r"shape \(2,\), not grey or RGB images"):
        export_samples(ring.run_dir, tmp_path / "export", 10, device="cpu")
    assert not (tmp_path / "export").exists()


def test_a_conditional_export_draws_one_class_or_the_evaluations_labels(
    labelled_run, mnist_dir, tmp_path
):
    seven = tmp_path / "seven"
    result = export_samples(labelled_run, seven, 30, label="7", device="cpu")
    assert result.label == 7 and not (seven / "labels.csv").exists()
    assert json.loads((seven / "export.json").read_text())["class"] == 7
    expected = evaluated(labelled_run, 30, seed=3, labels=torch.full((30,), 7))
    assert torch.equal(decoded(seven, "L"), expected)
    # without a class: the evaluation's labels, drawn as often as in the data
    mixed = tmp_path / "mixed"
    export_samples(labelled_run, mixed, 30, data_dir=mnist_dir, device="cpu")
    counts = torch.bincount(torch.arange(256) % 10, minlength=10)  # write_idx_mnist's labels
    labels = conditioning_labels(30, 10, 3, counts)
    with open(mixed / "labels.csv", newline="") as f:
        rows = list(csv.reader(f))
    spec = RunFolder.open(labelled_run).load_generator().spec
    assert rows == [["file", "label", "class_name"]] + [
        [f"{i:06d}.png", str(y), class_labels(spec)[y]] for i, y in enumerate(labels.tolist())
    ]
    assert torch.equal(decoded(mixed, "L"), evaluated(labelled_run, 30, seed=3, labels=labels))


def test_the_fid_of_an_exported_folder_is_the_evaluations(
    tmp_path, plugin_site, monkeypatch, one_thread
):
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(tmp_path / "cache"))
    plugin_site(
        "ganzoo-pixels", "0.1", {"ganzoo.extractors": {"pixels": "pixelplug:Pixels"}},
        {"pixelplug": PIXELS},
    )  # fmt: skip
    from ganzoo.compare import fid_between

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):  # already at the run's size: the dataset reads them unchanged
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(images / f"{i}.png")
    overrides = [
        "data.name=image-folder", f"data.path={json.dumps(str(images))}", "data.size=8",
        "data.channels=3", "generator.hidden=[16]", "discriminator.hidden=[16]",
        "train.batch_size=8", "train.steps=4", "train.num_samples=4", "train.num_workers=0",
        "eval.metrics=[]",
    ]  # fmt: skip
    run = ganzoo.run("quickstart", overrides=overrides, out=tmp_path / "run", progress="none")
    report = ganzoo.evaluate_run(
        run.run_dir, metrics=["fid"], extractor="pixels", num_samples=300, device="cpu"
    )
    result = export_samples(run.run_dir, tmp_path / "export", 300, device="cpu")
    assert result.written == 300
    with Image.open(tmp_path / "export" / "000000.png") as first:
        assert first.mode == "RGB" and first.size == (8, 8)
    # the samples first, the reference second, as ganzoo fid takes them: the very same number
    raw, _ = fid_between(tmp_path / "export", images, extractor="pixels", device="cpu")
    assert raw == report.metrics["fid"]["protocol"]["fid_raw"]
