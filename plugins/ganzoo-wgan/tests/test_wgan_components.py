"""The plugin's components: registered through entry points, conforming, batch-norm free."""

from __future__ import annotations

import pytest
import torch
from ganzoo.api import DataSpec
from ganzoo.errors import ComponentConfigError
from ganzoo.registry import registry
from ganzoo.testing import check_component
from torch import nn

import ganzoo_wgan
from ganzoo_wgan.critics import WGANCritic, WGANMLPCritic
from ganzoo_wgan.losses import WGANGPLoss


def test_entry_points_name_this_distribution():
    for kind, name, cls in [
        ("losses", "wgan-gp", WGANGPLoss),
        ("discriminators", "wgan-critic", WGANCritic),
        ("discriminators", "wgan-mlp-critic", WGANMLPCritic),
    ]:
        entry = registry(kind).get(name)
        assert (entry.dist, entry.version) == ("ganzoo-wgan", ganzoo_wgan.__version__)
        assert entry.load() is cls


@pytest.mark.parametrize("cls", [WGANGPLoss, WGANCritic, WGANMLPCritic])
def test_components_pass_the_conformance_kit(cls):
    check_component(cls)


@pytest.mark.parametrize("cls", [WGANCritic, WGANMLPCritic])
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_critics_conform_with_either_norm(cls, norm):
    check_component(cls, params=cls.Params(norm=norm))


@pytest.mark.parametrize("spec", WGANCritic.supported_specs, ids=str)
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_conv_critic_has_layer_norm_or_none_never_batch_norm(spec, norm):
    critic = WGANCritic(WGANCritic.Params(base_channels=8, norm=norm), spec)
    kinds = [type(m) for m in critic.modules()]
    assert not any(issubclass(k, nn.modules.batchnorm._BatchNorm) for k in kinds)
    steps = {28: 2, 32: 3, 64: 4}[spec.shape[1]]
    assert kinds.count(nn.LayerNorm) == (steps - 1 if norm == "layer" else 0)


@pytest.mark.parametrize(
    ("cls", "spec"),
    [(WGANCritic, DataSpec((3, 32, 32))), (WGANMLPCritic, DataSpec((2,)))],
)
@pytest.mark.parametrize("norm", ["layer", "none"])
def test_a_score_depends_on_its_own_sample_only(cls, spec, norm):
    torch.manual_seed(0)
    critic = cls(cls.Params(norm=norm), spec).train()
    batch = torch.rand(6, *spec.shape) * 2 - 1
    other = batch.clone()
    other[1:] = torch.rand(5, *spec.shape) * 2 - 1
    assert torch.allclose(critic(batch)[0], critic(other)[0], atol=1e-6)
    assert torch.allclose(critic(batch[:1]), critic(batch)[:1], atol=1e-6)


@pytest.mark.parametrize("shape", [(1, 16, 16), (3, 32, 28), (2,)])
def test_conv_critic_refuses_other_data(shape):
    with pytest.raises(ComponentConfigError, match="square images of size 28, 32, 64"):
        WGANCritic(WGANCritic.Params(), DataSpec(shape))


def test_mlp_critic_follows_the_paper_toy_critic_by_default():
    critic = WGANMLPCritic(WGANMLPCritic.Params(), DataSpec((2,)))
    linears = [m for m in critic.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (2, 512), (512, 512), (512, 512), (512, 1)
    ]  # fmt: skip
    assert all(m.negative_slope == 0.0 for m in critic.modules() if isinstance(m, nn.LeakyReLU))
