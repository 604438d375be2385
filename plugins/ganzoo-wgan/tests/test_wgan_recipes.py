"""The shipped recipes: registered in ganzoo.recipes, valid, and a short run of one trains."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import ganzoo
import pytest
from ganzoo.build import check_networks
from ganzoo.recipe import load_recipe
from ganzoo.registry import registry
from ganzoo.testing import check_recipe

import ganzoo_wgan


def test_recipes_are_installed_with_the_package():
    assert set(ganzoo_wgan.bundled_recipes()) == {"wgan_gp_grid", "wgan_gp_mnist"}
    done = subprocess.run(
        [sys.executable, "-m", "ganzoo_wgan", "wgan_gp_mnist"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(ganzoo_wgan.bundled_recipes()["wgan_gp_mnist"])


@pytest.mark.parametrize("name", ["wgan_gp_grid", "wgan_gp_mnist"])
def test_recipes_are_registered_under_this_distribution_and_conform(name):
    entry = registry("recipes").get(name)
    assert (entry.dist, entry.load()) == ("ganzoo-wgan", ganzoo_wgan.bundled_recipes()[name])
    check_recipe(name)


@pytest.mark.parametrize("name", ["wgan_gp_grid", "wgan_gp_mnist"])
def test_recipes_are_valid_and_leave_d_steps_to_the_loss(name):
    recipe = load_recipe(ganzoo_wgan.bundled_recipes()[name])
    check_networks(recipe)
    assert recipe.components["loss"].name == "wgan-gp"
    assert recipe.train.d_steps is None  # the loss's default: 5 critic steps


def test_mnist_recipe_uses_the_paper_settings():
    recipe = load_recipe(ganzoo_wgan.bundled_recipes()["wgan_gp_mnist"])
    assert recipe.components["discriminator"].name == "wgan-critic"
    assert recipe.components["loss"].params.gp_lambda == 10.0
    for optimizer in (recipe.train.generator_optimizer, recipe.train.discriminator_optimizer):
        assert (optimizer.name, optimizer.lr, optimizer.betas) == ("adam", 1e-4, (0.0, 0.9))
    assert recipe.train.batch_size == 64


def test_a_short_grid_run_logs_finite_losses_and_the_penalty(tmp_path):
    result = ganzoo.run(
        ganzoo_wgan.bundled_recipes()["wgan_gp_grid"],
        overrides=[
            "generator.hidden=[16, 16]",
            "discriminator.hidden=[16, 16]",
            "data.num_samples=2000",
            "train.batch_size=64",
            "train.steps=20",
            "train.log_every=10",
            "train.sample_every=20",
            "train.checkpoint_every=20",
        ],
        out=tmp_path / "run",
        progress="none",
    )
    assert result.step == 20
    records = [
        json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in records] == [10, 20]
    for r in records:
        for key in ("d_loss", "g_loss", "gp", "wasserstein", "d_real", "d_fake"):
            assert math.isfinite(r[key]), (key, r)
        assert r["gp"] >= 0
