"""Training runs: the run folder, determinism, resume after SIGKILL/SIGINT, bad situations."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli, stop_at_checkpoint
from PIL import Image

import ganzoo
from ganzoo.checkpoint import load_checkpoint
from ganzoo.optim import lr_factor
from ganzoo.plots import tile

QUICK = [
    "generator.hidden=[32, 32]",
    "generator.latent_dim=4",
    "discriminator.hidden=[32, 32]",
    "train.generator_optimizer.schedule=constant",  # so that resuming may extend train.steps
    "train.discriminator_optimizer.schedule=constant",
    "train.batch_size=64",
    "train.steps=40",
    "train.log_every=10",
    "train.sample_every=20",
    "train.checkpoint_every=20",
]


def sets(*items: str) -> list[str]:
    args = []
    for item in items:
        args += ["--set", item]
    return args


def weights(path: Path) -> dict[str, dict[str, torch.Tensor]]:
    state = load_checkpoint(path)
    return {
        k: state[k]
        for k in (
            "generator",
            "discriminator",
            "ema",
            "generator_optimizer",
            "discriminator_optimizer",
        )
        if state.get(k) is not None
    }


def assert_same(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def test_quickstart_run_folder_holds_everything(tmp_path):
    out = tmp_path / "run"
    done = run_cli("run", "recipes/quickstart.toml", "--out", str(out), *sets(*QUICK))
    assert done.returncode == 0, done.stderr
    assert f"run folder: {out}" in done.stderr
    assert (out / "recipe.toml").read_text() == (REPO / "recipes/quickstart.toml").read_text()
    resolved = (out / "resolved.toml").read_text()
    assert "hidden = [\n    32,\n    32,\n]" in resolved and "steps = 40" in resolved
    env = json.loads((out / "env.json").read_text())
    assert env["torch"] == torch.__version__ and env["ganzoo"] == ganzoo.__version__
    assert env["device"] == "cpu" and "ganzoo==0.1.0" in env["plugins"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    for r in records:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "images_per_s"} <= r.keys()
        assert 0 < r["d_real"] < 1 and r["images_per_s"] > 0
    pngs = sorted((out / "samples").glob("*.png"))
    assert [p.name for p in pngs] == ["step_00000020.png", "step_00000040.png"]
    for png in [*pngs, out / "loss_curve.png"]:
        with Image.open(png) as image:
            image.verify()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "last.pt", "step_00000020.pt", "step_00000040.pt"
    ]  # fmt: skip
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 40
    if (out / "tensorboard").exists():
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))

    again = run_cli("run", str(out / "resolved.toml"), "--out", str(tmp_path / "again"))
    assert again.returncode == 0, again.stderr
    assert_same(
        weights(out / "checkpoints/last.pt"), weights(tmp_path / "again/checkpoints/last.pt")
    )


def test_same_recipe_and_seed_give_identical_checkpoints(tmp_path):
    a = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "a", progress="none")
    b = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "b", progress="none")
    assert a.step == b.step == 40
    assert_same(weights(a.checkpoint), weights(b.checkpoint))
    c = ganzoo.run("quickstart", overrides=[*QUICK, "seed=1"], out=tmp_path / "c", progress="none")
    assert not torch.equal(
        weights(a.checkpoint)["generator"]["net.0.weight"],
        weights(c.checkpoint)["generator"]["net.0.weight"],
    )


def _start_and_stop(out: Path, sig: int, overrides: list[str]) -> subprocess.CompletedProcess[str]:
    """Start a run, wait for its first checkpoint, send ``sig``, return the finished process."""
    args = ["run", "quickstart", "--out", str(out), *sets(*overrides)]
    return stop_at_checkpoint(args, out / "checkpoints" / "step_00000020.pt", sig)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_stopped_run_resumes_to_identical_weights(tmp_path, slow_plugin, sig):
    # logging every 15 steps puts the checkpoint of step 20 (and a signal's) inside a window
    overrides = [
        *QUICK,
        "loss.name=slow-ns",
        "train.steps=120",
        "train.ema=0.9",
        "train.log_every=15",
    ]
    reference = ganzoo.run(
        "quickstart", overrides=overrides, out=tmp_path / "reference", progress="none"
    )
    stopped = _start_and_stop(tmp_path / "stopped", sig, overrides)
    if sig == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
    else:
        assert stopped.returncode == (130 if sig == signal.SIGINT else 143), stopped.stderr
        assert "checkpoint saved. Continue with: ganzoo run --resume" in stopped.stderr
        assert "Traceback" not in stopped.stderr
        # the signal's own checkpoint is the newest one, taken where the run stopped
        step = load_checkpoint(tmp_path / "stopped/checkpoints/last.pt")["step"]
        assert 20 <= step < 120
    newest = sorted((tmp_path / "stopped/checkpoints").glob("step_*.pt"))[-1]
    resumed_from = load_checkpoint(newest)["step"]
    assert resumed_from < 120

    resumed = run_cli("run", "--resume", str(tmp_path / "stopped"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same(weights(reference.checkpoint), weights(tmp_path / "stopped/checkpoints/last.pt"))
    steps = [json.loads(line)["step"] for line in (tmp_path / "stopped/metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and steps[-1] == 120
    # the logged values equal the uninterrupted run's line for line (timings aside)
    assert logged_values(tmp_path / "stopped") == logged_values(reference.run_dir)
    assert f"from step {resumed_from}; the whole run 120 steps in" in resumed.stderr


def logged_values(run: Path) -> list[dict[str, object]]:
    """The records of ``metrics.jsonl`` without their timings."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    return [{k: v for k, v in r.items() if k not in ("time", "images_per_s")} for r in records]


def test_resume_can_extend_but_not_change_the_recipe(tmp_path):
    first = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    changed = run_cli(
        "run", "quickstart", "--resume", str(first.run_dir),
        *sets(*QUICK, "train.batch_size=32", "generator.hidden=[16, 16]"),
    )  # fmt: skip
    assert changed.returncode == 2
    assert "train.batch_size (64 -> 32)" in changed.stderr
    assert "generator.hidden ([32, 32] -> [16, 16])" in changed.stderr
    assert "Traceback" not in changed.stderr
    only_set = run_cli("run", "--resume", str(first.run_dir), *sets("train.batch_size=32"))
    assert only_set.returncode == 2
    assert "train.batch_size (64 -> 32)" in only_set.stderr
    assert "batch_size = 64" in (first.run_dir / "resolved.toml").read_text()
    longer = ganzoo.run(resume=first.run_dir, overrides=["train.steps=60"], progress="none")
    assert longer.step == 60
    reference = ganzoo.run(
        "quickstart", overrides=[*QUICK, "train.steps=60"], out=tmp_path / "ref", progress="none"
    )
    assert_same(weights(reference.checkpoint), weights(longer.checkpoint))


def test_corrupt_checkpoint_is_reported_and_nothing_is_lost(tmp_path):
    result = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    newest = result.run_dir / "checkpoints" / "step_00000040.pt"
    data = newest.read_bytes()
    os.unlink(newest)  # last.pt is a hard link to it: replace the file, keep last.pt whole
    newest.write_bytes(data[: len(data) // 2])
    before = {p.name: p.read_bytes() for p in result.run_dir.rglob("*") if p.is_file()}
    done = run_cli("run", "--resume", str(result.run_dir), *sets("train.steps=60"))
    assert done.returncode == 1
    assert "step_00000040.pt: truncated or corrupt checkpoint" in done.stderr
    assert "Other checkpoints there: step_00000020.pt." in done.stderr
    assert "Traceback" not in done.stderr
    after = {p.name: p.read_bytes() for p in result.run_dir.rglob("*") if p.is_file()}
    assert after == before
    fixed = run_cli(
        "run", "--resume", str(result.run_dir), "--checkpoint", "last.pt",
        *sets("train.steps=60"),
    )  # fmt: skip
    assert fixed.returncode == 0, fixed.stderr


def test_resume_takes_the_newest_numbered_checkpoint(tmp_path):
    result = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    folder = result.run_dir / "checkpoints"
    # as if killed after writing step 40 but before relinking last.pt to it
    (folder / "last.pt").unlink()
    os.link(folder / "step_00000020.pt", folder / "last.pt")
    (folder / ".step_00000060.pt.tmp-123").write_bytes(b"half a checkpoint")
    resumed = ganzoo.run(resume=result.run_dir, overrides=["train.steps=60"], progress="none")
    reference = ganzoo.run(
        "quickstart", overrides=[*QUICK, "train.steps=60"], out=tmp_path / "ref", progress="none"
    )
    assert_same(weights(reference.checkpoint), weights(resumed.checkpoint))
    assert not list(folder.glob(".*"))


def test_unwritable_output_folder(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_cli("run", "quickstart", "--out", str(blocker / "run"), *sets(*QUICK))
    assert done.returncode == 1
    assert f"cannot write the run folder {blocker / 'run'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert blocker.read_text() == "not a folder"


def test_non_empty_output_folder_is_refused(tmp_path):
    result = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    done = run_cli("run", "quickstart", "--out", str(result.run_dir), *sets(*QUICK))
    assert done.returncode == 2
    assert f"--resume {result.run_dir}" in done.stderr


def test_missing_data_folder(tmp_path):
    done = run_cli("run", "vanilla_mnist", "--data-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert done.returncode == 1
    message = done.stderr
    assert (
        "MNIST (train split): missing train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz"
        in message
    )
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert "GANZOO_DATA_DIR" in message and "--download" in message
    assert "Traceback" not in message
    assert not (tmp_path / "runs").exists()


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, slow_plugin):
    out = tmp_path / "run"
    done = run_cli(
        "run", "quickstart", "--out", str(out),
        *sets(*QUICK, "loss.name=nan-after", "train.log_every=5"),
    )  # fmt: skip
    assert done.returncode == 1
    assert "a loss became NaN or infinite at step 25; training stopped." in done.stderr
    assert f"The last good checkpoint is {out / 'checkpoints' / 'last.pt'} (step 20)" in done.stderr
    assert "Traceback" not in done.stderr
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == 20
    assert all(torch.isfinite(t).all() for t in state["generator"].values())


def test_mmd_trains_without_a_discriminator(tmp_path):
    recipe = tmp_path / "mmd.toml"  # quickstart's R1 weight is no parameter of mmd
    text = (REPO / "recipes" / "quickstart.toml").read_text()
    recipe.write_text(text.replace("r1_gamma = 0.01\n", ""))
    result = ganzoo.run(
        recipe,
        overrides=[*QUICK, "loss.name=mmd", "loss.sigmas=[0.05, 0.2, 1.0]", "train.steps=60"],
        out=tmp_path / "run",
        progress="none",
    )
    state = load_checkpoint(result.checkpoint)
    assert state["discriminator"] is None and state["discriminator_optimizer"] is None
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    assert all("d_loss" not in r and r["mmd2"] >= 0 for r in records)
    assert records[-1]["mmd2"] < records[0]["mmd2"]


def test_d_steps_consume_one_batch_each(tmp_path):
    result = ganzoo.run(
        "quickstart",
        overrides=[*QUICK, "train.d_steps=3", "data.num_samples=6400", "train.steps=20"],
        out=tmp_path / "run",
        progress="none",
    )
    data = load_checkpoint(result.checkpoint)["data"]
    batches = 20 * 3  # 60 batches of 64 from 100 per epoch
    assert data == {"epoch": 0, "position": batches * 64}


def assert_mnist_run_resumes_identically(
    tmp_path: Path, data_dir: Path, overrides: list[str]
) -> tuple[Path, Path]:
    """Train vanilla_mnist with ``overrides`` (60 steps, a checkpoint every 20) to the end, and
    once more SIGKILLed at its step-20 checkpoint and resumed: the weights must be identical.

    Returns the last checkpoints of the uninterrupted and of the resumed run.
    """
    reference = ganzoo.run(
        "vanilla_mnist", overrides=overrides, out=tmp_path / "ref", data_dir=data_dir,
        progress="none",
    )  # fmt: skip
    out = tmp_path / "stopped"
    args = ["run", "vanilla_mnist", "--out", str(out), "--data-dir", str(data_dir)]
    stop_at_checkpoint([*args, *sets(*overrides)], out / "checkpoints" / "step_00000020.pt")
    assert load_checkpoint(sorted((out / "checkpoints").glob("step_*.pt"))[-1])["step"] < 60
    resumed = run_cli("run", "--resume", str(out), "--data-dir", str(data_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert_same(weights(reference.checkpoint), weights(out / "checkpoints" / "last.pt"))
    return reference.checkpoint, out / "checkpoints" / "last.pt"


def write_idx_mnist(root: Path, n: int = 256) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 28, 28), generator=rng, dtype=torch.uint8)
    labels = torch.arange(n, dtype=torch.uint8) % 10
    with gzip.open(raw / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.numpy().tobytes())
    with gzip.open(raw / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.numpy().tobytes())


def test_image_run_and_sample_command(tmp_path):
    write_idx_mnist(tmp_path / "data")
    out = tmp_path / "run"
    done = run_cli(
        "run", "vanilla_mnist", "--out", str(out), "--data-dir", str(tmp_path / "data"),
        *sets("train.steps=6", "train.log_every=3", "train.sample_every=3",
              "generator.hidden=[16]", "discriminator.hidden=[16]", "train.num_samples=16"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with Image.open(out / "samples" / "step_00000006.png") as grid:
        assert grid.size == (4 * 30 + 2, 4 * 30 + 2)  # 4x4 tiles of 28 px, 2 px gaps
    sampled = run_cli(
        "sample", str(out), "--n", "9", "--seed", "3", "--out", str(tmp_path / "s.png")
    )
    assert sampled.returncode == 0, sampled.stderr
    with Image.open(tmp_path / "s.png") as image:
        assert image.size == (3 * 30 + 2, 3 * 30 + 2)
    same = run_cli("sample", str(out), "--n", "9", "--seed", "3", "--out", str(tmp_path / "t.png"))
    assert same.returncode == 0
    assert (tmp_path / "s.png").read_bytes() == (tmp_path / "t.png").read_bytes()
    interp = run_cli("sample", str(out), "--interpolate", "--n", "2", "--steps", "5")
    assert interp.returncode == 0, interp.stderr
    with Image.open(interp.stdout.strip()) as image:
        assert image.size == (5 * 30 + 2, 2 * 30 + 2)


def test_streamed_dataset_trains_and_resumes_identically(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = torch.Generator().manual_seed(0)
    for i in range(40):
        pixels = torch.randint(0, 256, (20, 24, 3), generator=rng, dtype=torch.uint8).numpy()
        Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    overrides = [
        "data.name=image-folder", f"data.path={json.dumps(str(folder))}", "data.size=8",
        "data.channels=3", "generator.hidden=[16]", "discriminator.hidden=[16]",
        "train.batch_size=8", "train.steps=12", "train.log_every=4", "train.sample_every=6",
        "train.checkpoint_every=6", "train.num_workers=1", "train.num_samples=4",
        "train.generator_optimizer.schedule=constant",
        "train.discriminator_optimizer.schedule=constant",
    ]  # fmt: skip
    whole = ganzoo.run("quickstart", overrides=overrides, out=tmp_path / "whole", progress="none")
    half = ganzoo.run(
        "quickstart",
        overrides=[*overrides, "train.steps=6"],
        out=tmp_path / "half",
        progress="none",
    )
    resumed = ganzoo.run(resume=half.run_dir, overrides=["train.steps=12"], progress="none")
    assert resumed.step == 12
    assert load_checkpoint(whole.checkpoint)["data"] == {"epoch": 2, "position": 16}
    assert_same(weights(whole.checkpoint), weights(resumed.checkpoint))


def test_cuda_device_is_refused_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    done = run_cli("run", "quickstart", "--device", "cuda", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "--device cuda: CUDA is not available on this machine" in done.stderr


def test_learning_rate_schedules_decay_over_train_steps(tmp_path):
    assert [lr_factor("linear", s, 4) for s in range(5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [lr_factor("cosine", s, 4) for s in (0, 2, 4)] == pytest.approx([1.0, 0.5, 0.0])
    assert lr_factor("constant", 3, 4) == 1.0
    linear = [*QUICK, "train.generator_optimizer.schedule=linear", "train.steps=20"]
    first = ganzoo.run("quickstart", overrides=linear, out=tmp_path / "run", progress="none")
    state = load_checkpoint(first.checkpoint)
    # the last update (step 19 of 20) ran at 1/20 of G's rate; D's stays constant
    assert state["generator_optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4 / 20)
    assert state["discriminator_optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    longer = run_cli("run", "--resume", str(first.run_dir), *sets("train.steps=40"))
    assert longer.returncode == 2
    assert "train.steps (20 -> 40) (the learning-rate schedule is laid out over it)" in (
        longer.stderr
    )


@pytest.mark.parametrize(
    ("n", "channels", "columns"), [(10, 1, 8), (64, 3, 8), (3, 3, 8), (7, 1, 3), (1, 1, 4)]
)
def test_sample_grids_are_laid_out_as_torchvision_lays_them_out(n, channels, columns):
    from torchvision.utils import make_grid

    images = torch.rand(n, channels, 5, 6, generator=torch.Generator().manual_seed(n))
    grid = tile(images, columns)
    expected = make_grid(images, nrow=columns, padding=2)
    # make_grid makes one channel three
    assert torch.equal(grid.expand(3, -1, -1) if channels == 1 else grid, expected)
