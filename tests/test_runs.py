"""Run folders: one layout, one message for what is not one, old runs, the options objects."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import REPO, own_cache, run_cli
from PIL import Image
from test_train import QUICK, assert_same, weights, write_idx_mnist

import ganzoo
from ganzoo.checkpoint import load_checkpoint
from ganzoo.errors import UsageError
from ganzoo.options import EvalOptions, RunOptions, SampleOptions
from ganzoo.runs import RunFolder

# A run folder written by ganzoo at commit decf277 (before the training core was split up):
# quickstart with hidden [16, 16], constant learning rates, EMA, checkpoints at steps 10 and 20.
OLD_RUN = REPO / "tests" / "fixtures" / "run-decf277"
OLD_SAMPLES = REPO / "tests" / "fixtures" / "run-decf277.samples.json"


@pytest.fixture
def old_run(tmp_path) -> Path:
    return Path(shutil.copytree(OLD_RUN, tmp_path / "old-run"))


def test_a_new_folder_is_laid_out_and_read_back(tmp_path):
    result = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    folder = RunFolder.open(result.run_dir)
    assert RunFolder.is_run_folder(folder.root) and not RunFolder.is_run_folder(tmp_path)
    assert folder.recipe().to_dict() == ganzoo.load_recipe("quickstart", QUICK).to_dict()
    assert [r["step"] for r in folder.records()] == [10, 20, 30, 40]
    assert folder.checkpoint() == folder.checkpoints / "step_00000040.pt"
    assert folder.checkpoint("step_00000020.pt").name == "step_00000020.pt"
    assert folder.sample_grid(40).is_file() and folder.loss_curve.is_file()
    trained = folder.load_generator()
    assert trained.step == 40 and trained.ema is True and not trained.generator.training
    assert folder.read_eval() is None


def test_new_folders_are_numbered_and_never_reused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = RunFolder.new("demo")
    first.root.mkdir(parents=True)
    second = RunFolder.new("demo")
    assert second.root != first.root and second.root.parent == first.root.parent
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(UsageError, match="is not empty; continue the run in it with --resume"):
        RunFolder.new("demo", tmp_path / "full")


def test_every_command_gives_one_message_for_a_folder_that_is_not_a_run(tmp_path):
    nested = tmp_path / "runs" / "quickstart" / "20261203-120000"
    nested.mkdir(parents=True)
    (nested / "resolved.toml").write_text("")
    where = tmp_path / "runs"
    expected = f"error: {where}: not a run folder (no resolved.toml)"
    for args in (["sample", str(where)], ["eval", str(where)], ["run", "--resume", str(where)]):
        done = run_cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.strip().startswith(expected), (args, done.stderr)
        assert "Traceback" not in done.stderr
    # a folder one level above a run names the runs inside it
    done = run_cli("sample", str(tmp_path / "runs" / "quickstart"))
    assert f"run folders inside it: {nested}" in done.stderr


def test_a_missing_checkpoint_names_the_ones_there(tmp_path):
    result = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "run", progress="none")
    done = run_cli("sample", str(result.run_dir), "--checkpoint", "step_00000030.pt")
    assert done.returncode == 1
    assert "step_00000030.pt: no such checkpoint (there: step_00000020.pt, step_00000040.pt)" in (
        done.stderr
    )


def test_checkpoint_without_resume_is_refused():
    done = run_cli("run", "quickstart", "--checkpoint", "last.pt")
    assert done.returncode == 2
    assert "error: --checkpoint needs --resume RUN_DIR" in done.stderr


# --- a run folder written before this layout was public -----------------------------------


def test_an_old_run_resumes_where_it_stopped(old_run):
    before = load_checkpoint(old_run / "checkpoints" / "step_00000020.pt")
    done = run_cli("run", "--resume", str(old_run), "--set", "train.steps=30", "--progress", "none")
    assert done.returncode == 0, done.stderr
    after = load_checkpoint(old_run / "checkpoints" / "last.pt")
    assert after["step"] == 30 and after["data"] != before["data"]
    records = RunFolder(old_run).records()
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25, 30]
    env = json.loads((old_run / "env.json").read_text())
    assert env["resumed_from_step"] == 20 and env["history"][0]["ganzoo"] == "0.1.0"


def test_an_old_run_continues_as_the_old_code_did(old_run, tmp_path):
    """From the old step-10 checkpoint to step 20 gives the old code's step-20 weights.

    The fixture was written on one thread (bit for bit what this code gives on the machine
    that wrote it). Another CPU may round float sums otherwise, and Adam turns that into
    differences of up to its step size (measured: 1.4e-4 with two threads), so the weights
    are compared to 1e-3; the steps from 10 to 20 move G and D by a median of 3e-3 and 1e-2,
    so a resume that restored the wrong state would differ by more.
    """
    old_step_10 = weights(OLD_RUN / "checkpoints" / "step_00000010.pt")
    old_step_20 = weights(OLD_RUN / "checkpoints" / "step_00000020.pt")
    done = run_cli(
        "run", "--resume", str(old_run), "--checkpoint", "step_00000010.pt", "--progress", "none",
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    new_step_20 = weights(old_run / "checkpoints" / "step_00000020.pt")
    for net in ("generator", "discriminator", "ema"):
        for key, value in old_step_20[net].items():
            assert torch.allclose(new_step_20[net][key], value, rtol=0, atol=1e-3), (net, key)
    for net in ("generator", "discriminator"):
        moved = torch.cat(
            [
                (old_step_20[net][k] - old_step_10[net][k]).abs().flatten()
                for k in old_step_20[net]
                if old_step_20[net][k].is_floating_point()
            ]
        )
        assert moved.median() > 2e-3, net  # the tolerance is well below a step's movement


def test_an_old_run_samples_as_it_did(old_run, tmp_path):
    expected = json.loads(OLD_SAMPLES.read_text())
    trained = RunFolder.open(old_run).load_generator()
    assert (trained.step, trained.ema) == (expected["step"], expected["ema"])
    z = trained.generator.sample_latent(8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        samples = trained.generator(z)
    assert torch.allclose(samples, torch.tensor(expected["samples"]), atol=1e-5)
    done = run_cli("sample", str(old_run), "--n", "16", "--out", str(tmp_path / "s.png"))
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "s.png") as image:
        image.verify()
    scored = run_cli("eval", str(old_run), "--metrics", "modes", "--num-samples", "200", "--json")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)[0]["protocol"]["step"] == 20


# --- one options object per command -------------------------------------------------------


def test_options_objects_and_keywords_run_the_same(tmp_path):
    by_object = ganzoo.run(
        "quickstart", RunOptions(overrides=tuple(QUICK), out=tmp_path / "a", progress="none")
    )
    by_keywords = ganzoo.run(
        "quickstart", overrides=QUICK, out=str(tmp_path / "b"), progress="none"
    )
    assert_same(weights(by_object.checkpoint), weights(by_keywords.checkpoint))
    base = RunOptions(overrides=tuple(QUICK), progress="none")
    changed = ganzoo.run("quickstart", base, out=tmp_path / "c")
    assert changed.run_dir == tmp_path / "c"
    # (a scatter plot is titled with its file name)
    a = ganzoo.sample_run(by_object.run_dir, SampleOptions(n=4, out=tmp_path / "x" / "s.png"))
    b = ganzoo.sample_run(by_object.run_dir, n=4, out=tmp_path / "y" / "s.png")
    with Image.open(a) as first, Image.open(b) as second:
        assert first.tobytes() == second.tobytes()


def test_options_are_checked_once_with_the_cli_messages():
    with pytest.raises(UsageError, match="--progress loud: choose auto, bar, plain or none"):
        RunOptions(progress="loud")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="--n must be positive"):
        SampleOptions(n=0)
    with pytest.raises(UsageError, match="--num-samples 0: must be positive"):
        EvalOptions(num_samples=0)
    with pytest.raises(TypeError, match="steps"):
        ganzoo.run("quickstart", steps=3)
    assert RunOptions(out="x", overrides=["a=1"]).out == Path("x")


# --- the evaluation at the end of a run ---------------------------------------------------


def test_end_of_run_evaluation_uses_what_is_in_memory(tmp_path, monkeypatch):
    """Neither the checkpoint nor the data is read again; ``ganzoo eval`` agrees exactly."""
    write_idx_mnist(tmp_path / "data")
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(own_cache(tmp_path / "cache")))

    def refuse(*args, **kwargs):
        raise AssertionError("the end-of-run evaluation reloaded the run")

    monkeypatch.setattr(RunFolder, "load_generator", refuse)
    monkeypatch.setattr("ganzoo.evaluate.build_dataset", refuse)
    overrides = [
        "train.steps=4", "train.log_every=2", "train.checkpoint_every=4", "train.ema=0.9",
        "train.channels_last=true", "generator.base_channels=8", "discriminator.base_channels=8",
        "generator.latent_dim=8", "train.batch_size=16", "train.num_samples=16",
        "eval.metrics=['fid', 'is']", "eval.num_samples=200", "eval.extractor='classifier'",
    ]  # fmt: skip
    result = ganzoo.run(
        "dcgan_mnist", overrides=overrides, out=tmp_path / "run", progress="none",
        data_dir=tmp_path / "data", device="cpu",
    )  # fmt: skip
    assert result.evaluation is not None
    saved = json.loads((result.run_dir / "eval.json").read_text())
    assert saved["protocol"]["generator"] == "ema" and saved["protocol"]["step"] == 4
    monkeypatch.undo()
    done = run_cli(
        "eval", str(result.run_dir), "--data-dir", str(tmp_path / "data"), "--json",
        env={"GANZOO_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (again,) = json.loads(done.stdout)
    assert again["scores"] == saved["scores"]
    assert {k: v for k, v in again["protocol"].items() if k != "run"} == {
        k: v for k, v in saved["protocol"].items() if k != "run"
    }
