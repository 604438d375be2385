"""Building blocks of class-conditional networks, shared by the zoo's architectures."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo.errors import ComponentConfigError


def labels_given(num_classes: int, y: Tensor | None) -> Tensor:
    """``y``, which a network conditional on ``num_classes`` classes must be given.

    Raises:
        ComponentConfigError: ``y`` is None.

    """
    if y is None:
        raise ComponentConfigError(f"this network is conditional on {num_classes} classes: give y")
    return y


def projection_term(
    embedding: nn.Embedding, num_classes: int, y: Tensor | None, h: Tensor
) -> Tensor:
    """The projection term ``<embed(y), h>`` (N,) of features ``h`` (N, F) (Miyato and Koyama).

    Raises:
        ComponentConfigError: ``y`` is None.

    """
    code = embedding(labels_given(num_classes, y)).to(h.dtype)
    return (code * h).sum(1)


class LabelCode(nn.Module):
    """A label as a vector: one-hot, or a learned embedding of ``size``."""

    def __init__(self, num_classes: int, size: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.embedding = nn.Embedding(num_classes, size) if size else None
        self.width = size or num_classes

    def forward(self, y: Tensor, dtype: torch.dtype) -> Tensor:
        """``(N, width)`` codes of the labels ``y`` (N,)."""
        if self.embedding is not None:
            return self.embedding(y).to(dtype)
        return F.one_hot(y, self.num_classes).to(dtype)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm without affine parameters, then a scale and shift looked up by class."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.scale.weight, 1.0, 0.02)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Normalise ``x`` (N, C, H, W), then scale and shift each sample by its class ``y``."""
        h = self.norm(x)
        scale = self.scale(y)[:, :, None, None].to(h.dtype)
        return h * scale + self.shift(y)[:, :, None, None].to(h.dtype)
