"""The plugin's components: registered, conforming to ganzoo's contract, right by hand."""

import math

import pytest
import torch
from ganzoo.registry import registry
from ganzoo.testing import check_component
from torch import nn

from ganzoo_myplugin.losses import RelativisticLoss

# Samples whose first coordinate is the critic's score: real scores (2, 0), fake (1, -1).
REAL = torch.tensor([[2.0, 5.0], [0.0, 5.0]])
FAKE = torch.tensor([[1.0, 5.0], [-1.0, 5.0]])


class FirstCoordinate(nn.Module):
    """A critic that scores a sample by its first coordinate."""

    def forward(self, x):
        return x[:, 0]


def softplus(t: float) -> float:
    return math.log1p(math.exp(t))


def test_the_entry_point_names_this_distribution():
    entry = registry("losses").get("relativistic")
    assert entry.dist == "ganzoo-myplugin"
    assert entry.load() is RelativisticLoss


@pytest.mark.parametrize("average", [True, False])
def test_the_loss_passes_the_conformance_kit(average):
    check_component(RelativisticLoss, params=RelativisticLoss.Params(average=average))


def test_averaged_losses_by_hand():
    # a = (2, 0) - mean(1, -1) = (2, 0); b = (1, -1) - mean(2, 0) = (0, -2)
    loss = RelativisticLoss(RelativisticLoss.Params())
    d = loss.discriminator_loss(FirstCoordinate(), REAL, FAKE).value.item()
    g = loss.generator_loss(FirstCoordinate(), REAL, FAKE).value.item()
    assert d == pytest.approx((softplus(-2) + softplus(0)) / 2 + (softplus(0) + softplus(-2)) / 2)
    assert g == pytest.approx((softplus(2) + softplus(0)) / 2 + (softplus(0) + softplus(2)) / 2)


def test_paired_losses_by_hand():
    # d = (2, 0) - (1, -1) = (1, 1)
    loss = RelativisticLoss(RelativisticLoss.Params(average=False))
    d = loss.discriminator_loss(FirstCoordinate(), REAL, FAKE).value.item()
    g = loss.generator_loss(FirstCoordinate(), REAL, FAKE).value.item()
    assert d == pytest.approx(softplus(-1))
    assert g == pytest.approx(softplus(1))


def test_a_critic_that_cannot_tell_gives_log_2_per_term():
    same = torch.zeros(4, 2)
    for average, terms in [(True, 2), (False, 1)]:
        loss = RelativisticLoss(RelativisticLoss.Params(average=average))
        out = loss.discriminator_loss(FirstCoordinate(), same, same)
        assert out.value.item() == pytest.approx(terms * math.log(2))
