"""The plugin contract at run time: what a loss may return, and how a plugin that breaks the
contract is named (its distribution and version, the component, the method, what was expected).

The plugin ``ganzoo-contract 0.1`` is registered as pip would install it; its components are
the built-in MLPs and a non-saturating loss that returns plain tensors, each bent one way.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from test_train import sets

import ganzoo
from ganzoo.build import check_networks
from ganzoo.checkpoint import load_checkpoint
from ganzoo.contract import blame
from ganzoo.errors import PluginError
from ganzoo.recipe import load_recipe
from ganzoo.registry import registry
from ganzoo.testing import ConformanceError, check_generator, check_loss
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

LOSSES = '''
import torch.nn.functional as F

from ganzoo.api import Loss, Params, judge


class PlainLoss(Loss):
    """The non-saturating loss, returning plain scalar tensors as the design sketch shows."""

    class Params(Params):
        """No parameters."""

    def discriminator_loss(self, D, real, fake):
        real_logits, fake_logits = judge(D, real, fake)
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, D, real, fake):
        return F.softplus(-D(fake)).mean()


class StringLoss(PlainLoss):
    """Returns a string from generator_loss."""

    def generator_loss(self, D, real, fake):
        return "0.5"


class VectorLoss(PlainLoss):
    """Returns one value per sample from generator_loss."""

    def generator_loss(self, D, real, fake):
        return F.softplus(-D(fake))


class RaisingLoss(PlainLoss):
    """Raises inside a helper of generator_loss."""

    def generator_loss(self, D, real, fake):
        return self._term(D(fake))

    def _term(self, logits):
        raise ValueError("the plugin's own bug")


class MisfedLoss(PlainLoss):
    """Feeds the discriminator a batch with one value per sample too few."""

    def generator_loss(self, D, real, fake):
        return D(fake[:, :-1]).mean()
'''

NETWORKS = '''
import torch

from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator


class Generator(MLPGenerator):
    """The MLP generator, as a plugin's."""


class ShortGenerator(MLPGenerator):
    """An MLP generator that drops the last value of every sample."""

    def forward(self, z, y=None):
        return super().forward(z, y)[..., :-1]


class IntegerGenerator(MLPGenerator):
    """An MLP generator of integer samples."""

    def forward(self, z, y=None):
        return super().forward(z, y).long()


class WideDiscriminator(MLPDiscriminator):
    """An MLP discriminator with logits of shape (N, 1)."""

    def forward(self, x, y=None):
        return super().forward(x, y)[:, None]


class WrongClassesDiscriminator(MLPDiscriminator):
    """An MLP discriminator whose ACGAN head gives one class logit too many."""

    def classify(self, x):
        logits = super().classify(x)
        return torch.cat([logits, logits[:, :1]], 1)


class LateDiscriminator(MLPDiscriminator):
    """An MLP discriminator that works on the meta device and raises on real tensors."""

    def forward(self, x, y=None):
        if not x.is_meta:
            raise KeyError("lost")
        return super().forward(x, y)
'''

ENTRY_POINTS = {
    "ganzoo.losses": {
        name: f"contract_losses:{cls}"
        for name, cls in [("plain", "PlainLoss"), ("string", "StringLoss"),
                          ("vector", "VectorLoss"), ("raising", "RaisingLoss"),
                          ("misfed", "MisfedLoss")]
    },
    "ganzoo.generators": {
        name: f"contract_networks:{cls}"
        for name, cls in [("plugin-mlp", "Generator"), ("short", "ShortGenerator"),
                          ("integer", "IntegerGenerator")]
    },
    "ganzoo.discriminators": {
        "wide": "contract_networks:WideDiscriminator",
        "late": "contract_networks:LateDiscriminator",
        "wrong-classes": "contract_networks:WrongClassesDiscriminator",
    },
}  # fmt: skip

RECIPE = """\
# A tiny run on the ring for contract tests.
schema_version = 1
name = "contract"

[generator]
name = "mlp"
latent_dim = 2
hidden = [8]

[discriminator]
name = "mlp"
hidden = [8]

[loss]
name = "plain"

[data]
name = "ring"
num_samples = 256

[train]
steps = 4
batch_size = 16
log_every = 2
sample_every = 4
checkpoint_every = 2
num_samples = 16
"""


@pytest.fixture
def site(plugin_site) -> Path:
    return plugin_site(
        "ganzoo-contract", "0.1", ENTRY_POINTS,
        {"contract_losses": LOSSES, "contract_networks": NETWORKS},
    )  # fmt: skip


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "contract.toml"
    path.write_text(RECIPE)
    return path


def plugin_message(component: str, rest: str) -> str:
    return f"error: plugin ganzoo-contract 0.1 ({component}): {rest}"


# --- training runs, as a user starts them -------------------------------------------------------


def test_a_loss_returning_plain_tensors_trains(site, recipe, tmp_path):
    out = tmp_path / "run"
    done = run_cli(
        "run", str(recipe), "--out", str(out), *sets("generator.name=plugin-mlp"),
        "--progress", "none",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "last.pt", "step_00000002.pt", "step_00000004.pt"
    ]  # fmt: skip
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4]
    for record in records:
        assert set(record) == {"step", "time", "d_loss", "g_loss", "images_per_s"}
        assert 0 < record["d_loss"] < 10 and 0 < record["g_loss"] < 10

    # The plugin is upgraded after training, and its generator now breaks the contract.
    upgraded = NETWORKS.replace(
        '"""The MLP generator, as a plugin\'s."""',
        '"""The MLP generator, upgraded."""\n\n'
        "    def forward(self, z, y=None):\n"
        "        return super().forward(z, y)[..., :-1]",
    )
    assert upgraded != NETWORKS
    (site / "contract_networks.py").write_text(upgraded)
    sampled = run_cli("sample", str(out), "--n", "4", "--out", str(tmp_path / "s.png"))
    assert sampled.returncode == 3, sampled.stderr
    message = plugin_message(
        "generator 'plugin-mlp'",
        "forward returned samples of shape (4, 1); expected (4, 2), (N, *spec.shape)",
    )
    assert message in sampled.stderr.splitlines()
    assert "Traceback" not in sampled.stderr
    assert not (tmp_path / "s.png").exists()


BROKEN_LOSSES = [
    ("string", "generator_loss returned str; expected a scalar tensor or ganzoo.api.LossOutput"),
    ("vector", "generator_loss returned a torch.float32 tensor of shape (16,); expected a scalar "
               "tensor (reduce it, e.g. with .mean())"),
    ("raising", "generator_loss raised ValueError: the plugin's own bug "
                "(ganzoo --debug shows its traceback)"),
]  # fmt: skip


@pytest.mark.parametrize(("loss", "message"), BROKEN_LOSSES, ids=[b[0] for b in BROKEN_LOSSES])
def test_a_loss_breaking_the_contract_is_named(site, recipe, tmp_path, loss, message):
    done = run_cli(
        "run", str(recipe), "--out", str(tmp_path / "run"), *sets(f"loss.name={loss}"),
        "--progress", "none",
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.splitlines().count(plugin_message(f"loss {loss!r}", message)) == 1
    assert "Traceback" not in done.stderr
    assert "internal error" not in done.stderr


def test_debug_shows_the_plugins_traceback(site, recipe, tmp_path):
    done = run_cli(
        "--debug", "run", str(recipe), "--out", str(tmp_path / "run"), *sets("loss.name=raising"),
        "--progress", "none",
    )  # fmt: skip
    assert done.returncode == 3
    assert "Traceback (most recent call last)" in done.stderr
    assert re.search(r'contract_losses\.py", line \d+, in _term', done.stderr)
    assert "ValueError: the plugin's own bug" in done.stderr
    assert done.stderr.splitlines()[-1] == plugin_message("loss 'raising'", BROKEN_LOSSES[2][1])


def test_a_generator_of_the_wrong_shape_is_named_before_training(site, recipe, tmp_path):
    out = tmp_path / "run"
    done = run_cli("run", str(recipe), "--out", str(out), *sets("generator.name=short"))
    assert done.returncode == 3
    message = plugin_message(
        "generator 'short'",
        "forward returned samples of shape (16, 1); expected (16, 2), (N, *spec.shape)",
    )
    assert message in done.stderr.splitlines()
    assert "Traceback" not in done.stderr
    assert not out.exists()


# --- the same checks, in process ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "component", "message"),
    [
        ("generator.name=integer", "generator 'integer'",
         "forward returned torch.int64 samples; expected a floating-point tensor"),
        ("discriminator.name=wide", "discriminator 'wide'",
         "forward returned logits of shape (16, 1); expected (16,), one logit per sample"),
    ],
    ids=["integer-samples", "logits-n-by-1"],
)  # fmt: skip
def test_network_outputs_are_checked_when_a_recipe_is_validated(
    site, recipe, setting, component, message
):
    with pytest.raises(PluginError) as caught:
        check_networks(load_recipe(recipe, [setting]))
    assert str(caught.value) == plugin_message(component, message).removeprefix("error: ")


def test_a_plugin_raising_mid_run_is_named_with_its_caller(site, recipe, tmp_path):
    with pytest.raises(PluginError) as caught:
        ganzoo.run(recipe, overrides=["discriminator.name=late"], out=tmp_path / "run",
                   progress="none")  # fmt: skip
    assert str(caught.value) == (
        "plugin ganzoo-contract 0.1 (discriminator 'late'): forward raised KeyError: 'lost' "
        "(called by loss 'plain' in discriminator_loss) (ganzoo --debug shows its traceback)"
    )
    assert isinstance(caught.value.__cause__, KeyError)
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


def test_blame_falls_on_the_plugin_not_on_the_networks_it_misuses(site):
    misfed = registry("losses").load("misfed")(registry("losses").load("misfed").Params())
    D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[8]), ganzoo.api.DataSpec((2,)))
    with pytest.raises(RuntimeError) as caught:
        misfed.generator_loss(D, torch.zeros(4, 2), torch.zeros(4, 2))
    blamed = blame(caught.value)
    assert blamed is not None
    assert str(blamed).startswith(
        "plugin ganzoo-contract 0.1 (loss 'misfed'): generator_loss raised RuntimeError: "
    )
    assert registry("generators").load("mlp") is MLPGenerator  # a known, built-in component
    G = MLPGenerator(MLPGenerator.Params(latent_dim=2, hidden=[8]), ganzoo.api.DataSpec((2,)))
    with pytest.raises(RuntimeError) as builtin:
        G(torch.zeros(4, 3))  # ganzoo's own network, misused by no plugin: ganzoo's own bug
    assert blame(builtin.value) is None


# --- the conformance kit ------------------------------------------------------------------------


@pytest.fixture
def plugin(site):
    return importlib.import_module("contract_losses"), importlib.import_module("contract_networks")


def test_the_kit_accepts_a_loss_returning_plain_tensors(plugin):
    losses, _ = plugin
    check_loss(losses.PlainLoss)


KIT_FINDINGS = [
    ("StringLoss", "StringLoss: generator_loss returned str; expected a scalar tensor or "
                   "ganzoo.api.LossOutput"),
    ("VectorLoss", "VectorLoss: generator_loss returned a torch.float32 tensor of shape (8,); "
                   "expected a scalar tensor (reduce it, e.g. with .mean())"),
    ("RaisingLoss", "RaisingLoss: generator_loss raised ValueError: the plugin's own bug"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "message"), KIT_FINDINGS, ids=[k[0] for k in KIT_FINDINGS])
def test_the_kit_rejects_losses_that_would_fail_training(plugin, name, message):
    losses, _ = plugin
    with pytest.raises(ConformanceError) as caught:
        check_loss(getattr(losses, name))
    assert str(caught.value) == message


def test_the_kit_names_a_network_method_that_raises():
    class Broken(MLPGenerator):
        """An MLP generator whose forward fails."""

        def forward(self, z, y=None):
            raise IndexError("no such layer")

    with pytest.raises(ConformanceError) as caught:
        check_generator(Broken, specs=[ganzoo.api.DataSpec((2,))])
    assert str(caught.value) == (
        "test_the_kit_names_a_network_method_that_raises.<locals>.Broken: for data of shape "
        "(2,), train mode: forward raised IndexError: no such layer"
    )
    assert isinstance(caught.value.__cause__, IndexError)


ACGAN_RECIPE = """\
schema_version = 1
name = "acgan-contract"

[generator]
name = "mlp"
latent_dim = 8
hidden = [16]
conditional = true

[discriminator]
name = "wrong-classes"
hidden = [16]
dropout = 0.0
classifier = true

[loss]
name = "acgan"

[data]
name = "mnist"
split = "train"

[train]
steps = 2
batch_size = 16
"""


def test_a_class_head_of_the_wrong_shape_is_named(site, tmp_path):
    from test_train import write_idx_mnist

    write_idx_mnist(tmp_path / "data")
    recipe = tmp_path / "acgan.toml"
    recipe.write_text(ACGAN_RECIPE)
    with pytest.raises(PluginError) as caught:
        ganzoo.run(recipe, out=tmp_path / "run", data_dir=tmp_path / "data", progress="none")
    assert str(caught.value).startswith(
        "plugin ganzoo-contract 0.1 (discriminator 'wrong-classes'): classify returned class "
        "logits of shape (16, 11); expected (16, 10)"
    )
