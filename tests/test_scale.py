"""Scale and speed switches: data-parallel runs under torchrun, torch.compile, AMP."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import REPO, run_cli, shared_data_dir
from test_train import load_checkpoint, sets

import ganzoo
import ganzoo.device
from ganzoo.device import autocast_device, cpu_has_native_bf16
from ganzoo.recipe import RecipeWarning

MLP = [
    "generator.hidden=[32, 32]",
    "generator.batch_norm=false",  # batch statistics depend on how the batch is split
    "discriminator.hidden=[32, 32]",
    "discriminator.dropout=0.0",  # dropout masks depend on how the batch is split
    "train.generator_optimizer.schedule=constant",  # so that resuming may extend train.steps
    "train.discriminator_optimizer.schedule=constant",
    "train.batch_size=64",
    "train.steps=12",
    "train.log_every=4",
    "train.sample_every=6",
    "train.checkpoint_every=6",
]


def one_thread_env() -> dict[str, str]:
    """This process's environment (the session's cache folder included), on one thread."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_process_gloo_run_matches_one_process(tmp_path):
    env = {**one_thread_env(), "NO_COLOR": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "ganzoo", "run", "quickstart", "--out", str(tmp_path / "ddp"), "--progress",
        "plain", *sets(*MLP),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("run folder:") == 1  # rank 0 alone reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp"]  # one run folder, no runs/
    records = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(records) == 3
    env_json = (tmp_path / "ddp" / "env.json").read_text()
    assert '"world_size": 2' in env_json

    single = ganzoo.run("quickstart", overrides=MLP, out=tmp_path / "one", progress="none")
    a = load_checkpoint(single.checkpoint)
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert a["step"] == b["step"] == 12
    for net in ("generator", "discriminator"):
        for name, tensor in a[net].items():
            torch.testing.assert_close(b[net][name], tensor, atol=1e-5, rtol=0)
    assert a["data"] == b["data"]


# Runs ``ganzoo`` under torchrun and, when the process group is destroyed, names every
# DistributedDataParallel wrapper still alive: a wrapper's reducer holds the group, and one that
# outlives it dies at an arbitrary garbage collection, or at interpreter exit, where gloo can
# abort the process (SIGABRT after a finished run).
WATCH_DDP = """
import sys, weakref
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
made = []
init = DistributedDataParallel.__init__
def watched(self, *args, **kwargs):
    init(self, *args, **kwargs)
    made.append(weakref.ref(self))
DistributedDataParallel.__init__ = watched
destroy = dist.destroy_process_group
def checked(*args, **kwargs):
    alive = sum(ref() is not None for ref in made)
    sys.stderr.write(f"ddp wrappers made {len(made)}, alive at destroy {alive}\\n")
    destroy(*args, **kwargs)
dist.destroy_process_group = checked
from ganzoo.cli import main
main()
"""


def test_ddp_wrappers_are_freed_before_the_process_group_ends(tmp_path):
    script = tmp_path / "watch_ddp.py"
    script.write_text(WATCH_DDP)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        str(script), "run", "quickstart", "--out", str(tmp_path / "ddp"), "--progress", "none",
        *sets(*MLP, "train.steps=4", "train.checkpoint_every=4", "eval.metrics=[]"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=one_thread_env(),
                          cwd=tmp_path, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    # the two ranks share stderr: their lines may interleave, so each report is matched alone
    reports = re.findall(r"ddp wrappers made (\d+), alive at destroy (\d+)", done.stderr)
    assert reports == [("2", "0")] * 2, done.stderr[-3000:]


def test_nproc_option_launches_torchrun_and_resume_works(tmp_path):
    out = tmp_path / "run"
    env = {"OMP_NUM_THREADS": "1"}
    done = run_cli(
        "run", "quickstart", "--nproc", "2", "--out", str(out),
        *sets(*MLP, "train.steps=6"), env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = run_cli("run", "--nproc", "2", "--resume", str(out), *sets("train.steps=12"),
                      env=env)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    reference = ganzoo.run("quickstart", overrides=MLP, out=tmp_path / "one", progress="none")
    a = load_checkpoint(reference.checkpoint)["generator"]
    b = load_checkpoint(out / "checkpoints" / "last.pt")["generator"]
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, atol=1e-5, rtol=0)


def test_batch_that_does_not_split_is_refused(tmp_path):
    done = run_cli(
        "run", "quickstart", "--nproc", "2", "--out", str(tmp_path / "r"),
        *sets(*MLP, "train.batch_size=63", "discriminator.pack=1"),
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "train.batch_size = 63 does not split over 2 processes" in done.stderr


def test_amp_without_native_bf16_is_ignored_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(ganzoo.device, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(RecipeWarning, match="train.amp is ignored on this cpu"):
        result = ganzoo.run("quickstart", overrides=[*MLP, "train.amp=true"],
                            out=tmp_path / "r", progress="none")  # fmt: skip
    assert result.step == 12
    assert json.loads((result.run_dir / "env.json").read_text())["bf16_autocast"] is False


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AMX/AVX512)")
def test_amp_on_a_cpu_with_native_bf16_trains_in_bf16(tmp_path):
    assert autocast_device(torch.device("cpu")) == "cpu"
    runs = {}
    for amp in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RecipeWarning)  # no "ignored" warning
            runs[amp] = ganzoo.run("quickstart", overrides=[*MLP, f"train.amp={str(amp).lower()}"],
                                   out=tmp_path / str(amp), progress="none")  # fmt: skip
    fp32, bf16 = (load_checkpoint(runs[amp].checkpoint)["generator"] for amp in (False, True))
    assert all(torch.isfinite(t).all() and t.dtype == torch.float32 for t in bf16.values())
    # bf16 products round differently: the same seed gives other (but close) weights
    assert any(not torch.equal(fp32[k], bf16[k]) for k in fp32)
    worst = max(float((fp32[k] - bf16[k]).abs().max()) for k in fp32)
    assert worst < 0.05
    assert json.loads((runs[True].run_dir / "env.json").read_text())["bf16_autocast"] is True


@pytest.mark.parametrize("r1_gamma", [0.0, 0.01])
def test_compiled_cpu_run_trains(tmp_path, r1_gamma):
    overrides = [*MLP, "train.compile=true", "train.steps=6", "train.channels_last=true",
                 f"loss.r1_gamma={r1_gamma}"]  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = ganzoo.run("quickstart", overrides=overrides, out=tmp_path / "run",
                            progress="none")  # fmt: skip
    uncompiled = [w for w in caught if "discriminator is not compiled" in str(w.message)]
    # R1 differentiates D twice, which torch.compile cannot: D alone stays uncompiled
    assert len(uncompiled) == (1 if r1_gamma else 0)
    state = load_checkpoint(result.checkpoint)
    assert state["step"] == 6
    assert all(torch.isfinite(t).all() for t in state["generator"].values())
    assert not any(name.startswith("_orig_mod") for name in state["generator"])


def test_training_speed_benchmark_runs_in_smoke_mode(tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("the training-speed benchmark reads MNIST's test split from ../shared/data")
    speed = subprocess.run(
        [sys.executable, "benchmarks/training_speed.py", "--smoke", "--cases", "mlp64,dcgan32",
         "--json", str(tmp_path / "s.json")],
        capture_output=True, text=True, cwd=REPO, env={**one_thread_env(), "GANZOO_DATA_DIR": str(data)},
        timeout=600,
    )  # fmt: skip
    assert speed.returncode == 0, speed.stderr[-3000:]
    rows = json.loads((tmp_path / "s.json").read_text())
    assert [row["case"] for row in rows] == ["mlp64", "dcgan32"]
    for row in rows:
        speeds = [row[side]["images_per_s"] for side in ("reference", "ganzoo")]
        assert min(speeds) > 0 and row["ratio"] == pytest.approx(speeds[1] / speeds[0])
        assert row["case"] in speed.stdout


def test_frechet_benchmark_runs_in_smoke_mode():
    frechet = subprocess.run(
        [sys.executable, "benchmarks/evaluation.py", "frechet", "--dims", "64", "--samples", "300",
         "--repeats", "1"],
        capture_output=True, text=True, cwd=REPO, env=one_thread_env(), timeout=300,
    )  # fmt: skip
    assert frechet.returncode == 0, frechet.stderr[-3000:]
    assert "separate processes" in frechet.stdout and "one process" in frechet.stdout


def test_mode_collapse_benchmark_runs_in_smoke_mode():
    modes = subprocess.run(
        [sys.executable, "benchmarks/mode_collapse.py", "recipes/quickstart.toml", "--seeds", "1",
         "--set", "train.steps=20", "--set", "train.log_every=10"],
        capture_output=True, text=True, cwd=REPO, env=one_thread_env(), timeout=300,
    )  # fmt: skip
    assert modes.returncode == 0, modes.stderr[-3000:]
    assert "quickstart (mean)" in modes.stdout
