"""Feature-based scores: FID, Inception Score, KID, precision/recall and density/coverage.

Each follows its reference implementation: FID as pytorch-fid (statistics in float64), IS as
the original code and torch-fidelity (exp of the mean KL over 10 splits, float64), KID as
Bińkowski et al. and torch-fidelity (unbiased MMD^2, cubic polynomial kernel, random subsets
drawn by ``numpy.random.RandomState(seed)``), precision/recall as Kynkäänniemi et al. 2019
(k-nearest-neighbour balls, k = 3), density/coverage as Naeem et al. 2020 and their ``prdc``
package (balls around the reference samples, k = 5).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import Tensor

from ganzoo.api import Better, EvalContext, Metric, MetricResult, Params, Samples
from ganzoo.errors import UsageError
from ganzoo.metrics.frechet import clamp_distance, frechet_distance, statistics


def _counts(real: Samples, fake: Samples) -> dict[str, int]:
    return {"num_generated": len(fake), "num_reference": len(real)}


class FID(Metric):
    """Fréchet Inception Distance (Heusel et al. 2017) between reference and generated features.

    The score is clamped at 0 (rounding noise can take the distance of nearly equal sets a
    hair below it); the protocol's ``fid_raw`` holds the value before clamping.
    """

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"fid": "lower"}

    class Params(Params):
        """FID has no parameters: the extractor and sample counts are set by the evaluation."""

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """The Fréchet distance of the two feature Gaussians."""
        mu1, sigma1 = statistics(context.features(real).pool.numpy())
        mu2, sigma2 = statistics(context.features(fake).pool.numpy())
        raw = frechet_distance(mu1, sigma1, mu2, sigma2)
        protocol = {**_counts(real, fake), "fid_raw": raw if math.isfinite(raw) else None}
        return MetricResult({"fid": clamp_distance(raw)}, protocol)


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """Mean and std over ``splits`` consecutive chunks of exp(E_x KL(p(y|x) || p(y)))."""
    logits = logits.double()
    n = len(logits)
    p, log_p = logits.softmax(dim=1), logits.log_softmax(dim=1)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        q = p[part].mean(dim=0, keepdim=True)
        kl = (p[part] * (log_p[part] - q.log())).sum(dim=1).mean()
        scores.append(float(kl.exp()))
    return float(np.mean(scores)), float(np.std(scores))


class InceptionScore(Metric):
    """Inception Score (Salimans et al. 2016) of generated samples, over 10 splits."""

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"is": "higher"}

    class Params(Params):
        """Parameters of the Inception Score."""

        splits: int = Field(10, ge=1, description="Chunks the samples are scored in.")

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """IS mean and std of the generated samples' class distributions."""
        mean, std = inception_score(context.features(fake).logits, self.params.splits)
        return MetricResult(
            {"is": mean, "is_std": std}, {"num_generated": len(fake), "splits": self.params.splits}
        )


def _mmd2_unbiased(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    m = k_xx.shape[0]
    sum_xx = k_xx.sum() - np.trace(k_xx)
    sum_yy = k_yy.sum() - np.trace(k_yy)
    return float((sum_xx + sum_yy) / (m * (m - 1)) - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 2020,
    degree: int = 3,
    coef0: float = 1.0,
) -> tuple[float, float]:
    """Mean and std over random subsets of the unbiased MMD^2 with a polynomial kernel.

    Subsets are drawn as torch-fidelity draws them: ``RandomState(seed).choice`` without
    replacement, fake then real, per subset. Kernels are computed in float64, so the result
    does not depend on the BLAS's float32 summation order.
    """
    rng = np.random.RandomState(seed)
    gamma = 1.0 / real.shape[1]
    mmds = np.zeros(subsets)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T * gamma + coef0) ** degree

    for i in range(subsets):
        f = fake[rng.choice(len(fake), subset_size, replace=False)].astype(np.float64)
        r = real[rng.choice(len(real), subset_size, replace=False)].astype(np.float64)
        mmds[i] = _mmd2_unbiased(kernel(f, f), kernel(f, r), kernel(r, r))
    return float(mmds.mean()), float(mmds.std())


class KID(Metric):
    """Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2, cubic kernel.

    Not clamped: an unbiased estimate of a distance that is 0 for equal distributions is
    negative about half the time for them, and averaging it over runs needs those values.
    """

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"kid": "lower"}

    class Params(Params):
        """Parameters of KID."""

        subsets: int = Field(100, ge=1, description="Random subsets averaged over.")
        subset_size: int = Field(
            1000, ge=2, description="Samples per subset (capped at the smaller set's size)."
        )
        degree: int = Field(3, ge=1, description="Degree of the polynomial kernel.")
        coef0: float = Field(1.0, description="Constant of the polynomial kernel.")

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """KID mean and std over subsets."""
        p = self.params
        size = min(p.subset_size, len(real), len(fake))
        mean, std = kernel_inception_distance(
            context.features(real).pool.numpy(),
            context.features(fake).pool.numpy(),
            subsets=p.subsets,
            subset_size=size,
            seed=context.seed,
            degree=p.degree,
            coef0=p.coef0,
        )
        protocol = {**_counts(real, fake), "subsets": p.subsets, "subset_size": size}
        return MetricResult({"kid": mean, "kid_std": std}, protocol)


def _kth_neighbour_distance(features: Tensor, k: int, batch: int) -> Tensor:
    """Distance of each row to its k-th nearest other row."""
    return torch.cat(
        [
            torch.cdist(part, features).kthvalue(k + 1, dim=1).values
            for part in features.split(batch)
        ]
    )


def _inside_any_ball(points: Tensor, centres: Tensor, radii: Tensor, batch: int) -> Tensor:
    return torch.cat(
        [(torch.cdist(part, centres) <= radii).any(dim=1) for part in points.split(batch)]
    )


def precision_recall(
    real: Tensor, fake: Tensor, k: int = 3, batch: int = 10_000
) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls."""
    real_radii = _kth_neighbour_distance(real, k, batch)
    fake_radii = _kth_neighbour_distance(fake, k, batch)
    precision = _inside_any_ball(fake, real, real_radii, batch).float().mean()
    recall = _inside_any_ball(real, fake, fake_radii, batch).float().mean()
    return float(precision), float(recall)


class PrecisionRecall(Metric):
    """Improved precision and recall (Kynkäänniemi et al. 2019) over k-NN feature manifolds."""

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"precision": "higher", "recall": "higher"}

    class Params(Params):
        """Parameters of precision and recall."""

        k: int = Field(3, ge=1, description="Neighbour whose distance sets each ball's radius.")

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Precision (generated inside the real manifold) and recall (the converse)."""
        precision, recall = precision_recall(
            context.features(real).pool, context.features(fake).pool, self.params.k
        )
        return MetricResult(
            {"precision": precision, "recall": recall}, {**_counts(real, fake), "k": self.params.k}
        )


def _sklearn_distances(rows: Tensor, columns: Tensor) -> Tensor:
    """Euclidean distances as ``sklearn.metrics.pairwise_distances`` computes them.

    Squared distances are computed in float64 and rounded to the features' dtype before the
    square root, so float32 features give the float32 distances prdc compares. The root is
    taken in float64: torch's float32 ``sqrt`` on CPU is not correctly rounded, numpy's is.
    """
    a, b = rows.double(), columns.double()
    squared = a.square().sum(dim=1, keepdim=True) - 2 * a @ b.T + b.square().sum(dim=1)
    return squared.clamp_min(0).to(rows.dtype).double().sqrt().to(rows.dtype)


def density_coverage(
    real: Tensor, fake: Tensor, k: int = 5, batch: int = 1000
) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020), computed as the ``prdc`` package does.

    Each reference sample's ball reaches to its k-th nearest other reference sample; a
    generated sample is inside a ball when strictly nearer than its radius. Density is the
    number of (ball, generated sample) pairs inside over k times the generated count; coverage
    is the share of balls holding at least one generated sample. Distances are computed
    ``batch`` rows at a time.

    Raises:
        UsageError: the reference set has no more than k samples.
    """
    if len(real) <= k:
        raise UsageError(f"density/coverage with k={k} needs more than {k} reference samples")
    radii = []
    for start in range(0, len(real), batch):
        part = _sklearn_distances(real[start : start + batch], real)
        rows = torch.arange(len(part))  # self-distances are exactly 0, as sklearn sets them
        part[rows, start + rows] = 0.0
        radii.append(part.kthvalue(k + 1, dim=1).values)
    radius = torch.cat(radii)
    inside = 0
    covered = torch.zeros(len(real), dtype=torch.bool)
    for part in fake.split(batch):
        balls = _sklearn_distances(part, real) < radius
        inside += int(balls.sum())
        covered |= balls.any(dim=0)
    return inside / (k * len(fake)), float(covered.double().mean())


class DensityCoverage(Metric):
    """Density and coverage (Naeem et al. 2020) over k-NN balls around the reference samples."""

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"density": "higher", "coverage": "higher"}

    class Params(Params):
        """Parameters of density and coverage."""

        k: int = Field(5, ge=1, description="Neighbour whose distance sets each ball's radius.")

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Density (generated samples per reference ball, over k) and coverage (balls reached)."""
        density, coverage = density_coverage(
            context.features(real).pool, context.features(fake).pool, self.params.k
        )
        return MetricResult(
            {"density": density, "coverage": coverage}, {**_counts(real, fake), "k": self.params.k}
        )
