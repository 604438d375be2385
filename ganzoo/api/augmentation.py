"""Differentiable augmentations, applied to every batch a discriminator sees.

An :class:`Augmentation` maps a batch of model-space images to an augmented batch, each
operation applied to each sample with probability ``p``. The trainer hands losses the
discriminator wrapped in :class:`AugmentedDiscriminator`, so that real batches, fakes, and
what a loss makes from them (an R1 penalty's real batch, a gradient penalty's interpolates)
are augmented before every discriminator call, in the discriminator's and in the generator's
update alike (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020). Gradients flow through
the augmentation to its input: an R1 penalty differentiates with respect to the real images
before they are augmented, as ADA does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from torch import Tensor, nn

from ganzoo.api.components import (
    Component,
    DataSpec,
    Params,
    _inner_discriminator,
    _with_head,
)


class Augmentation(nn.Module, Component):
    """A differentiable, random augmentation of model-space batches ``(N, *spec.shape)``.

    Subclasses call ``super().__init__(params, spec)`` (raising
    :class:`~ganzoo.errors.ComponentConfigError` for data they cannot augment) and implement
    :meth:`forward`. Random draws come from torch's global generator on the batch's device,
    one per sample, so that a resumed run draws the same ones. ``forward(x, p)`` with ``p = 0``
    must return ``x`` unchanged.
    """

    supported_specs: ClassVar[tuple[DataSpec, ...]] = (DataSpec((1, 28, 28)), DataSpec((3, 32, 32)))

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__()
        self.params = params
        self.spec = spec

    def forward(self, x: Tensor, p: Tensor) -> Tensor:
        """``x`` augmented, each operation applied to each sample with probability ``p`` (0-dim)."""
        raise NotImplementedError


class AugmentedDiscriminator(nn.Module):
    """A discriminator that augments every batch before judging it.

    ``observe(x, logits)``, when given, is called after each call with the batch as it came
    (before augmentation) and the logits, so that ADA can read ``D(real)``.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        augmentation: Augmentation,
        p: Tensor,
        observe: Callable[[Tensor, Tensor], None] | None = None,
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.augmentation = augmentation
        self.p = p
        self._observe = observe

    def forward(self, x: Tensor, *labels: Tensor) -> Tensor:
        """The discriminator's logits of ``x`` augmented (labels, if any, passed on)."""
        logits = self.discriminator(self.augmentation(x, self.p), *labels)
        if self._observe is not None:
            self._observe(x, logits)
        return logits

    def classify(self, x: Tensor) -> Tensor:
        """Class logits of the discriminator's auxiliary head, of ``x`` augmented."""
        inner = _with_head(_inner_discriminator(self.discriminator))
        return inner.classify(self.augmentation(x, self.p))
