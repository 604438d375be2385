"""The WGAN-GP loss against values worked out by hand on tiny critics."""

from __future__ import annotations

import math

import pytest
import torch
from ganzoo.api import DataSpec
from ganzoo.errors import ComponentConfigError
from ganzoo.zoo.mlp import MLPDiscriminator
from torch import nn

from ganzoo_wgan.losses import WGANGPLoss, gradient_penalty

REAL = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
FAKE = torch.tensor([[0.0, 0.0], [-1.0, 1.0]])


class LinearCritic(nn.Module):
    """f(x) = w . x + b on flattened samples: its gradient is w everywhere."""

    def __init__(self, weight: list[float], bias: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(weight))
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x):
        return x.flatten(1) @ self.weight + self.bias


class HalfSquaredNorm(nn.Module):
    """f(x) = |x|^2 / 2, whose gradient at x is x itself."""

    def forward(self, x):
        return 0.5 * x.flatten(1).square().sum(1)


class Recorder(nn.Module):
    """A linear critic that keeps every batch it scores."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []
        self.weight = nn.Parameter(torch.ones(2))

    def forward(self, x):
        self.seen.append(x.detach().clone())
        return x @ self.weight


def loss(**params) -> WGANGPLoss:
    return WGANGPLoss(WGANGPLoss.Params(**params))


@pytest.mark.parametrize(
    ("weight", "expected"),
    [([3.0, 4.0], 16.0), ([0.6, 0.8], 0.0), ([0.0, 0.0], 1.0), ([0.0, 0.5], 0.25)],
)
def test_penalty_of_a_linear_critic_is_its_weight_norm_minus_one_squared(weight, expected):
    critic = LinearCritic(weight, bias=0.5)
    for seed in range(3):  # the interpolates are random; for a linear critic they do not matter
        torch.manual_seed(seed)
        gp = gradient_penalty(critic, REAL, FAKE)
        assert gp.item() == pytest.approx(expected, abs=1e-6)


def test_discriminator_loss_and_its_gradient_by_hand():
    # f(x) = 3 x1 + 4 x2 + 0.5: f(real) = (3.5, 4.5), mean 4; f(fake) = (0.5, 1.5), mean 1.
    # |w| = 5, so GP = (5 - 1)^2 = 16 and the loss is 1 - 4 + 10 * 16 = 157.
    critic = LinearCritic([3.0, 4.0], bias=0.5)
    out = loss().discriminator_loss(critic, REAL, FAKE)
    assert out.value.item() == pytest.approx(157.0)
    logs = {k: v.item() for k, v in out.logs.items()}
    assert logs == pytest.approx({"wasserstein": 3.0, "gp": 16.0, "d_real": 4.0, "d_fake": 1.0})
    out.value.backward()
    # d/dw: mean(fake) - mean(real) = (-1, 0), plus 10 * 2 (|w| - 1) w / |w| = (48, 64).
    assert critic.weight.grad.tolist() == pytest.approx([47.0, 64.0])
    assert critic.bias.grad.item() == pytest.approx(0.0)


def test_drift_adds_the_mean_squared_real_score():
    critic = LinearCritic([3.0, 4.0], bias=0.5)
    out = loss(drift=0.001).discriminator_loss(critic, REAL, FAKE)
    assert out.value.item() == pytest.approx(157.0 + 0.001 * (3.5**2 + 4.5**2) / 2)


def test_lambda_scales_the_penalty_only():
    critic = LinearCritic([3.0, 4.0], bias=0.5)
    out = loss(gp_lambda=0.5).discriminator_loss(critic, REAL, FAKE)
    assert out.value.item() == pytest.approx(1.0 - 4.0 + 0.5 * 16.0)
    assert out.logs["gp"].item() == pytest.approx(16.0)


def test_penalty_on_images_takes_the_norm_over_all_pixels():
    # 4 pixels weighted 0.25 each: |w| = 0.5 and GP = 0.25. Real images score 1, fakes 0.
    critic = LinearCritic([0.25] * 4)
    real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
    out = loss().discriminator_loss(critic, real, fake)
    assert out.logs["gp"].item() == pytest.approx(0.25)
    assert out.value.item() == pytest.approx(10 * 0.25 - 1.0)


def test_penalty_is_taken_per_sample():
    # With real == fake every interpolate is the sample itself; the gradient of |x|^2 / 2 is
    # x, of norm 5 and 0.5: GP = ((5 - 1)^2 + (0.5 - 1)^2) / 2 = 8.125. A norm over the
    # whole batch would give (sqrt(25.25) - 1)^2 instead.
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]])
    assert gradient_penalty(HalfSquaredNorm(), x, x.clone()).item() == pytest.approx(8.125)


def test_interpolates_lie_between_real_and_fake_with_one_eps_per_sample():
    torch.manual_seed(0)
    real, fake = torch.zeros(64, 2), torch.tensor([[1.0, 2.0]]).expand(64, 2)
    critic = Recorder()
    gradient_penalty(critic, real, fake)
    (x_hat,) = critic.seen
    eps = 1.0 - x_hat[:, 0]  # x_hat = eps * 0 + (1 - eps) * (1, 2)
    assert torch.allclose(x_hat[:, 1], 2 * x_hat[:, 0])
    assert bool(((eps >= 0) & (eps <= 1)).all())
    assert eps.std() > 0.2  # one eps per sample, spread over [0, 1] (std of U[0, 1]: 0.29)


def test_generator_loss_is_minus_the_mean_fake_score():
    critic = LinearCritic([3.0, 4.0], bias=0.5)
    fake = FAKE.clone().requires_grad_(True)
    out = loss().generator_loss(critic, REAL, fake)
    assert out.value.item() == pytest.approx(-1.0)
    out.value.backward()
    assert torch.allclose(fake.grad, torch.tensor([[-1.5, -2.0], [-1.5, -2.0]]))


def test_a_critic_that_packs_samples_is_refused():
    spec = DataSpec((2,))
    packed = MLPDiscriminator(MLPDiscriminator.Params(hidden=[8], pack=2), spec)
    with pytest.raises(ComponentConfigError, match=r"one critic score per sample.*pack > 1"):
        loss().discriminator_loss(packed, torch.randn(4, 2), torch.randn(4, 2))


def test_batches_of_different_shapes_are_refused():
    with pytest.raises(ComponentConfigError, match="differ in shape"):
        gradient_penalty(LinearCritic([1.0, 1.0]), torch.zeros(4, 2), torch.zeros(3, 2))


def test_the_loss_asks_for_five_critic_steps():
    assert WGANGPLoss.default_d_steps == 5
    assert WGANGPLoss.uses_discriminator is True
    assert math.isclose(WGANGPLoss.Params().gp_lambda, 10.0)
