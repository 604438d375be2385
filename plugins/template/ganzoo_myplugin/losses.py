"""The relativistic GAN loss (Jolicoeur-Martineau 2018), paired (RGAN) or averaged (RaGAN).

The discriminator's raw output ``C`` judges how much more realistic real data is than fake
data. Paired, with ``d = C(x) - C(G(z))``: D minimises ``softplus(-d)`` and G ``softplus(d)``.
Averaged, with ``a = C(x) - E C(G(z))`` and ``b = C(G(z)) - E C(x)``: D minimises
``softplus(-a) + softplus(b)`` and G ``softplus(a) + softplus(-b)``, both averaged over the
batch. ``softplus(-t) = -log(sigmoid(t))``, so no log of a sigmoid is taken.
"""

from __future__ import annotations

import torch.nn.functional as F
from ganzoo.api import Loss, LossOutput, Params
from pydantic import Field
from torch import Tensor, nn


class RelativisticLoss(Loss):
    """Relativistic GAN loss (Jolicoeur-Martineau 2018): real is judged against fake."""

    class Params(Params):
        """Parameters of the relativistic loss."""

        average: bool = Field(
            True,
            description="Compare each sample with the other batch's mean score (RaGAN); "
            "false compares real and fake samples in pairs (RGAN).",
        )

    def _margins(self, real_scores: Tensor, fake_scores: Tensor) -> tuple[Tensor, Tensor]:
        """How much more real than fake the real samples look, and the fake samples."""
        if self.params.average:
            return real_scores - fake_scores.mean(), fake_scores - real_scores.mean()
        return real_scores - fake_scores, fake_scores - real_scores

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """softplus(-a) + softplus(b) averaged (RaGAN), or softplus(-d) paired (RGAN)."""
        real_scores, fake_scores = D(real), D(fake)
        real_margin, fake_margin = self._margins(real_scores, fake_scores)
        value = F.softplus(-real_margin).mean()
        if self.params.average:
            value = value + F.softplus(fake_margin).mean()
        logs = {"d_real": real_scores.detach().mean(), "d_fake": fake_scores.detach().mean()}
        return LossOutput(value, logs)

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """The discriminator's loss with the roles of real and fake swapped."""
        assert D is not None
        real_margin, fake_margin = self._margins(D(real), D(fake))
        value = F.softplus(-fake_margin).mean()
        if self.params.average:
            value = value + F.softplus(real_margin).mean()
        return LossOutput(value)
