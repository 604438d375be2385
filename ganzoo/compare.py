"""Scores between two sample sources: image folders, datasets and ``.npz`` statistics.

What ``ganzoo fid`` and ``ganzoo stats`` compute, like pytorch-fid's ``dir1 dir2``, with
datasets as sides too: a folder of exported samples against ``mnist --split test``, two
folders, or a folder against precomputed statistics. A dataset side's features go through the
reference-feature cache (:mod:`ganzoo.refcache`), so a second comparison against the same
dataset does not extract them again.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from ganzoo import __version__
from ganzoo.api import Dataset, EvalContext, FeatureExtractor, Samples
from ganzoo.device import resolve_device
from ganzoo.errors import UnknownComponentError, UsageError
from ganzoo.extractors import make_extractor
from ganzoo.metrics.frechet import (
    clamp_distance,
    frechet_distance,
    load_statistics,
    save_statistics,
    statistics,
)
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.progress import ReportTo
from ganzoo.recipe_errors import format_loc
from ganzoo.refcache import CachedReference, FeatureCache, reference_key
from ganzoo.registry import registry
from ganzoo.sources import DatasetSamples, FolderSamples, TrackedSamples

# Protocol fields that must agree between the two sides for a distance to mean anything.
MATCHING = ("extractor", "weights_sha256", "resize", "precision")


@dataclass
class Side:
    """One side of a comparison: a sample set, or statistics read from an ``.npz``.

    Attributes:
        text: what the user named (a path or a dataset name).
        samples: the images (a folder's or a dataset's), or None for statistics.
        statistics: ``(mu, sigma, protocol)`` of an ``.npz``, or None.
        dataset: the dataset's name, params and object, for a dataset side.
        protocol: what the side is (source, count; the extractor's fields once scored).

    """

    text: str
    samples: Samples | None = None
    statistics: tuple[np.ndarray, np.ndarray, dict[str, Any]] | None = None
    dataset: tuple[str, dict[str, Any], Dataset] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def open_side(
    text: str,
    *,
    split: str | None = None,
    data_options: Mapping[str, Any] | None = None,
    data_dir: str | Path | None = None,
    skip_unreadable: bool = False,
) -> Side:
    """What ``text`` names: an ``.npz`` of statistics, an image folder, or a dataset.

    A dataset takes ``split`` and ``data_options`` as its parameters (``--split test``);
    they are refused for a folder or a statistics file.

    Raises:
        UsageError: ``text`` is none of these, or a dataset parameter is wrong.
        DataError: the dataset's files are missing (the message says where to put them).

    """
    path = Path(text).expanduser()
    if path.exists():
        if split is not None or data_options:
            raise UsageError(f"{text}: --split and --data-option apply to datasets, not files")
        if path.is_dir():
            folder = FolderSamples(path, skip_unreadable)
            protocol = {"source": str(path), "num_images": len(folder)}
            if folder.skipped:
                protocol["skipped_unreadable"] = len(folder.skipped)
            return Side(text, samples=folder, protocol=protocol, skipped=folder.skipped)
        if path.suffix == ".npz":
            mu, sigma, protocol = load_statistics(path)
            return Side(text, statistics=(mu, sigma, protocol), protocol=protocol)
        raise UsageError(f"{text}: neither a folder of images nor a .npz of statistics")
    try:
        cls = registry("datasets").load(text)
    except UnknownComponentError as exc:
        raise UsageError(f"{text}: no such file or folder, and not a dataset ({exc})") from None
    params = dict(data_options or {})
    if split is not None:
        if "split" not in cls.Params.model_fields:
            raise UsageError(f"--split {split}: dataset {text!r} has no splits")
        params["split"] = split
    try:
        validated = cls.Params.model_validate(params)
    except ValidationError as exc:
        problems = "; ".join(f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"dataset {text!r}: {problems}") from None
    dataset = cls(validated, resolve_data_dir(data_dir))
    dumped = validated.model_dump(mode="json")
    reference = f"{text} {dumped.get('split', '')}".strip()
    protocol = {"reference": reference, "num_images": len(dataset)}
    samples = DatasetSamples(dataset)
    return Side(text, samples=samples, dataset=(text, dumped, dataset), protocol=protocol)


@dataclass
class Comparison:
    """Scores between two sides with each side's protocol and each metric's own."""

    scores: dict[str, float]
    protocols: list[dict[str, Any]]
    metrics: dict[str, dict[str, Any]]


def compare(
    sides: Sequence[Side],
    metrics: Sequence[str] = ("fid",),
    *,
    extractor: str = "inception-v3",
    extractor_params: Mapping[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 50,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    cache: bool = True,
    report: ReportTo = None,
) -> Comparison:
    """Score the first side (the samples) against the second (the reference) with ``metrics``.

    FID is symmetric; precision, recall, density and coverage read the first side as the
    generated set. Statistics files allow FID only. Sides made with different extractors
    (:data:`MATCHING` fields) are refused.
    """
    first, second = sides
    if any(s.samples is None for s in sides) and set(metrics) != {"fid"}:
        raise UsageError(
            f"--metrics {','.join(metrics)}: a .npz of statistics gives FID only; "
            "give folders or datasets for the other metrics"
        )
    torch_device = resolve_device(device)
    net = None
    if any(s.samples is not None for s in sides):
        dataset = next((s.dataset[0] for s in sides if s.dataset is not None), None)
        net = make_extractor(
            extractor, torch_device, dataset=dataset, data_dir=_path(data_dir),
            weights=_path(inception_weights), report=report, params=extractor_params,
        )  # fmt: skip
    context = EvalContext(torch_device, 0, second.text, net, batch_size)
    tracked: list[Samples | None] = []
    cached: list[tuple[Side, CachedReference]] = []
    for side in sides:
        if side.samples is None:
            tracked.append(None)
            continue
        assert net is not None
        side.protocol = {**net.protocol(), **side.protocol}
        samples = _tracked(side, net, report)
        entry = _cached_reference(side, net, context, samples) if cache else None
        if entry is not None:
            cached.append((side, entry))
        tracked.append(samples)
        if side.skipped:
            warnings.warn(
                f"{side.text}: skipped {len(side.skipped):,} unreadable image files "
                f"(--skip-unreadable); the first: {side.skipped[0]}",
                stacklevel=2,
            )
    _check_matching(first, second)
    if tracked[0] is None or tracked[1] is None:
        mu1, s1 = _gaussian(first, tracked[0], context)
        mu2, s2 = _gaussian(second, tracked[1], context)
        raw = frechet_distance(mu1, s1, mu2, s2)
        scores = {"fid": clamp_distance(raw)}
        per_metric = {"fid": {"fid_raw": raw if math.isfinite(raw) else None}}
    else:
        for samples in tracked:  # extracted in the sides' order, as the progress lines say
            assert samples is not None
            context.features(samples)
        scores, per_metric = {}, {}
        for name in metrics:
            cls = registry("metrics").load(name)
            result = cls(cls.Params()).compute(tracked[1], tracked[0], context)
            scores |= {k: float(v) for k, v in result.values.items()}
            per_metric[name] = dict(result.protocol)
    for side, entry in cached:
        side.protocol["reference_features"] = entry.keep()
    return Comparison(scores, [first.protocol, second.protocol], per_metric)


def side_statistics(
    side: Side,
    out: str | Path,
    *,
    extractor: str = "auto",
    extractor_params: Mapping[str, Any] | None = None,
    device: str = "auto",
    batch_size: int = 250,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    cache: bool = True,
    report: ReportTo = None,
) -> dict[str, Any]:
    """Write the feature statistics (mu, sigma) of a folder or dataset as pytorch-fid's ``.npz``.

    Returns the protocol stored beside them.
    """
    if side.samples is None:
        raise UsageError(f"{side.text}: already statistics; give a folder or a dataset")
    torch_device = resolve_device(device)
    dataset = side.dataset[0] if side.dataset is not None else None
    net = make_extractor(
        extractor, torch_device, dataset=dataset, data_dir=_path(data_dir),
        weights=_path(inception_weights), report=report, params=extractor_params,
    )  # fmt: skip
    context = EvalContext(torch_device, 0, side.text, net, batch_size)
    samples = _tracked(side, net, report)
    entry = _cached_reference(side, net, context, samples) if cache else None
    mu, sigma = statistics(context.features(samples).pool.numpy())
    protocol = {**net.protocol(), **side.protocol, "ganzoo": __version__}
    save_statistics(Path(out), mu, sigma, protocol)
    if entry is not None:
        protocol["reference_features"] = entry.keep()
    return protocol


def fid_between(
    path1: str | Path,
    path2: str | Path,
    *,
    extractor: str = "inception-v3",
    device: str = "auto",
    batch_size: int = 50,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    report: ReportTo = None,
    skip_unreadable: bool = False,
) -> tuple[float, list[dict[str, Any]]]:
    """The raw FID between two folders of images or ``.npz`` statistics, as pytorch-fid gives it.

    Returns the distance (rounding noise may take it a hair below zero) and each side's
    protocol. A file that is not a readable image stops it with a
    :class:`~ganzoo.errors.DataError` naming the file, or, with ``skip_unreadable``, is left
    out with a warning that counts such files.
    """
    sides = [open_side(str(p), skip_unreadable=skip_unreadable) for p in (path1, path2)]
    result = compare(
        sides, extractor=extractor, device=device, batch_size=batch_size, data_dir=data_dir,
        inception_weights=inception_weights, report=report,
    )  # fmt: skip
    raw = result.metrics["fid"]["fid_raw"]
    return (math.nan if raw is None else raw), result.protocols


def _cached_reference(
    side: Side, net: FeatureExtractor, context: EvalContext, samples: Samples
) -> CachedReference | None:
    """A dataset side's features through the feature cache; None for a folder."""
    if side.dataset is None:
        return None
    name, params, dataset = side.dataset
    key = reference_key(net.protocol(), name, params, dataset)
    return CachedReference(FeatureCache(), key, context, samples)


def _tracked(side: Side, net: FeatureExtractor, report: ReportTo) -> Samples:
    assert side.samples is not None
    name = str(net.protocol().get("extractor", net.name))
    what = side.protocol.get("reference") or side.text
    return TrackedSamples(side.samples, f"{name} features of {what}", report)


def _gaussian(
    side: Side, samples: Samples | None, context: EvalContext
) -> tuple[np.ndarray, np.ndarray]:
    if side.statistics is not None:
        return side.statistics[0], side.statistics[1]
    assert samples is not None
    return statistics(context.features(samples).pool.numpy())


def _check_matching(first: Side, second: Side) -> None:
    for key in MATCHING:
        a, b = first.protocol.get(key), second.protocol.get(key)
        if a is not None and b is not None and a != b:
            raise UsageError(
                f"the two sides were made with different feature extractors ({key}: "
                f"{a} vs {b}); their FID would mean nothing"
            )


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None
