"""The thread budget: train.threads / --threads, what auto picks, and the claims of live runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from conftest import run_cli

import ganzoo
from ganzoo import threads
from ganzoo.api import DataSpec
from ganzoo.zoo.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

QUICK = ["--set", "train.steps=20", "--set", "train.log_every=10", "--progress", "none"]
HOLD = """
import sys, time
from pathlib import Path
from ganzoo.threads import claim
lock = claim(int(sys.argv[2]), Path(sys.argv[1]))
print("claimed", flush=True)
time.sleep(600)
"""


@pytest.fixture
def no_omp(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_an_explicit_count_is_taken_as_given(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    choice = threads.choose(3, macs=10, available=2)
    assert (choice.threads, choice.reason) == (3, "train.threads")


def test_auto_honours_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.choose("auto", macs=10**12, available=8).threads == 3


def test_auto_takes_one_thread_for_a_small_step(no_omp):
    small = threads.choose("auto", macs=threads.SMALL_STEP - 1, others=0, available=8)
    large = threads.choose("auto", macs=threads.SMALL_STEP, others=0, available=8)
    unknown = threads.choose("auto", macs=None, others=0, available=8)
    assert (small.threads, large.threads, unknown.threads) == (1, 8, 8)
    assert "small step" in small.reason


def test_auto_leaves_the_cores_other_runs_claim(no_omp):
    assert threads.choose("auto", macs=None, others=3, available=8).threads == 5
    assert threads.choose("auto", macs=None, others=8, available=8).threads == 1
    assert threads.choose("auto", macs=None, world=4, others=0, available=8).threads == 2


def test_a_claim_counts_while_its_process_lives_and_not_after_sigkill(tmp_path):
    folder = tmp_path / "claims"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
        assert threads.claimed_by_others(folder) == 3
        own = threads.claim(2, folder)  # this process's own claim is never counted
        assert own is not None and threads.claimed_by_others(folder) == 3
        own.release()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert threads.claimed_by_others(folder) == 0
    assert list(folder.iterdir()) == []  # the dead run's claim file is gone


def test_a_budget_follows_the_claims_of_other_runs(tmp_path, no_omp, monkeypatch):
    monkeypatch.setattr(threads, "cores", lambda: 4)
    folder = tmp_path / "claims"
    before = torch.get_num_threads()
    budget = threads.ThreadBudget("auto", None, folder=folder)
    holder = None
    try:
        assert budget.choice.threads == 4 and torch.get_num_threads() == 4
        assert [p.name for p in folder.iterdir()] == [f"{os.getpid()}-4.lock"]
        assert not budget.adjust()
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder), "3"], stdout=subprocess.PIPE, text=True
        )
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n"
        assert budget.adjust() and budget.choice.threads == 1 and torch.get_num_threads() == 1
        assert "3 claimed by other ganzoo runs" in budget.choice.reason
        names = sorted(p.name for p in folder.iterdir())
        assert names == sorted([f"{os.getpid()}-1.lock", f"{holder.pid}-3.lock"])
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert budget.adjust() and budget.choice.threads == 4 and torch.get_num_threads() == 4
    finally:
        if holder is not None and holder.poll() is None:
            holder.kill()
        budget.close()
    assert torch.get_num_threads() == before
    assert list(folder.iterdir()) == []


def test_a_small_step_keeps_its_one_thread_whatever_the_others_do(tmp_path, no_omp):
    budget = threads.ThreadBudget("auto", macs=1000, folder=tmp_path / "claims")
    try:
        assert budget.choice.threads == 1 and not budget.choice.shared
        assert not budget.adjust()
    finally:
        budget.close()


def test_step_macs_counts_the_forward_passes_and_changes_nothing():
    spec = DataSpec(shape=(784,), num_classes=10)
    G = MLPGenerator(MLPGenerator.Params(latent_dim=8, hidden=[16], batch_norm=True), spec)
    D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[32], dropout=0.3), spec)
    G.train()
    before = {k: v.clone() for k, v in G.state_dict().items()}
    rng = torch.get_rng_state()
    macs = threads.step_macs(G, D, batch=5)
    # G: 8->16->784, D: 784->32->1, per sample; times the batch
    assert macs == 5 * (8 * 16 + 16 * 784 + 784 * 32 + 32 * 1)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())
    assert G.training


def test_step_macs_of_a_conditional_conv_pair():
    spec = DataSpec(shape=(1, 28, 28), num_classes=10)
    G = DCGANGenerator(DCGANGenerator.Params(base_channels=8, conditional=True), spec)
    D = DCGANDiscriminator(
        DCGANDiscriminator.Params(base_channels=8, batch_norm=False, conditional=True), spec
    )
    alone = threads.step_macs(G, None, batch=4)
    both = threads.step_macs(G, D, batch=4)
    assert alone is not None and both is not None and both > alone > 0
    assert threads.step_macs(G, D, batch=8) == 2 * both


def test_threads_option_is_recorded_and_the_library_restores_the_count(tmp_path, no_omp):
    result = run_cli("run", "quickstart", "--out", str(tmp_path / "a"), "--threads", "2", *QUICK)
    assert result.returncode == 0, result.stderr
    env = json.loads((tmp_path / "a/env.json").read_text())
    assert (env["threads"], env["threads_setting"], env["threads_why"]) == (2, "2", "train.threads")
    assert "threads = 2" in (tmp_path / "a/resolved.toml").read_text()

    before = torch.get_num_threads()
    ganzoo.run(
        "quickstart",
        out=tmp_path / "b",
        progress="none",
        overrides=["train.steps=20", "train.batch_size=64"],
    )
    assert torch.get_num_threads() == before
    env = json.loads((tmp_path / "b/env.json").read_text())
    assert (env["threads"], env["threads_setting"]) == (1, "auto")
    assert env["threads_why"].startswith("a small step")


def test_a_bad_threads_value_is_refused(tmp_path):
    result = run_cli("run", "quickstart", "--out", str(tmp_path / "a"), "--threads", "many")
    assert result.returncode == 2
    assert "--threads many: give a number of threads (1 or more) or auto" in result.stderr
    result = run_cli("validate", "quickstart", "--set", "train.threads=0")
    assert result.returncode == 2 and "train.threads" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_running_run_holds_a_claim_that_goes_with_it(tmp_path, no_omp, monkeypatch):
    # a temporary folder of its own: the runs of tests beside it scan the shared claims folder,
    # and one that holds the dead run's lock for a moment would make it look alive
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    folder = threads.claims_folder()
    assert folder.is_relative_to(tmp_path)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("ganzoo")), "run", "quickstart",
         "--out", str(tmp_path / "run"), "--threads", "1", "--progress", "none"],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        name = f"{process.pid}-1.lock"
        while not (folder / name).exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        assert threads.claimed_by_others() == 1
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert threads.claimed_by_others() == 0  # and the dead run's claim is cleared
    assert not (folder / name).exists()
