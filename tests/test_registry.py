"""Registries filled from entry points: third-party plugins, broken plugins, clashes."""

from __future__ import annotations

import json
import warnings

import pytest
from conftest import run_cli

from ganzoo import registry
from ganzoo.errors import PluginError, UnknownComponentError
from ganzoo.registry import PluginClashWarning

GOOD_LOSS = '''
import torch.nn.functional as F
from pydantic import Field

from ganzoo.api import Loss, LossOutput, Params


class ScaledLoss(Loss):
    """Non-saturating loss times a factor (a third-party test plugin)."""

    class Params(Params):
        """Parameters of the scaled loss."""

        scale: float = Field(2.0, gt=0, description="The factor.")

    def discriminator_loss(self, D, real, fake):
        value = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        return LossOutput(self.params.scale * value)

    def generator_loss(self, D, real, fake):
        return LossOutput(self.params.scale * F.softplus(-D(fake)).mean())


def not_a_class():
    """A function where a class should be."""
'''

BUILTIN_LOSSES = ["acgan", "hinge", "least-squares", "minimax", "mmd", "non-saturating"]


def test_builtins_are_registered_through_entry_points():
    builtins = [e for e in registry.registry("losses") if e.builtin]
    assert [e.name for e in builtins] == BUILTIN_LOSSES
    for entry in builtins:
        assert entry.dist == "ganzoo"
        assert entry.summary()  # read from the source without importing


def test_listing_reads_metadata_only():
    probe = (
        "import sys; from ganzoo.cli import app; from ganzoo.describe import entry_info;"
        "from ganzoo.registry import registry;"
        "[entry_info(e) for k in ('losses', 'generators', 'datasets') for e in registry(k)];"
        "print('torch' in sys.modules, 'ganzoo.zoo.losses' in sys.modules)"
    )
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.split() == ["False", "False"], done.stderr


def test_third_party_plugin_is_listed_with_its_distribution(plugin_site):
    plugin_site(
        "ganzoo-scaled",
        "1.2.3",
        {"ganzoo.losses": {"scaled": "scaled_loss:ScaledLoss"}},
        {"scaled_loss": GOOD_LOSS},
    )
    done = run_cli("list", "losses", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)}
    assert rows["scaled"]["dist"] == "ganzoo-scaled"
    assert rows["scaled"]["version"] == "1.2.3"
    assert rows["scaled"]["summary"].startswith("Non-saturating loss times a factor")
    assert rows["hinge"]["dist"] == "ganzoo"
    table = run_cli("list", "losses").stdout
    assert "ganzoo-scaled 1.2.3" in table and "ganzoo 0.1.0" in table


def test_third_party_plugin_is_used_by_a_recipe(plugin_site, tmp_path):
    plugin_site(
        "ganzoo-scaled",
        "1.2.3",
        {"ganzoo.losses": {"scaled": "scaled_loss:ScaledLoss"}},
        {"scaled_loss": GOOD_LOSS},
    )
    recipe = tmp_path / "scaled.toml"
    recipe.write_text(
        'schema_version = 1\nname = "scaled"\n[generator]\nname = "mlp"\nhidden = [8]\n'
        '[discriminator]\nname = "mlp"\nhidden = [8]\n[loss]\nname = "scaled"\nscale = 3.0\n'
        '[data]\nname = "ring"\n'
    )
    done = run_cli("validate", str(recipe), "--print")
    assert done.returncode == 0, done.stderr
    assert 'name = "scaled"\nscale = 3.0' in done.stdout
    bad = run_cli("validate", str(recipe), "--set", "loss.scale=-1")
    assert bad.returncode == 2
    assert "loss.scale: Input should be greater than 0" in bad.stderr


def test_broken_plugins_leave_everything_else_working(plugin_site, tmp_path):
    plugin_site(
        "ganzoo-broken",
        "0.0.1",
        {
            "ganzoo.losses": {
                "explodes": "exploding:Anything",
                "missing-attr": "scaled_loss:DoesNotExist",
                "not-a-class": "scaled_loss:not_a_class",
                "no-module": "no_such_module_anywhere:Thing",
            },
            "ganzoo.generators": {"fine": "scaled_loss:ScaledLoss"},
        },
        {"exploding": "raise RuntimeError('boom at import')", "scaled_loss": GOOD_LOSS},
    )
    listing = run_cli("list", "losses", "--json")
    assert listing.returncode == 0, listing.stderr
    names = {r["name"] for r in json.loads(listing.stdout)}
    assert {"explodes", "missing-attr", *BUILTIN_LOSSES} <= names

    report = run_cli("plugins", "--json")
    assert report.returncode == 0, report.stderr
    dists = {d["dist"]: d for d in json.loads(report.stdout)}
    entries = {e["name"]: e for e in dists["ganzoo-broken"]["entries"]}
    assert "RuntimeError: boom at import" in entries["explodes"]["error"]
    assert "DoesNotExist" in entries["missing-attr"]["error"]
    assert "expected a class" in entries["not-a-class"]["error"]
    assert "No module named 'no_such_module_anywhere'" in entries["no-module"]["error"]
    assert "does not derive from ganzoo.api.Generator" in entries["fine"]["error"]
    assert all(e["status"] == "ok" for e in dists["ganzoo"]["entries"])
    table = run_cli("plugins").stdout
    assert "boom at import" in table

    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'schema_version = 1\nname = "r"\n[generator]\nname = "mlp"\n[discriminator]\n'
        'name = "mlp"\n[loss]\nname = "explodes"\n[data]\nname = "ring"\n'
    )
    failed = run_cli("validate", str(recipe))
    assert failed.returncode == 3
    assert "loss.name" in failed.stderr and "boom at import" in failed.stderr
    assert "Traceback" not in failed.stderr
    works = run_cli("validate", str(recipe), "--set", "loss.name=hinge")
    assert works.returncode == 0, works.stderr


def test_load_error_is_recorded_in_process(plugin_site):
    plugin_site(
        "ganzoo-broken",
        "0.0.1",
        {"ganzoo.losses": {"explodes": "exploding:Anything"}},
        {"exploding": "raise SystemExit('plugin called exit')"},
    )
    entry = registry.registry("loss").get("explodes")
    with pytest.raises(PluginError, match="plugin called exit"):
        entry.load()
    assert "SystemExit" in entry.load_error
    assert registry.registry("loss").load("hinge").__name__ == "HingeLoss"


def test_clashes_resolve_builtin_first_then_first_plugin(plugin_site):
    plugin_site(
        "ganzoo-first",
        "1.0",
        {"ganzoo.losses": {"hinge": "scaled_loss:ScaledLoss", "twin": "scaled_loss:ScaledLoss"}},
        {"scaled_loss": GOOD_LOSS},
    )
    plugin_site("ganzoo-second", "2.0", {"ganzoo.losses": {"twin": "scaled_loss:ScaledLoss"}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = registry.registry("losses")
        entries = {e.name: e for e in reg}
    assert entries["hinge"].dist == "ganzoo"
    assert entries["twin"].dist == "ganzoo-first"
    losers = {(loser.dist, loser.name) for loser, _ in reg.shadowed}
    assert losers == {("ganzoo-first", "hinge"), ("ganzoo-second", "twin")}
    messages = [str(w.message) for w in caught if w.category is PluginClashWarning]
    assert any("'twin' from ganzoo-second 2.0 is shadowed by" in m for m in messages)
    assert any(
        "'hinge' from ganzoo-first 1.0 is shadowed by the one from ganzoo" in m for m in messages
    )

    done = run_cli("list", "losses", "--json")
    assert done.returncode == 0
    rows = {r["name"]: r["dist"] for r in json.loads(done.stdout)}
    assert rows["hinge"] == "ganzoo" and rows["twin"] == "ganzoo-first"
    assert "warning: loss 'twin' from ganzoo-second 2.0 is shadowed" in done.stderr
    report = json.loads(run_cli("plugins", "--json").stdout)
    second = next(d for d in report if d["dist"] == "ganzoo-second")
    assert second["entries"][0]["status"] == "shadowed"


def test_disabled_plugin_is_ignored_but_reported(plugin_site, monkeypatch):
    plugin_site(
        "ganzoo-scaled",
        "1.2.3",
        {"ganzoo.losses": {"scaled": "scaled_loss:ScaledLoss"}},
        {"scaled_loss": GOOD_LOSS},
    )
    env = {"GANZOO_DISABLE_PLUGINS": "ganzoo_scaled"}
    names = {r["name"] for r in json.loads(run_cli("list", "losses", "--json", env=env).stdout)}
    assert "scaled" not in names and "hinge" in names
    report = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert next(d for d in report if d["dist"] == "ganzoo-scaled")["disabled"] is True


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UnknownComponentError) as info:
        registry.registry("losses").get("hinj")
    message = str(info.value)
    assert "unknown loss 'hinj'; did you mean 'hinge'?" in message
    assert "installed losses: acgan, hinge, least-squares, minimax, mmd, non-saturating" in message


def test_kind_names_accept_singular_and_plural():
    assert registry.kind_of("loss") is registry.kind_of("losses")
    with pytest.raises(UnknownComponentError, match="did you mean 'losses'"):
        registry.kind_of("losss")
