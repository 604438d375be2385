"""Benchmark scripts: the one-shot GPU check (benchmarks/gpu.py: its CPU smoke mode, its guards
and its refusal) and the discriminator-overfitting table (benchmarks/overfitting.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, shared_data_dir
from test_train import QUICK

import ganzoo
from ganzoo.build import build_dataset, build_networks
from ganzoo.checkpoint import load_checkpoint
from ganzoo.runs import RunFolder
from ganzoo.subset import training_set

SECTIONS = ["dcgan32-fp32", "dcgan32-amp", "dcgan32-amp-compile", "inception", "fid-parity"]


SCRIPTS = ("gpu", "evaluation", "training_speed")  # gpu.py imports the other two


@pytest.fixture
def gpu_script(monkeypatch):
    """benchmarks/gpu.py as a module; sys.path and sys.modules are restored after."""
    monkeypatch.setattr(sys, "path", [str(REPO / "benchmarks"), *sys.path])
    for name in SCRIPTS:
        monkeypatch.delitem(sys.modules, name, raising=False)
    import gpu

    yield gpu
    for name in SCRIPTS:
        sys.modules.pop(name, None)


def test_smoke_mode_runs_every_section_on_the_cpu(tmp_path):
    data = shared_data_dir()
    if data is None:
        pytest.skip("the FID section reads MNIST or Fashion-MNIST from ../shared/data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GANZOO_DATA_DIR": str(data),
           "CUDA_VISIBLE_DEVICES": ""}  # fmt: skip
    out = tmp_path / "out.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu.py", "--smoke", "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    table = json.loads(out.read_text())
    assert table["smoke"] is True and table["environment"]["device"] == "cpu"
    assert list(table["sections"]) == SECTIONS
    for name, row in table["sections"].items():
        assert row["error"] is None, (name, row["error"])
        assert name in done.stdout and row["details"] in done.stdout
        assert row["meets_target"] is None  # smoke figures are not held against the targets
        assert row["peak_gpu_mb"] is None  # no GPU memory on the CPU
    for name in SECTIONS[:4]:
        assert table["sections"][name]["unit"] == "images/s"
        assert table["sections"][name]["value"] > 0
    fid = table["sections"]["fid-parity"]
    assert fid["unit"] == "relative difference" and math.isfinite(fid["value"])
    assert math.isfinite(fid["fid_device"]) and math.isfinite(fid["fid_cpu"])
    assert fid["value"] == 0.0  # smoke mode compares the CPU with itself
    assert table["sections"]["dcgan32-amp"]["target"].startswith(">= 50,000 images/s")
    assert "aot_eager" in table["sections"]["dcgan32-amp-compile"]["details"]


def test_without_cuda_and_without_smoke_it_refuses_with_exit_2():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "benchmarks/gpu.py"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "--smoke" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_a_failing_section_becomes_its_row_and_the_others_still_count(gpu_script, capsys):
    cpu = torch.device("cpu")

    def broken() -> dict:
        raise RuntimeError("torch.compile is not available here\nsecond line")

    row = gpu_script.with_target(gpu_script.run_section("dcgan32-amp", cpu, broken), smoke=False)
    assert row["error"] == "RuntimeError: torch.compile is not available here"
    assert row["value"] is None and row["meets_target"] is None
    assert "Traceback" in capsys.readouterr().err
    gpu_script.print_row(row)
    line = capsys.readouterr().out
    assert line.startswith("dcgan32-amp") and "FAILED" in line and "not available here" in line
    fine = gpu_script.run_section("inception", cpu, lambda: {"value": 2500.0, "unit": "images/s",
                                                             "details": "x"})  # fmt: skip
    assert gpu_script.with_target(fine, smoke=False)["meets_target"] is True
    parity = {"value": 2e-3, "unit": "relative difference", "details": "x"}
    slow = gpu_script.run_section("fid-parity", cpu, lambda: parity)
    assert gpu_script.with_target(slow, smoke=False)["meets_target"] is False


def test_held_out_indices_avoid_the_subset_and_repeat_with_the_seed():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from overfitting import held_out_indices
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    subset = torch.tensor([0, 3, 4, 9])
    drawn = held_out_indices(10, subset, 3, seed=1)
    assert len(drawn) == 3 and not set(drawn.tolist()) & set(subset.tolist())
    assert drawn.tolist() == sorted(drawn.tolist())
    assert torch.equal(drawn, held_out_indices(10, subset, 3, seed=1))
    assert held_out_indices(10, subset, 100).tolist() == [1, 2, 5, 6, 7, 8]


def test_overfitting_judges_the_runs_subset_the_images_outside_it_and_its_samples(tmp_path):
    overrides = [*QUICK, "data.subset=0.01", "eval.metrics=[]"]
    run = ganzoo.run("quickstart", overrides=overrides, out=tmp_path / "run", progress="none")
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, "benchmarks/overfitting.py", str(run.run_dir), "--json", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [row["step"] for row in rows] == [20, 40]
    assert [line.split()[0] for line in done.stdout.splitlines()[2:]] == ["20", "40"]
    folder = RunFolder.open(run.run_dir)
    recipe = folder.recipe()
    full = build_dataset(recipe, REPO)  # a mixture: nothing read from the folder
    subset = training_set(full, recipe)
    D = build_networks(recipe, full.spec, "cpu").discriminator
    D.load_state_dict(load_checkpoint(folder.checkpoint("step_00000040.pt"))["discriminator"])
    with torch.no_grad():
        logits = D(subset.tensor()).flatten()
    assert rows[1]["train"]["logit"] == pytest.approx(logits.mean().item(), abs=1e-5)
    assert rows[1]["train"]["real"] == pytest.approx((logits > 0).float().mean().item())
    for row in rows:
        assert all(0.0 <= row[s]["real"] <= 1.0 for s in ("train", "held-out", "generated"))
        assert row["held-out"]["logit"] != row["train"]["logit"]

    whole = ganzoo.run("quickstart", overrides=QUICK, out=tmp_path / "whole", progress="none")
    refused = subprocess.run(
        [sys.executable, "benchmarks/overfitting.py", str(whole.run_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "the run trains on all of its data (no data.subset)" in refused.stderr
    missing = subprocess.run(
        [sys.executable, "benchmarks/overfitting.py", str(tmp_path / "nothing")],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert missing.returncode == 1 and missing.stderr.startswith("error: ")
    assert "Traceback" not in missing.stderr
