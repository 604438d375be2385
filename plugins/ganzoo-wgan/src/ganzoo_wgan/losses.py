"""The Wasserstein loss with gradient penalty (WGAN-GP, Gulrajani et al. 2017).

The critic D maximises the Wasserstein estimate ``E[D(x)] - E[D(G(z))]`` under a soft
1-Lipschitz constraint: the penalty ``lambda * E[(|grad D(x_hat)|_2 - 1)^2]`` on interpolates
``x_hat = eps * x + (1 - eps) * G(z)`` with ``eps ~ U[0, 1]`` drawn per sample, the norm taken
over all of a sample's values. The penalty is per sample, so the critic must score each
sample on its own: no batch norm, no packing of samples (PacGAN).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from ganzoo.api import Loss, LossOutput, Params
from ganzoo.errors import ComponentConfigError
from pydantic import Field
from torch import Tensor, nn


def critic_scores(D: nn.Module, x: Tensor) -> Tensor:
    """``D(x)``, checked to be one score per sample, shape ``(N,)``.

    Raises:
        ComponentConfigError: the critic scores several samples at once (pack > 1).

    """
    scores = D(x)
    if tuple(scores.shape) != (x.shape[0],):
        raise ComponentConfigError(
            f"the wgan-gp loss needs one critic score per sample, shape ({x.shape[0]},); the "
            f"discriminator returns {tuple(scores.shape)} (a discriminator that packs samples, "
            "pack > 1, cannot be a WGAN-GP critic)"
        )
    return scores


def gradient_penalty(D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
    """``E[(|grad D(x_hat)|_2 - 1)^2]`` over random interpolates of ``real`` and ``fake``.

    The graph of the gradient is kept, so that the penalty trains the critic.

    Raises:
        ComponentConfigError: the batches differ in shape, or the critic packs samples.

    """
    if real.shape != fake.shape:
        raise ComponentConfigError(
            f"real and fake batches differ in shape: {tuple(real.shape)} vs {tuple(fake.shape)}"
        )
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, device=real.device, dtype=real.dtype)
    x_hat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic_scores(D, x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1.0).square().mean()


class WGANGPLoss(Loss):
    """Wasserstein loss with gradient penalty (WGAN-GP, Gulrajani et al. 2017); 5 critic steps."""

    default_d_steps: ClassVar[int] = 5

    class Params(Params):
        """Parameters of the WGAN-GP loss."""

        gp_lambda: float = Field(
            10.0,
            ge=0,
            description="Weight lambda of the gradient penalty E[(|grad D(x_hat)|_2 - 1)^2] "
            "(the paper's 10).",
        )
        drift: float = Field(
            0.0,
            ge=0,
            description="Weight of the drift term E[D(x)^2], which keeps real scores near 0 "
            "(Karras et al. 2018 use 0.001); 0 is off.",
        )

    @property
    def differentiates_gradients(self) -> bool:
        """Whether the penalty is on: it differentiates the critic's input gradients."""
        return self.params.gp_lambda > 0

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """E[D(G(z))] - E[D(x)] + lambda * GP, plus drift * E[D(x)^2] when set.

        Logs ``wasserstein`` (E[D(x)] - E[D(G(z))]), ``gp`` (the penalty before lambda),
        ``d_real`` and ``d_fake`` (the mean scores).
        """
        real_scores, fake_scores = critic_scores(D, real), critic_scores(D, fake)
        wasserstein = real_scores.mean() - fake_scores.mean()
        gp = gradient_penalty(D, real, fake)
        value = self.params.gp_lambda * gp - wasserstein
        if self.params.drift > 0:
            value = value + self.params.drift * real_scores.square().mean()
        logs = {
            "wasserstein": wasserstein.detach(),
            "gp": gp.detach(),
            "d_real": real_scores.detach().mean(),
            "d_fake": fake_scores.detach().mean(),
        }
        return LossOutput(value, logs)

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """-E[D(G(z))]."""
        assert D is not None
        return LossOutput(-critic_scores(D, fake).mean())
