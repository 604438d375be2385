"""The built-in GAN objectives, all computed on logits in numerically stable forms.

``softplus(-l) = -log(sigmoid(l))`` and ``softplus(l) = -log(1 - sigmoid(l))``, so no loss
takes the log of a sigmoid. Each discriminator loss logs ``d_real`` and ``d_fake``: the mean
D(x) and D(G(z)) (probabilities for the cross-entropy losses, raw scores for the others).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveFloat, ValidationError, model_validator
from torch import Tensor, nn

from ganzoo.api import LabelledDiscriminator, Loss, LossOutput, Params, judge
from ganzoo.errors import ComponentConfigError, PluginError, UnknownComponentError
from ganzoo.registry import registry


class PenaltyParams(Params):
    """The gradient penalties every built-in adversarial loss takes (off by default)."""

    r1_gamma: float = Field(
        0.0,
        ge=0,
        description="Weight gamma of the R1 penalty gamma/2 * E|grad D(x)|^2 on real data "
        "(Mescheder et al. 2018); 0 is off.",
    )
    r2_gamma: float = Field(
        0.0,
        ge=0,
        description="Weight gamma of the R2 penalty gamma/2 * E|grad D(G(z))|^2 on generated "
        "data (Mescheder et al. 2018, as StudioGAN applies it); 0 is off.",
    )


class _PenalisedLoss(Loss):
    """A discriminator loss with the optional R1 and R2 penalties of :class:`PenaltyParams`."""

    Params = PenaltyParams

    @property
    def differentiates_gradients(self) -> bool:
        """Whether R1 or R2 is on: they differentiate D's gradient."""
        return self.params.r1_gamma > 0 or self.params.r2_gamma > 0

    def _judge(
        self, D: nn.Module, real: Tensor, fake: Tensor
    ) -> tuple[Tensor, Tensor, Tensor | float, dict[str, Tensor]]:
        """Logits of the real and fake batch, the penalty to add, and its logged terms."""
        r1, r2 = self.params.r1_gamma, self.params.r2_gamma
        if r1 > 0:
            real = real.detach().requires_grad_(True)
        if r2 > 0:
            fake = fake.detach().requires_grad_(True)
        real_logits, fake_logits = judge(D, real, fake)
        penalty: Tensor | float = 0.0
        logs: dict[str, Tensor] = {}
        for name, gamma, x, logits in (
            ("r1", r1, real, real_logits),
            ("r2", r2, fake, fake_logits),
        ):
            if gamma > 0:
                (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
                term = grad.square().reshape(len(grad), -1).sum(1).mean()
                penalty = penalty + 0.5 * gamma * term
                logs[name] = term.detach()
        return real_logits, fake_logits, penalty, logs


class _CrossEntropyLoss(_PenalisedLoss):
    """Shared discriminator side of the binary cross-entropy losses."""

    class Params(PenaltyParams):
        """Parameters of a binary cross-entropy GAN loss."""

        label_smoothing: float = Field(
            0.0,
            ge=0,
            lt=1,
            description="One-sided label smoothing: real targets become 1 - label_smoothing "
            "(Salimans et al. 2016).",
        )

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """-log D(x) - log(1 - D(G(z))), with optionally smoothed real targets, R1 and R2."""
        real_logits, fake_logits, penalty, penalty_logs = self._judge(D, real, fake)
        target = 1.0 - self.params.label_smoothing
        real_term = target * F.softplus(-real_logits) + (1.0 - target) * F.softplus(real_logits)
        value = real_term.mean() + F.softplus(fake_logits).mean() + penalty
        logs = {
            "d_real": torch.sigmoid(real_logits.detach()).mean(),
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),
        }
        return LossOutput(value, logs | penalty_logs)


class MinimaxLoss(_CrossEntropyLoss):
    """The original minimax GAN loss; G minimises log(1 - D(G(z))) (saturating)."""

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """log(1 - D(G(z))) = -softplus(D(G(z)) logit)."""
        assert D is not None
        return LossOutput(-F.softplus(D(fake)).mean())


class NonSaturatingLoss(_CrossEntropyLoss):
    """The non-saturating GAN loss; G maximises log D(G(z)) (Goodfellow et al. 2014)."""

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """-log D(G(z)) = softplus(-logit)."""
        assert D is not None
        return LossOutput(F.softplus(-D(fake)).mean())


class HingeLoss(_PenalisedLoss):
    """The hinge GAN loss (Lim and Ye 2017; Miyato et al. 2018)."""

    class Params(PenaltyParams):
        """Parameters of the hinge loss: its optional gradient penalties."""

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))), plus R1 and R2 when on."""
        real_logits, fake_logits, penalty, penalty_logs = self._judge(D, real, fake)
        value = F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean() + penalty
        logs = {"d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        return LossOutput(value, logs | penalty_logs)

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """-mean(D(G(z)))."""
        assert D is not None
        return LossOutput(-D(fake).mean())


class LeastSquaresLoss(_PenalisedLoss):
    """The least-squares GAN loss (LSGAN, Mao et al. 2017)."""

    class Params(PenaltyParams):
        """Targets of the least-squares loss (the paper's a-b-c coding) and its penalties."""

        fake_target: float = Field(0.0, description="a: the discriminator's target for fakes.")
        real_target: float = Field(1.0, description="b: the discriminator's target for reals.")
        generator_target: float = Field(
            1.0, description="c: the value the generator wants D to give its fakes."
        )

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """0.5 mean((D(x) - b)^2) + 0.5 mean((D(G(z)) - a)^2), plus R1 and R2 when on."""
        real_logits, fake_logits, penalty, penalty_logs = self._judge(D, real, fake)
        p = self.params
        value = (
            0.5 * (real_logits - p.real_target).square().mean()
            + 0.5 * (fake_logits - p.fake_target).square().mean()
            + penalty
        )
        logs = {"d_real": real_logits.detach().mean(), "d_fake": fake_logits.detach().mean()}
        return LossOutput(value, logs | penalty_logs)

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """0.5 mean((D(G(z)) - c)^2)."""
        assert D is not None
        return LossOutput(0.5 * (D(fake) - self.params.generator_target).square().mean())


def mixture_rbf_mmd2(x: Tensor, y: Tensor, sigmas: list[float]) -> Tensor:
    """Biased (V-statistic) MMD^2 between batches with a sum of RBF kernels.

    ``k(a, b) = sum_s exp(-|a - b|^2 / (2 s^2))``; samples are flattened. The estimate is
    >= 0 and exactly the squared RKHS distance of the two empirical mean embeddings.
    """
    n = x.shape[0]
    z = torch.cat([x.reshape(n, -1), y.reshape(y.shape[0], -1)]).float()
    sq = z.square().sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * z @ z.T).clamp_min(0.0)
    kernel = sum(torch.exp(d2 / (-2.0 * s * s)) for s in sigmas)
    k_xx, k_yy, k_xy = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return k_xx.mean() + k_yy.mean() - 2.0 * k_xy.mean()


class MMDLoss(Loss):
    """Generative Moment Matching (Li et al. 2015): MMD with mixed RBF kernels, no discriminator."""

    uses_discriminator: ClassVar[bool] = False

    class Params(Params):
        """Parameters of the moment-matching loss."""

        sigmas: list[PositiveFloat] = Field(
            [2.0, 5.0, 10.0, 20.0, 40.0, 80.0],
            min_length=1,
            description="RBF kernel bandwidths, summed (the GMMN paper's set for MNIST).",
        )
        sqrt: bool = Field(True, description="Minimise sqrt(MMD^2), as the GMMN paper does.")

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """MMD^2 (or its square root) between the real and generated batches."""
        mmd2 = mixture_rbf_mmd2(real, fake, self.params.sigmas)
        value = mmd2.clamp_min(1e-12).sqrt() if self.params.sqrt else mmd2
        return LossOutput(value, {"mmd2": mmd2.detach()})


def _adversarial_loss(name: str, params: dict[str, Any]) -> Loss:
    """The adversarial loss ``name`` with ``params``, checked as a recipe would check it."""
    try:
        cls = registry("losses").load(name)
    except (UnknownComponentError, PluginError) as exc:
        raise ValueError(f"adversarial: {exc}") from None
    if not cls.uses_discriminator or cls.uses_labels:
        raise ValueError(f"adversarial: {name!r} is no plain adversarial loss")
    try:
        return cls(cls.Params.model_validate(params))
    except ValidationError as exc:
        problems = "; ".join(
            f"adversarial_params.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(problems) from None


class ACGANLoss(Loss):
    """Auxiliary-classifier GAN (Odena et al. 2017): an adversarial loss plus class cross-entropy.

    D minimises the adversarial loss plus ``class_weight`` times the cross-entropy of its
    classifier head on the real labels (weighted by ``real_class_weight``) and on the fakes'
    labels (weighted by ``fake_class_weight``, as the paper does); G minimises its adversarial
    loss plus ``class_weight`` times the cross-entropy of its fakes under D's head. With
    ``real_class_weight = 0`` no real label is read and the head is InfoGAN's Q (Chen et al.
    2016): the fakes' labels are a categorical latent code whose information G maximises.
    Needs a discriminator with a classifier head (the zoo's take ``classifier = true``) and a
    conditional generator; it steps the discriminator as often as its adversarial loss asks.
    """

    uses_labels: ClassVar[bool] = True

    class Params(Params):
        """Parameters of the ACGAN loss."""

        adversarial: str = Field(
            "non-saturating", description="The adversarial loss (a registered loss name)."
        )
        adversarial_params: dict[str, Any] = Field(
            {}, description="Parameters of the adversarial loss, as in its own [loss] section."
        )
        class_weight: float = Field(
            1.0, ge=0, description="Weight of the class cross-entropy, for D and for G."
        )
        real_class_weight: float = Field(
            1.0,
            ge=0,
            description="Relative weight of D's class term on real images; 0 trains the head on "
            "fakes only and reads no real label: InfoGAN's categorical code (Chen et al. 2016), "
            "of the dataset's number of classes.",
        )
        fake_class_weight: float = Field(
            1.0,
            ge=0,
            description="Relative weight of D's class term on fakes; 0 trains the head on real "
            "images only.",
        )

        @model_validator(mode="after")
        def _known_adversarial(self) -> ACGANLoss.Params:
            _adversarial_loss(self.adversarial, self.adversarial_params)
            if self.real_class_weight == 0 and self.fake_class_weight == 0:
                raise ValueError(
                    "real_class_weight and fake_class_weight are both 0: nothing trains the "
                    "class head"
                )
            return self

    def __init__(self, params: Params) -> None:
        super().__init__(params)
        self.adversarial = _adversarial_loss(params.adversarial, params.adversarial_params)
        self.default_d_steps = self.adversarial.default_d_steps  # type: ignore[misc]

    @property
    def differentiates_gradients(self) -> bool:
        """Whether the adversarial loss differentiates D's gradients (a penalty)."""
        return self.adversarial.differentiates_gradients

    @staticmethod
    def _labelled(D: nn.Module | None) -> LabelledDiscriminator:
        if not isinstance(D, LabelledDiscriminator):
            raise ComponentConfigError("the acgan loss needs labelled batches")
        return D

    def _class_term(self, D: LabelledDiscriminator, x: Tensor) -> tuple[Tensor, Tensor]:
        """Cross-entropy of D's class head on ``x`` and the head's accuracy there."""
        logits, labels = D.classify(x).float(), D.labels_for(x)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return F.cross_entropy(logits, labels), accuracy

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """The adversarial D loss plus the weighted class terms on reals and fakes."""
        D = self._labelled(D)
        out = self.adversarial.discriminator_loss(D, real, fake)
        value, logs = out.value, dict(out.logs)
        params = self.params
        if params.real_class_weight > 0:
            real_ce, accuracy = self._class_term(D, real)
            value = value + params.class_weight * params.real_class_weight * real_ce
            logs.update(d_class=real_ce.detach(), d_class_accuracy=accuracy)
        if params.fake_class_weight > 0:
            fake_ce, _ = self._class_term(D, fake)
            value = value + params.class_weight * params.fake_class_weight * fake_ce
            logs["d_class_fake"] = fake_ce.detach()
        return LossOutput(value, logs)

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
        """The adversarial G loss + class_weight * CE of the fakes' labels under D's head."""
        D = self._labelled(D)
        out = self.adversarial.generator_loss(D, real, fake)
        fake_ce, accuracy = self._class_term(D, fake)
        value = out.value + self.params.class_weight * fake_ce
        return LossOutput(
            value, {**out.logs, "g_class": fake_ce.detach(), "g_class_accuracy": accuracy}
        )
