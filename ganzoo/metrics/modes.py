"""Mode coverage of samples from a known Gaussian mixture (the 2-D ring and grid benchmarks).

A sample is high-quality when it lies within ``threshold`` standard deviations of its nearest
mean; a mode is captured when it is the nearest mean of at least one high-quality sample
(Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN). The reverse KL divergence compares
the histogram of high-quality samples over the modes with the uniform histogram. The spread
is the RMS offset (per coordinate) of the high-quality samples from their mean, in units of
the mixture's std: about 0.97 for samples of the mixture itself (the 3-std cut trims the
tails), lower for a generator that draws its modes too narrow, higher for one that blurs them.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from ganzoo.api import Better, EvalContext, Metric, MetricResult, Mixture, Params, Samples
from ganzoo.errors import UsageError


def mode_statistics(points: Tensor, mixture: Mixture, threshold: float = 3.0) -> dict[str, float]:
    """Modes captured, high-quality fraction, reverse KL to uniform and spread of ``points``."""
    means = torch.tensor(mixture.means, dtype=torch.float64)
    points = points.double()
    distances = torch.cdist(points, means)
    nearest_distance, nearest = distances.min(dim=1)
    good = nearest_distance <= threshold * mixture.std
    offsets = points[good] - means[nearest[good]]
    spread = float(offsets.square().mean().sqrt()) / mixture.std if len(offsets) else math.nan
    counts = torch.bincount(nearest[good], minlength=len(means)).double()
    total = counts.sum()
    if total > 0:
        q = counts / total
        kl = float((q[q > 0] * (q[q > 0] * len(means)).log()).sum())
    else:
        kl = math.inf
    return {
        "modes": int((counts > 0).sum()),
        "high_quality": float(good.double().mean()),
        "reverse_kl": kl,
        "spread": spread,
    }


class ModeCoverage(Metric):
    """Modes captured, high-quality sample %, reverse KL and spread, for 2-D Gaussian mixtures."""

    better: ClassVar[Better] = {"modes": "higher", "high_quality": "higher", "reverse_kl": "lower"}

    class Params(Params):
        """Parameters of the mode-coverage metric."""

        threshold: float = Field(
            3.0, gt=0, description="A sample within this many stds of a mean is high-quality."
        )

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Score the generated points against the mixture of the data's spec."""
        mixture = fake.spec.mixture
        if mixture is None:
            raise UsageError("the modes metric needs a Gaussian-mixture dataset (ring, grid)")
        points = torch.cat(list(fake.batches(10_000)))
        values = mode_statistics(points, mixture, self.params.threshold)
        protocol = {
            "num_generated": len(points),
            "num_modes": len(mixture.means),
            "std": mixture.std,
            "threshold_std": self.params.threshold,
        }
        return MetricResult(values, protocol)
