"""The 2-D Gaussian mixtures used to measure mode collapse (VEEGAN, PacGAN and later papers).

``ring``: 8 Gaussians with means on a circle of radius 1 at angles 2*pi*k/8, std 0.01.
``grid``: 25 Gaussians with means at {-4, -2, 0, 2, 4}^2, std 0.05.
Every mode has equal weight; the points are drawn once from a seeded generator.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from ganzoo.api import Dataset, DataSpec, Mixture, Params


class _GaussianMixture(Dataset):
    """Equal-weight isotropic Gaussians in 2-D, drawn once and held in memory."""

    default_std: ClassVar[float]
    half_width: ClassVar[float]

    class Params(Params):
        """Parameters of a 2-D mixture."""

        num_samples: int = Field(100_000, gt=0, description="Points drawn for training.")
        std: float | None = Field(
            None, gt=0, description="Std of every Gaussian; null keeps the benchmark's value."
        )
        seed: int = Field(0, description="Seed of the draw (the dataset, not the training run).")

    def __init__(self, params: Params, data_dir: Path, download: bool = False) -> None:
        super().__init__(params, data_dir, download)
        self._points: Tensor | None = None

    @classmethod
    def means(cls) -> list[tuple[float, float]]:
        """The centres of the Gaussians."""
        raise NotImplementedError

    @classmethod
    def spec_for(cls, params: Params) -> DataSpec:
        """2-D points, with the mixture that generates them."""
        std = params.std if params.std is not None else cls.default_std
        w = cls.half_width
        return DataSpec((2,), (-w, w), mixture=Mixture(tuple(cls.means()), std))

    def tensor(self) -> Tensor:
        """The drawn points, float32 (num_samples, 2)."""
        if self._points is None:
            rng = torch.Generator().manual_seed(self.params.seed)
            mixture = self.spec.mixture
            assert mixture is not None
            means = torch.tensor(mixture.means, dtype=torch.float64)
            which = torch.randint(len(means), (self.params.num_samples,), generator=rng)
            noise = torch.randn(self.params.num_samples, 2, generator=rng, dtype=torch.float64)
            self._points = (means[which] + mixture.std * noise).float()
        return self._points


class Ring(_GaussianMixture):
    """Eight Gaussians on a circle of radius 1, std 0.01: the 2-D ring benchmark."""

    default_std = 0.01
    half_width = 1.5

    @classmethod
    def means(cls) -> list[tuple[float, float]]:
        """Points at angles 2*pi*k/8 on the unit circle."""
        return [(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)]


class Grid(_GaussianMixture):
    """Twenty-five Gaussians on a 5x5 grid with spacing 2, std 0.05: the 2-D grid benchmark."""

    default_std = 0.05
    half_width = 5.5

    @classmethod
    def means(cls) -> list[tuple[float, float]]:
        """Points at {-4, -2, 0, 2, 4}^2."""
        return [(float(x), float(y)) for x in range(-4, 5, 2) for y in range(-4, 5, 2)]
