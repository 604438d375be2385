"""The built-in losses against golden values worked out by hand.

The "discriminator" of most tests is ``nn.Identity()``: the batch *is* the logits, shape (N,),
so ``D(real)`` and ``D(fake)`` are exactly the numbers written in each test. Expected values
are written as arithmetic on Python floats (``math.log``/``math.exp``), never computed with
the torch functions the losses use.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from ganzoo.api import DataSpec, LossOutput
from ganzoo.registry import registry
from ganzoo.zoo.losses import (
    HingeLoss,
    LeastSquaresLoss,
    MinimaxLoss,
    MMDLoss,
    NonSaturatingLoss,
    mixture_rbf_mmd2,
)
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

# The logits every golden-value test feeds: D(x) for the real batch, D(G(z)) for the fake one.
REAL = [2.0, -1.0]
FAKE = [0.0, 3.0]
BIG = 1e4

LOSS_CLASSES = {
    "minimax": MinimaxLoss,
    "non-saturating": NonSaturatingLoss,
    "hinge": HingeLoss,
    "least-squares": LeastSquaresLoss,
    "mmd": MMDLoss,
}
ADVERSARIAL = ["minimax", "non-saturating", "hinge", "least-squares"]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def logits(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


def make(name: str, **params) -> object:
    cls = LOSS_CLASSES[name]
    return cls(cls.Params(**params))


def d_loss(
    loss, real: list[float], fake: list[float]
) -> tuple[LossOutput, torch.Tensor, torch.Tensor]:
    r, f = logits(real), logits(fake)
    out = loss.discriminator_loss(nn.Identity(), r, f)
    return out, r, f


def g_loss(loss, fake: list[float]) -> tuple[LossOutput, torch.Tensor]:
    f = logits(fake)
    out = loss.generator_loss(nn.Identity(), logits(REAL), f)
    return out, f


pytestmark = pytest.mark.usefixtures("seed_zero", "one_thread")


# --- registry ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(LOSS_CLASSES))
def test_entry_point_names_load_the_classes(name):
    assert registry("losses").load(name) is LOSS_CLASSES[name]


# --- minimax and non-saturating (binary cross-entropy) ----------------------------------------


@pytest.mark.parametrize("name", ["minimax", "non-saturating"])
def test_cross_entropy_discriminator_loss(name):
    out, r, f = d_loss(make(name), REAL, FAKE)
    # -log sigmoid(l) = log(1 + e^-l) on reals, -log(1 - sigmoid(l)) = log(1 + e^l) on fakes.
    real_term = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(1))) / 2
    fake_term = (math.log(2) + math.log(1 + math.exp(3))) / 2
    assert out.value.item() == pytest.approx(real_term + fake_term, rel=1e-6)
    # d_real / d_fake are mean probabilities.
    d_real = (1 / (1 + math.exp(-2)) + 1 / (1 + math.exp(1))) / 2
    d_fake = (0.5 + 1 / (1 + math.exp(-3))) / 2
    assert set(out.logs) == {"d_real", "d_fake"}
    assert out.logs["d_real"].item() == pytest.approx(d_real, rel=1e-6)
    assert out.logs["d_fake"].item() == pytest.approx(d_fake, rel=1e-6)
    assert not out.logs["d_real"].requires_grad and not out.logs["d_fake"].requires_grad
    # d/dl of -log sigmoid(l) is -(1 - sigmoid(l)); of log(1 + e^l) is sigmoid(l); mean over 2.
    out.value.backward()
    assert r.grad.tolist() == pytest.approx([-(1 - sigmoid(2)) / 2, -(1 - sigmoid(-1)) / 2])
    assert f.grad.tolist() == pytest.approx([0.5 / 2, sigmoid(3) / 2])


def test_minimax_generator_loss_is_log_one_minus_d():
    out, f = g_loss(make("minimax"), FAKE)
    # mean log(1 - sigmoid(l)) = -mean log(1 + e^l)
    expected = -(math.log(2) + math.log(1 + math.exp(3))) / 2
    assert out.value.item() == pytest.approx(expected, rel=1e-6)
    out.value.backward()
    # saturating: d/dl log(1 - sigmoid(l)) = -sigmoid(l), tiny where D is sure the fake is fake
    assert f.grad.tolist() == pytest.approx([-0.5 / 2, -sigmoid(3) / 2])


def test_non_saturating_generator_loss_is_minus_log_d():
    out, f = g_loss(make("non-saturating"), FAKE)
    expected = (math.log(2) + math.log(1 + math.exp(-3))) / 2
    assert out.value.item() == pytest.approx(expected, rel=1e-6)
    out.value.backward()
    # d/dl -log sigmoid(l) = -(1 - sigmoid(l)) = -sigmoid(-l)
    assert f.grad.tolist() == pytest.approx([-0.5 / 2, -sigmoid(-3) / 2])


def test_saturation_contrast_between_minimax_and_non_saturating():
    # Where D confidently rejects a fake (logit -5), the minimax G gradient vanishes
    # (sigmoid(-5) ~ 0.0067) while the non-saturating one stays ~1.
    grads = {}
    for name in ("minimax", "non-saturating"):
        out, f = g_loss(make(name), [-5.0])
        out.value.backward()
        grads[name] = f.grad.item()
    assert grads["minimax"] == pytest.approx(-sigmoid(-5), rel=1e-5)
    assert grads["non-saturating"] == pytest.approx(-sigmoid(5), rel=1e-5)


@pytest.mark.parametrize("name", ["minimax", "non-saturating"])
def test_one_sided_label_smoothing(name):
    out, _, _ = d_loss(make(name, label_smoothing=0.1), REAL, FAKE)
    # Real targets become 0.9: -(0.9 log sigmoid(l) + 0.1 log(1 - sigmoid(l))).
    real_term = (
        0.9 * math.log(1 + math.exp(-2))
        + 0.1 * math.log(1 + math.exp(2))
        + 0.9 * math.log(1 + math.exp(1))
        + 0.1 * math.log(1 + math.exp(-1))
    ) / 2
    # Fake targets stay 0 (one-sided).
    fake_term = (math.log(2) + math.log(1 + math.exp(3))) / 2
    assert out.value.item() == pytest.approx(real_term + fake_term, rel=1e-6)
    # Smoothing does not touch the generator side.
    smoothed, _ = g_loss(make(name, label_smoothing=0.1), FAKE)
    plain, _ = g_loss(make(name), FAKE)
    assert smoothed.value.item() == plain.value.item()


def test_label_smoothing_optimum_is_the_smoothed_target():
    # With target 0.75 the real term is minimised where sigmoid(l) = 0.75, i.e. l = log 3.
    loss = make("non-saturating", label_smoothing=0.25)
    r = logits([math.log(3)])
    loss.discriminator_loss(nn.Identity(), r, logits([0.0])).value.backward()
    assert r.grad.item() == pytest.approx(0.0, abs=1e-6)
    # ... where -(0.75 log 0.75 + 0.25 log 0.25) is the entropy of the target, plus log 2.
    out, _, _ = d_loss(loss, [math.log(3)], [0.0])
    entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert out.value.item() == pytest.approx(entropy + math.log(2), rel=1e-6)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_label_smoothing_range_is_validated(value):
    with pytest.raises(ValidationError):
        MinimaxLoss.Params(label_smoothing=value)


# --- hinge --------------------------------------------------------------------------------------


def test_hinge_discriminator_loss():
    out, r, f = d_loss(make("hinge"), REAL, FAKE)
    # reals: relu(1 - 2) = 0, relu(1 + 1) = 2 -> 1; fakes: relu(1 + 0) = 1, relu(1 + 3) = 4 -> 2.5
    assert out.value.item() == pytest.approx(1.0 + 2.5)
    # logs are raw mean scores
    assert out.logs["d_real"].item() == pytest.approx((2 - 1) / 2)
    assert out.logs["d_fake"].item() == pytest.approx((0 + 3) / 2)
    out.value.backward()
    # the margin of the first real is met (no gradient); the others are linear
    assert r.grad.tolist() == pytest.approx([0.0, -0.5])
    assert f.grad.tolist() == pytest.approx([0.5, 0.5])


def test_hinge_discriminator_loss_is_zero_beyond_the_margins():
    out, _, _ = d_loss(make("hinge"), [3.0, 1.0], [-2.0, -1.0])
    assert out.value.item() == 0.0


def test_hinge_generator_loss():
    out, f = g_loss(make("hinge"), FAKE)
    assert out.value.item() == pytest.approx(-(0 + 3) / 2)
    out.value.backward()
    assert f.grad.tolist() == pytest.approx([-0.5, -0.5])


# --- least squares ------------------------------------------------------------------------------


def test_least_squares_default_targets():
    out, r, f = d_loss(make("least-squares"), REAL, FAKE)
    # a = 0, b = 1: 0.5 * ((2-1)^2 + (-1-1)^2)/2 + 0.5 * (0^2 + 3^2)/2 = 1.25 + 2.25
    assert out.value.item() == pytest.approx(3.5)
    assert out.logs["d_real"].item() == pytest.approx(0.5)
    assert out.logs["d_fake"].item() == pytest.approx(1.5)
    out.value.backward()
    # d/dl 0.5 (l - t)^2 / 2 = (l - t) / 2
    assert r.grad.tolist() == pytest.approx([0.5, -1.0])
    assert f.grad.tolist() == pytest.approx([0.0, 1.5])
    gen, _ = g_loss(make("least-squares"), FAKE)
    # c = 1: 0.5 * ((0-1)^2 + (3-1)^2)/2
    assert gen.value.item() == pytest.approx(1.25)


def test_least_squares_custom_targets():
    # The paper's other coding: a = -1, b = 1, c = 0.
    loss = make("least-squares", fake_target=-1.0, real_target=1.0, generator_target=0.0)
    out, _, _ = d_loss(loss, REAL, FAKE)
    # 0.5 * ((2-1)^2 + (-1-1)^2)/2 + 0.5 * ((0+1)^2 + (3+1)^2)/2 = 1.25 + 4.25
    assert out.value.item() == pytest.approx(5.5)
    gen, _ = g_loss(loss, FAKE)
    # 0.5 * (0^2 + 3^2)/2
    assert gen.value.item() == pytest.approx(2.25)
    # Asymmetric targets: b = 3, a = 0.5, c = 2.
    loss = make("least-squares", fake_target=0.5, real_target=3.0, generator_target=2.0)
    out, _, _ = d_loss(loss, REAL, FAKE)
    # 0.5 * ((2-3)^2 + (-1-3)^2)/2 + 0.5 * ((0-0.5)^2 + (3-0.5)^2)/2 = 4.25 + 1.625
    assert out.value.item() == pytest.approx(4.25 + 1.625)
    gen, _ = g_loss(loss, FAKE)
    # 0.5 * ((0-2)^2 + (3-2)^2)/2
    assert gen.value.item() == pytest.approx(1.25)


def test_least_squares_is_zero_at_its_targets():
    loss = make("least-squares", fake_target=-1.0, real_target=1.0, generator_target=0.0)
    out, _, _ = d_loss(loss, [1.0, 1.0], [-1.0, -1.0])
    assert out.value.item() == 0.0
    gen, _ = g_loss(loss, [0.0, 0.0])
    assert gen.value.item() == 0.0


# --- numerical stability ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("minimax", {}),
        ("minimax", {"label_smoothing": 0.1}),
        ("non-saturating", {}),
        ("non-saturating", {"label_smoothing": 0.1}),
        ("hinge", {}),
        ("least-squares", {}),
        ("least-squares", {"fake_target": -1.0, "generator_target": 0.0}),
    ],
)
def test_huge_logits_give_finite_values_and_gradients(name, params):
    loss = make(name, **params)
    out, r, f = d_loss(loss, [BIG, -BIG], [-BIG, BIG])
    out.value.backward()
    assert torch.isfinite(out.value)
    assert torch.isfinite(r.grad).all() and torch.isfinite(f.grad).all()
    gen, gf = g_loss(loss, [-BIG, BIG])
    gen.value.backward()
    assert torch.isfinite(gen.value)
    assert torch.isfinite(gf.grad).all()
    for v in out.logs.values():
        assert torch.isfinite(v)


def test_huge_logits_cross_entropy_values():
    # reals [1e4, -1e4]: -log sigmoid -> [0, 1e4]; fakes [-1e4, 1e4]: -log(1 - sigmoid) -> [0, 1e4]
    out, _, _ = d_loss(make("minimax"), [BIG, -BIG], [-BIG, BIG])
    assert out.value.item() == pytest.approx(BIG / 2 + BIG / 2, rel=1e-6)
    assert out.logs["d_real"].item() == pytest.approx(0.5)
    assert out.logs["d_fake"].item() == pytest.approx(0.5)
    # a perfect discriminator: loss ~0, not nan
    out, r, _ = d_loss(make("minimax"), [BIG], [-BIG])
    out.value.backward()
    assert out.value.item() == pytest.approx(0.0, abs=1e-6)
    assert r.grad.item() == pytest.approx(0.0, abs=1e-6)
    # smoothing 0.1 on a real at +1e4: 0.1 * log(1 + e^1e4) = 0.1 * 1e4
    out, _, _ = d_loss(make("minimax", label_smoothing=0.1), [BIG], [-BIG])
    assert out.value.item() == pytest.approx(0.1 * BIG, rel=1e-6)


def test_non_saturating_generator_at_minus_1e4_is_1e4_not_inf():
    # -log sigmoid(-1e4) = log(1 + e^1e4) ~ 1e4; log(sigmoid(-1e4)) in float32 would be -inf.
    out, f = g_loss(make("non-saturating"), [-BIG])
    assert out.value.item() == pytest.approx(BIG, rel=1e-6)
    out.value.backward()
    # gradient -sigmoid(1e4) = -1, full strength where D rejects the fake
    assert f.grad.item() == pytest.approx(-1.0)
    out, f = g_loss(make("non-saturating"), [BIG])
    assert out.value.item() == pytest.approx(0.0, abs=1e-6)


def test_minimax_generator_at_huge_logits():
    out, f = g_loss(make("minimax"), [-BIG, BIG])
    # log(1 - sigmoid(-1e4)) = 0; log(1 - sigmoid(1e4)) = -1e4
    assert out.value.item() == pytest.approx(-BIG / 2, rel=1e-6)
    out.value.backward()
    assert f.grad.tolist() == pytest.approx([0.0, -0.5])


def test_bfloat16_logits_stay_finite():
    # bfloat16 logits of moderate size still give finite cross-entropy values.
    loss = make("non-saturating")
    f = torch.tensor([-300.0, 300.0], dtype=torch.bfloat16, requires_grad=True)
    out = loss.generator_loss(nn.Identity(), f.detach(), f)
    out.value.backward()
    assert out.value.item() == pytest.approx(150.0, rel=1e-2)
    assert torch.isfinite(f.grad.float()).all()


# --- MMD ----------------------------------------------------------------------------------------


def mmd2_numpy(x: np.ndarray, y: np.ndarray, sigmas: list[float]) -> float:
    """Biased MMD^2 in float64 with direct squared differences (no |a|^2 + |b|^2 - 2ab)."""
    x = x.reshape(len(x), -1).astype(np.float64)
    y = y.reshape(len(y), -1).astype(np.float64)

    def kernel_mean(a: np.ndarray, b: np.ndarray) -> float:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        return float(sum(np.exp(-d2 / (2.0 * s * s)) for s in sigmas).mean())

    return kernel_mean(x, x) + kernel_mean(y, y) - 2.0 * kernel_mean(x, y)


def test_mmd2_hand_values():
    x, y = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    # one sigma 1: k(x,x) = k(y,y) = 1, k(x,y) = e^-1/2
    assert mixture_rbf_mmd2(x, y, [1.0]).item() == pytest.approx(2 - 2 * math.exp(-0.5))
    # sigmas 1 and 2: k(x,x) = 2, k(x,y) = e^-1/2 + e^-1/8
    expected = 4 - 2 * (math.exp(-0.5) + math.exp(-1 / 8))
    assert mixture_rbf_mmd2(x, y, [1.0, 2.0]).item() == pytest.approx(expected, rel=1e-6)
    # two points against one, 2-D: x = {(0,0), (3,4)}, y = {(0,0)}, sigma 5 (|d|^2 = 25)
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    y = torch.tensor([[0.0, 0.0]])
    k = math.exp(-25 / 50)
    k_xx = (1 + k + k + 1) / 4
    k_yy = 1.0
    k_xy = (1 + k) / 2
    assert mixture_rbf_mmd2(x, y, [5.0]).item() == pytest.approx(k_xx + k_yy - 2 * k_xy, rel=1e-6)


@pytest.mark.parametrize("shape", [(2,), (1, 28, 28), (3, 8, 8)])
def test_mmd2_of_identical_batches_is_zero(shape):
    x = torch.randn(32, *shape).tanh()
    for sigmas in ([1.0], [2.0, 5.0, 10.0, 20.0, 40.0, 80.0]):
        assert abs(mixture_rbf_mmd2(x, x.clone(), sigmas).item()) < 1e-6


@pytest.mark.parametrize(
    ("shape", "shift", "sigmas"),
    [
        ((2,), 0.5, [1.0]),
        ((2,), 0.5, [2.0, 5.0, 10.0, 20.0, 40.0, 80.0]),
        ((2,), 1.0, [0.5, 1.0, 2.0]),
        ((1, 28, 28), 0.3, [2.0, 5.0, 10.0, 20.0, 40.0, 80.0]),
        ((3, 8, 8), 0.0, [1.0, 4.0]),
    ],
)
def test_mmd2_matches_numpy_float64(shape, shift, sigmas):
    x = torch.randn(32, *shape)
    y = torch.randn(24, *shape) + shift  # different batch sizes on purpose
    if len(shape) == 3:
        x, y = x.tanh(), y.tanh()
    got = mixture_rbf_mmd2(x, y, sigmas).item()
    expected = mmd2_numpy(x.numpy(), y.numpy(), sigmas)
    assert expected > 0
    # The loss works in float32: ~1e-5 relative, plus a rounding floor of the kernel means,
    # which are sums of len(sigmas) terms of size ~1 (float32 eps ~6e-8, summed over 768 pairs).
    floor = 1e-6 * len(sigmas)
    assert got == pytest.approx(expected, rel=2e-5, abs=floor)
    # symmetric in its arguments
    assert mixture_rbf_mmd2(y, x, sigmas).item() == pytest.approx(got, rel=2e-5, abs=floor)


def test_mmd2_is_positive_for_different_batches_and_grows_with_the_shift():
    x = torch.randn(64, 2)
    values = [mixture_rbf_mmd2(x, torch.randn(64, 2) + d, [1.0, 2.0]).item() for d in (1, 2, 4)]
    assert all(v > 0 for v in values)
    assert values[0] < values[1] < values[2]


def test_mmd_loss_has_no_discriminator():
    assert MMDLoss.uses_discriminator is False
    for name in ADVERSARIAL:
        assert LOSS_CLASSES[name].uses_discriminator is True
    loss = make("mmd")
    assert loss.params.sigmas == [2.0, 5.0, 10.0, 20.0, 40.0, 80.0]
    assert loss.params.sqrt is True
    with pytest.raises(NotImplementedError):
        loss.discriminator_loss(nn.Identity(), torch.zeros(2, 2), torch.zeros(2, 2))


def test_mmd_loss_sqrt_option():
    real, fake = torch.tensor([[0.0]]), torch.tensor([[1.0]])
    mmd2 = 2 - 2 * math.exp(-0.5)  # sigma 1, by hand as above
    rooted = make("mmd", sigmas=[1.0]).generator_loss(None, real, fake)
    assert rooted.value.item() == pytest.approx(math.sqrt(mmd2), rel=1e-6)
    assert rooted.logs["mmd2"].item() == pytest.approx(mmd2, rel=1e-6)
    assert not rooted.logs["mmd2"].requires_grad
    squared = make("mmd", sigmas=[1.0], sqrt=False).generator_loss(None, real, fake)
    assert squared.value.item() == pytest.approx(mmd2, rel=1e-6)


@pytest.mark.parametrize("sqrt", [True, False])
def test_mmd_loss_of_identical_batches_has_finite_gradient(sqrt):
    real = torch.randn(8, 2)
    fake = real.clone().requires_grad_(True)
    out = make("mmd", sqrt=sqrt).generator_loss(None, real, fake)
    out.value.backward()
    assert out.value.item() == pytest.approx(0.0, abs=1e-5)
    assert torch.isfinite(fake.grad).all()


def test_mmd_params_are_validated():
    with pytest.raises(ValidationError):
        MMDLoss.Params(sigmas=[])
    with pytest.raises(ValidationError):
        MMDLoss.Params(sigmas=[1.0, -2.0])
    with pytest.raises(ValidationError):
        MMDLoss.Params(bandwidth=1.0)


# --- gradients reach a real generator -----------------------------------------------------------

SPECS = [DataSpec((2,), (-5.0, 5.0)), DataSpec((1, 28, 28))]


@pytest.mark.parametrize("spec", SPECS, ids=["points", "mnist"])
@pytest.mark.parametrize("name", list(LOSS_CLASSES))
def test_generator_loss_reaches_every_generator_parameter(name, spec):
    torch.manual_seed(1)
    G = MLPGenerator(MLPGenerator.Params(latent_dim=8, hidden=[32, 32]), spec)
    loss = make(name)
    if loss.uses_discriminator:
        D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[32], dropout=0.0), spec)
    else:
        D = None
    real = torch.rand(16, *spec.shape) * 2 - 1
    fake = G(G.sample_latent(16))
    out = loss.generator_loss(D, real, fake)
    assert out.value.ndim == 0
    out.value.backward()
    for pname, p in G.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_discriminator_loss_reaches_every_discriminator_parameter(name):
    torch.manual_seed(2)
    spec = SPECS[0]
    G = MLPGenerator(MLPGenerator.Params(latent_dim=8, hidden=[32]), spec)
    D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[32, 16], dropout=0.0), spec)
    real = torch.randn(16, 2)
    fake = G(G.sample_latent(16)).detach()
    out = make(name).discriminator_loss(D, real, fake)
    out.value.backward()
    output_bias = D.net[-1].bias
    for pname, p in D.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        if name == "hinge" and p is output_bias:
            # With every logit inside the margins (|l| < 1 at init) the hinge loss's gradient
            # for the output bias is -1 (reals) + 1 (fakes) = 0 exactly.
            assert D(real).abs().max() < 1 and D(fake).abs().max() < 1
            assert p.grad.item() == 0.0
        else:
            assert p.grad.abs().sum() > 0, pname
    assert all(p.grad is None for p in G.parameters())
    assert set(out.logs) == {"d_real", "d_fake"}


class _Counting(nn.Module):
    """Wraps a discriminator (as DDP and torch.compile do) and counts its calls."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x)


def test_judge_scores_both_batches_in_one_call_of_a_per_sample_discriminator():
    from ganzoo.api import judge

    spec = DataSpec((2,), (-1.0, 1.0))
    torch.manual_seed(0)
    D = _Counting(MLPDiscriminator(MLPDiscriminator.Params(hidden=[8], dropout=0.0), spec))
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    real_logits, fake_logits = judge(D, real, fake)
    assert D.calls == 1
    torch.testing.assert_close(real_logits, D.inner(real))
    torch.testing.assert_close(fake_logits, D.inner(fake))
    # a gradient penalty differentiates D(real) alone: two calls then
    D.calls = 0
    judge(D, real.clone().requires_grad_(True), fake)
    assert D.calls == 2
    # batches of different sizes: two calls
    D.calls = 0
    judge(D, real, fake[:4])
    assert D.calls == 2


def test_judge_calls_a_batch_norm_discriminator_once_per_batch():
    from ganzoo.api import judge
    from ganzoo.zoo.dcgan import DCGANDiscriminator

    spec = DataSpec((1, 28, 28), (-1.0, 1.0))
    D = _Counting(DCGANDiscriminator(DCGANDiscriminator.Params(), spec))
    assert not DCGANDiscriminator.per_sample  # batch norm mixes the samples of a batch
    real, fake = torch.randn(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    real_logits, fake_logits = judge(D, real, fake)
    assert D.calls == 2
    # each batch normalised with its own statistics, as two separate calls do
    torch.testing.assert_close(real_logits, D.inner(real))
    torch.testing.assert_close(fake_logits, D.inner(fake))


class Squares(nn.Module):
    """D(x) = |x|^2 per sample, so that |grad D(x)|^2 = 4 |x|^2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.square().sum(1)


@pytest.mark.parametrize("name", ["minimax", "non-saturating", "hinge", "least-squares"])
def test_r1_and_r2_penalties_add_gamma_half_the_mean_squared_gradient(name):
    cls = LOSS_CLASSES[name]
    real = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]])  # 4|x|^2: 4, 16 -> mean 10
    fake = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])  # 4|x|^2: 36, 12 -> mean 24
    plain = cls(cls.Params()).discriminator_loss(Squares(), real, fake)
    penalised = cls(cls.Params(r1_gamma=2.0, r2_gamma=0.5))
    assert penalised.differentiates_gradients
    assert not cls(cls.Params()).differentiates_gradients
    out = penalised.discriminator_loss(Squares(), real, fake)
    assert out.value.item() == pytest.approx(plain.value.item() + 0.5 * 2.0 * 10 + 0.5 * 0.5 * 24)
    assert out.logs["r1"].item() == pytest.approx(10.0)
    assert out.logs["r2"].item() == pytest.approx(24.0)
    assert "r1" not in plain.logs and "r2" not in plain.logs
    only_r2 = cls(cls.Params(r2_gamma=1.0)).discriminator_loss(Squares(), real, fake)
    assert set(only_r2.logs) - set(plain.logs) == {"r2"}
    assert only_r2.value.item() == pytest.approx(plain.value.item() + 12.0)
