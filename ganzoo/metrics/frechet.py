"""Gaussian feature statistics and the Fréchet distance between them, in float64.

``d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2)``. The trace of the matrix square
root is computed without a general (Schur-based) ``sqrtm``: with ``S1 = L L^T`` (Cholesky),
``S1 S2`` is similar to the symmetric ``L^T S2 L``, so ``tr sqrt(S1 S2)`` is the sum of the
square roots of that matrix's eigenvalues. A rank-deficient ``S1`` (fewer samples than
features) takes the same route through its symmetric square root from ``eigh``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg
from scipy.linalg.blas import dtrmm

from ganzoo.errors import UsageError


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of ``features`` (N, D), in float64 as pytorch-fid computes them."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise UsageError(f"need at least 2 feature vectors, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """Tr sqrt(sigma1 @ sigma2) for symmetric positive semi-definite matrices."""
    try:
        root = scipy.linalg.cholesky(sigma1, lower=True, check_finite=False)
        # L^T S2 L with triangular products (BLAS trmm): half the work of two full products
        middle = dtrmm(1.0, root, dtrmm(1.0, root, sigma2, side=1, lower=1), lower=1, trans_a=1)
    except np.linalg.LinAlgError:
        values, vectors = scipy.linalg.eigh(sigma1, check_finite=False)
        root = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
        middle = root @ sigma2 @ root
    middle = (middle + middle.T) / 2.0
    eigenvalues = scipy.linalg.eigh(middle, eigvals_only=True, driver="evr", check_finite=False)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """The Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    sigma1 = np.atleast_2d(sigma1).astype(np.float64)
    sigma2 = np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise UsageError(
            f"statistics of different sizes: mean {mu1.shape} vs {mu2.shape}, "
            f"covariance {sigma1.shape} vs {sigma2.shape}"
        )
    diff = mu1 - mu2
    trace = np.trace(sigma1) + np.trace(sigma2) - 2.0 * _trace_sqrt_product(sigma1, sigma2)
    return float(diff @ diff + trace)


def save_statistics(
    path: Path, mu: np.ndarray, sigma: np.ndarray, protocol: dict[str, Any]
) -> None:
    """Write ``mu`` and ``sigma`` as pytorch-fid's ``.npz``, with the protocol as JSON beside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        np.savez(f, mu=mu, sigma=sigma, protocol=np.array(json.dumps(protocol)))


def load_statistics(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read an ``.npz`` of statistics (ganzoo's or pytorch-fid's); the protocol may be empty."""
    try:
        with np.load(path, allow_pickle=False) as data:
            mu, sigma = data["mu"], data["sigma"]
            protocol = json.loads(str(data["protocol"])) if "protocol" in data.files else {}
    except (OSError, ValueError, KeyError) as exc:
        raise UsageError(f"{path}: not a statistics file with 'mu' and 'sigma' ({exc})") from None
    return mu, sigma, protocol
