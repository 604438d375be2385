"""ganzoo-wgan, a plugin installed with pip as a third party would be: listed, shown, trained.

These tests need the plugin installed into this environment (CI runs
``pip install -e ".[test]" ./plugins/ganzoo-wgan``); without it they are skipped. The
uninstall test installs and uninstalls it again with pip in a throwaway virtual environment
that sees this environment's packages except the plugin, so the shared one is left alone.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from importlib import metadata

import pytest
import torch
from conftest import REPO, run_cli
from plugin_env import installed_losses, isolated_python, pip, pip_install_copy, run_in
from test_train import write_idx_mnist

from ganzoo.checkpoint import load_checkpoint

PLUGIN = "ganzoo-wgan"
SOURCE = REPO / "plugins" / PLUGIN
try:
    DIST = metadata.distribution(PLUGIN)
except metadata.PackageNotFoundError:
    pytest.skip(
        f"{PLUGIN} is not installed in this environment (pip install ./plugins/{PLUGIN})",
        allow_module_level=True,
    )
VERSION = DIST.version

import ganzoo_wgan  # noqa: E402  (installed, as checked above)


def test_list_names_the_plugin_and_its_version():
    rows = json.loads(run_cli("list", "losses", "--json").stdout)
    row = next(r for r in rows if r["name"] == "wgan-gp")
    assert (row["dist"], row["version"], row["builtin"]) == (PLUGIN, VERSION, False)
    assert row["value"] == "ganzoo_wgan.losses:WGANGPLoss"
    assert row["summary"].startswith("Wasserstein loss with gradient penalty")
    table = run_cli("list", "losses", env={"COLUMNS": "200"}).stdout
    line = next(ln for ln in table.splitlines() if " wgan-gp " in ln)
    assert f"{PLUGIN} {VERSION}" in line
    critics = json.loads(run_cli("list", "discriminators", "--json").stdout)
    assert {r["name"] for r in critics if r["dist"] == PLUGIN} == {"wgan-critic", "wgan-mlp-critic"}


def test_show_gives_the_loss_parameters():
    done = run_cli("show", "loss", "wgan-gp", env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert f"loss wgan-gp  ({PLUGIN} {VERSION})" in done.stdout
    assert "discriminator steps per generator step: 5" in done.stdout
    line = next(ln for ln in done.stdout.splitlines() if " gp_lambda " in ln)
    assert "10.0" in line and "Weight lambda of the gradient penalty" in line
    info = json.loads(run_cli("show", "loss", "wgan-gp", "--json").stdout)
    assert [(p["name"], p["default"]) for p in info["params"]] == [
        ("gp_lambda", 10.0),
        ("drift", 0.0),
    ]
    assert info["default_d_steps"] == 5


def test_gradient_penalty_of_a_linear_critic_by_hand():
    from ganzoo_wgan.losses import WGANGPLoss

    # f(x) = 3 x1 + 4 x2 + 0.5 has gradient (3, 4), of norm 5, at every interpolate:
    # GP = (5 - 1)^2 = 16. f(real) = (3.5, 4.5), f(fake) = (0.5, 1.5): W = 4 - 1 = 3, and
    # the critic's loss is -3 + 10 * 16 = 157.
    critic = torch.nn.Linear(2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 4.0]]))
        critic.bias.fill_(0.5)
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    fake = torch.tensor([[0.0, 0.0], [-1.0, 1.0]])
    loss = WGANGPLoss(WGANGPLoss.Params())
    out = loss.discriminator_loss(torch.nn.Sequential(critic, torch.nn.Flatten(0)), real, fake)
    assert out.logs["gp"].item() == pytest.approx(16.0)
    assert out.logs["wasserstein"].item() == pytest.approx(3.0)
    assert out.value.item() == pytest.approx(157.0)


def test_plugin_recipe_trains_from_the_command_line(tmp_path):
    write_idx_mnist(tmp_path / "data", n=512)
    out = tmp_path / "run"
    settings = [
        "generator.latent_dim=8", "generator.base_channels=8", "discriminator.base_channels=8",
        "train.steps=4", "train.batch_size=16", "train.log_every=2", "train.sample_every=4",
        "train.checkpoint_every=4", "train.num_samples=16", "eval.metrics=[]",
    ]  # fmt: skip
    done = run_cli(
        "run", str(ganzoo_wgan.bundled_recipes()["wgan_gp_mnist"]), "--out", str(out),
        "--data-dir", str(tmp_path / "data"), *(a for s in settings for a in ("--set", s)),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for r in records:
        for key in ("d_loss", "g_loss", "gp", "wasserstein"):
            assert math.isfinite(r[key]), (key, r)
        assert r["gp"] > 0
    assert f"{PLUGIN}=={VERSION}" in json.loads((out / "env.json").read_text())["plugins"]
    # d_steps is left to the loss: 5 critic batches of 16 per step, 4 steps
    assert load_checkpoint(out / "checkpoints" / "last.pt")["data"] == {
        "epoch": 0, "position": 4 * 5 * 16
    }  # fmt: skip


def test_the_plugins_own_tests_pass(tmp_path):
    options = ["-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path / "basetemp")]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *options, "tests"],
        cwd=SOURCE,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout


# --- a real pip install and uninstall, in an environment of its own ---------------------------


def test_uninstalling_the_plugin_leaves_ganzoo_working(tmp_path):
    python = isolated_python(tmp_path, without=PLUGIN)
    before = installed_losses(python)
    assert "wgan-gp" not in before and "hinge" in before
    pip_install_copy(python, SOURCE, tmp_path)
    assert installed_losses(python)["wgan-gp"] == f"{PLUGIN} {VERSION}"
    found = run_in(python, "-m", "ganzoo_wgan", "wgan_gp_mnist").stdout.strip()
    recipe = shutil.copy(found, tmp_path / "wgan_gp_mnist.toml")

    assert f"Successfully uninstalled {PLUGIN}-{VERSION}" in pip(python, "uninstall", "-y", PLUGIN)
    assert installed_losses(python) == before
    done = run_in(python, "-m", "ganzoo", "validate", str(recipe))
    assert done.returncode == 2, done.stderr
    assert "loss.name: unknown loss 'wgan-gp'" in done.stderr
    assert f"(installed losses: {', '.join(before)})" in done.stderr
    assert "discriminator.name: unknown discriminator 'wgan-critic'" in done.stderr
