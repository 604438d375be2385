"""The recipes and extractors groups: a plugin ships a recipe and a feature extractor.

The plugin is registered the way pip installs one (a dist-info folder on sys.path); its recipe
lives in a package folder, as package data does.
"""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli

from ganzoo import registry
from ganzoo.api import DataSpec
from ganzoo.errors import PluginError, RecipeError
from ganzoo.metrics.frechet import frechet_distance, statistics
from ganzoo.recipe import find_recipe
from ganzoo.runs import RunFolder
from ganzoo.sources import GeneratorSamples
from ganzoo.testing import ConformanceError, check_extractor, check_recipe

EXTRACTOR = '''
import torch
from ganzoo.api import Extractor


class Identity(Extractor):
    """The samples themselves as features, times SCALE (default 1); logits from a fixed map."""

    argument = "SCALE"

    def __init__(self, scale):
        self.name = "identity"
        self.scale = scale

    @classmethod
    def build(cls, params, request):
        return cls(float(request.argument or 1))

    def protocol(self):
        return {"extractor": f"identity:{self.scale:g}", "features": "the samples"}

    def __call__(self, images):
        flat = images.flatten(1).float() * self.scale
        return flat, torch.stack([flat.sum(1), -flat.sum(1)], 1)


class BatchStatistics(Identity):
    """Features centred on the batch mean: they depend on the batch, which the kit refuses."""

    def __call__(self, images):
        flat = images.flatten(1).float()
        return flat - flat.mean(0), flat
'''


def tiny_recipe() -> str:
    text = (REPO / "recipes" / "quickstart.toml").read_text()
    text = text.replace('name = "quickstart"', 'name = "tiny_ring"')
    text = text.replace("hidden = [128, 128, 128]", "hidden = [16, 16]")
    text = text.replace("steps = 5000", "steps = 30")
    text = text.replace('schedule = "linear"', 'schedule = "constant"')
    body = "\n".join(line for line in text.splitlines() if not line.startswith("#"))
    return "# A tiny ring run shipped by a test plugin.\n" + body + "\n"


@pytest.fixture
def extension_plugin(plugin_site):
    site = plugin_site(
        "ganzoo-extensions",
        "0.3",
        {
            "ganzoo.recipes": {
                "tiny_ring": "extplug.recipes:tiny_ring.toml",
                "lost_recipe": "extplug.recipes:missing.toml",
            },
            "ganzoo.extractors": {
                "identity": "extplug.extract:Identity",
                "batchstat": "extplug.extract:BatchStatistics",
                "broken": "extplug.nowhere:Missing",
            },
        },
    )
    package = site / "extplug"
    (package / "recipes").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "recipes" / "__init__.py").write_text("")
    (package / "recipes" / "tiny_ring.toml").write_text(tiny_recipe())
    (package / "extract.py").write_text(textwrap.dedent(EXTRACTOR))
    registry.reset()
    return site


def test_both_are_listed_with_their_distribution(extension_plugin):
    recipes = {r["name"]: r for r in json.loads(run_cli("list", "recipes", "--json").stdout)}
    assert recipes["tiny_ring"]["dist"] == "ganzoo-extensions"
    assert recipes["tiny_ring"]["summary"] == "A tiny ring run shipped by a test plugin."
    assert recipes["tiny_ring"]["path"] == str(extension_plugin / "extplug/recipes/tiny_ring.toml")
    assert recipes["quickstart"]["dist"] == "ganzoo"
    extractors = {r["name"]: r for r in json.loads(run_cli("list", "extractors", "--json").stdout)}
    assert extractors["identity"]["dist"] == "ganzoo-extensions"
    assert extractors["identity"]["summary"].startswith("The samples themselves as features")
    assert {"inception-v3", "classifier"} <= extractors.keys()
    shown = run_cli("show", "extractor", "identity")
    assert "usage: --extractor identity[:SCALE]" in shown.stdout
    helped = run_cli("eval", "--help", env={"COLUMNS": "300"})
    assert "identity" in helped.stdout and "classifier" in helped.stdout


def test_the_recipe_runs_by_name_and_the_extractor_scores_it(extension_plugin, tmp_path):
    out = tmp_path / "run"
    done = run_cli("run", "tiny_ring", "--out", str(out), "--progress", "none")
    assert done.returncode == 0, done.stderr
    assert RunFolder.open(out).recipe().name == "tiny_ring"
    scores = {}
    for extractor in ("identity", "identity:3"):
        evaluated = run_cli(
            "eval", str(out), "--metrics", "fid", "--num-samples", "400", "--extractor",
            extractor, "--json",
        )  # fmt: skip
        assert evaluated.returncode == 0, evaluated.stderr
        (report,) = json.loads(evaluated.stdout)
        expected = {"identity": "identity:1", "identity:3": "identity:3"}[extractor]
        assert report["protocol"]["extractor"] == expected
        scores[extractor] = report["scores"]["fid"]
    # FID on the points themselves, computed here from the same samples
    trained = RunFolder.open(out).load_generator()
    samples = GeneratorSamples(trained.generator, 400, 0, torch.device("cpu"), trained.spec)
    fake = torch.cat(list(samples.batches(250))).numpy().astype(np.float64)
    data = trained.recipe.components["data"]
    real = data.component(data.params, tmp_path).tensor().numpy().astype(np.float64)
    expected = frechet_distance(*statistics(real), *statistics(fake))
    assert scores["identity"] == pytest.approx(expected, rel=1e-5)
    assert scores["identity:3"] == pytest.approx(9 * expected, rel=1e-5)


def test_broken_entries_are_isolated_and_shown(extension_plugin, tmp_path):
    rows = json.loads(run_cli("plugins", "--json").stdout)
    plugin = next(r for r in rows if r["dist"] == "ganzoo-extensions")
    status = {(e["kind"], e["name"]): e for e in plugin["entries"]}
    assert status[("extractor", "identity")]["status"] == "ok"
    assert status[("recipe", "tiny_ring")]["status"] == "ok"
    assert status[("extractor", "broken")]["status"] == "error"
    assert "ModuleNotFoundError" in status[("extractor", "broken")]["error"]
    assert status[("recipe", "lost_recipe")]["status"] == "error"
    assert "missing.toml" in status[("recipe", "lost_recipe")]["error"]
    listed = {r["name"] for r in json.loads(run_cli("list", "extractors", "--json").stdout)}
    assert {"identity", "broken", "classifier"} <= listed
    done = run_cli("fid", str(tmp_path), str(tmp_path), "--extractor", "broken")
    assert done.returncode == 3, done.stderr
    assert "extractor 'broken' (from ganzoo-extensions 0.3" in done.stderr
    assert "Traceback" not in done.stderr
    with pytest.raises(PluginError, match="recipe 'lost_recipe'"):
        find_recipe("lost_recipe")


def test_unknown_names_fail_with_suggestions(extension_plugin, tmp_path):
    with pytest.raises(
        RecipeError, match="no installed recipe of that name; did you mean 'tiny_ring'"
    ):
        find_recipe("tiny_rign")
    recipe = tmp_path / "r.toml"
    recipe.write_text(tiny_recipe().replace("[train]", '[eval]\nextractor = "identiy"\n\n[train]'))
    done = run_cli("validate", str(recipe))
    assert done.returncode == 2
    assert "eval.extractor: unknown extractor 'identiy'; did you mean 'identity'?" in done.stderr
    done = run_cli("fid", str(tmp_path), str(tmp_path), "--extractor", "inception-v3:x")
    assert done.returncode == 2
    assert "extractor 'inception-v3' takes no argument" in done.stderr


def test_the_conformance_kit_checks_extractors_and_recipes(extension_plugin):
    from extplug.extract import BatchStatistics, Identity

    check_extractor(Identity)
    check_extractor(Identity, spec=DataSpec((2,)))
    with pytest.raises(ConformanceError, match="differ alone and in a batch of 6"):
        check_extractor(BatchStatistics)
    check_recipe("tiny_ring")
    check_recipe("quickstart")
    with pytest.raises(ConformanceError, match="cannot be found or read"):
        check_recipe("lost_recipe")
