"""Evaluation: sample a trained generator, score it with registered metrics, record the protocol.

Every score goes out with the protocol that produced it (extractor, weights hash, resize,
input range, sample counts, reference set, seed, ganzoo version): FID and its relatives move
with each of these, so two scores are only comparable when their protocols agree.

:func:`evaluate_generator` scores a generator held in memory (the end of a run does that);
:func:`evaluate_run` rebuilds one from a run folder's checkpoint and gives the same numbers.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from ganzoo import __version__
from ganzoo.api import Dataset, DataSpec, EvalContext, FeatureExtractor, Generator
from ganzoo.build import build_dataset
from ganzoo.device import resolve_device
from ganzoo.errors import UsageError
from ganzoo.extractors import make_extractor
from ganzoo.metrics.frechet import frechet_distance, load_statistics, save_statistics, statistics
from ganzoo.options import EvalOptions, with_settings
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.progress import ReportTo
from ganzoo.recipe import Recipe, recipe_from_dict
from ganzoo.recipe_errors import format_loc
from ganzoo.registry import registry
from ganzoo.runs import RunFolder
from ganzoo.sources import (
    DatasetSamples,
    FolderSamples,
    GeneratorSamples,
    TrackedSamples,
    conditioning_labels,
)
from ganzoo.subset import subset_size


@dataclass
class Report:
    """Scores of one evaluation with the protocol they share and each metric's own."""

    scores: dict[str, float]
    protocol: dict[str, Any]
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``eval.json``; a score that is not finite becomes null."""
        scores = {k: v if math.isfinite(v) else None for k, v in self.scores.items()}
        return {"scores": scores, "protocol": self.protocol, "metrics": self.metrics}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """Read back what :meth:`to_json` wrote (null scores become NaN)."""
        scores = {k: math.nan if v is None else v for k, v in data["scores"].items()}
        return cls(scores, data["protocol"], data.get("metrics", {}))


def protocol_differences(reports: list[Report]) -> dict[str, list[Any]]:
    """The protocol fields whose values are not the same in every report."""
    keys = sorted({k for r in reports for k in r.protocol})
    return {
        key: [r.protocol.get(key) for r in reports]
        for key in keys
        if len({json.dumps(r.protocol.get(key), sort_keys=True) for r in reports}) > 1
    }


def default_metrics(spec: DataSpec) -> list[str]:
    """What to score when nothing is asked: modes for mixtures, FID/IS/KID for images."""
    return ["modes"] if spec.mixture is not None else ["fid", "is", "kid"]


def reference_name(recipe: Recipe) -> str:
    """The reference set of a recipe's evaluation: its dataset and split (``mnist test``)."""
    data = recipe.components["data"]
    return f"{data.name} {getattr(data.params, 'split', '')}".strip()


def evaluate_generator(
    generator: Generator,
    recipe: Recipe,
    dataset: Dataset,
    options: EvalOptions,
    *,
    run: Path,
    step: int,
    ema: bool,
    report: ReportTo = None,
) -> Report:
    """Score ``generator`` (in eval mode) against ``dataset`` as ``recipe``'s ``[eval]`` says.

    ``options`` override the recipe's ``[eval]``; ``run``, ``step`` and ``ema`` say where the
    generator came from, for the protocol.
    """
    device = resolve_device(options.device)
    spec = dataset.spec
    config = recipe.shell.eval
    names = list(options.metrics or config.metrics or default_metrics(spec))
    count = options.num_samples or config.num_samples
    seed = config.seed if options.seed is None else options.seed
    metrics = {}
    for name in names:
        cls = registry("metrics").load(name)
        metrics[name] = cls(cls.Params.model_validate(config.params.get(name, {})))
    real: DatasetSamples | TrackedSamples = DatasetSamples(dataset)
    labels = None
    if generator.num_classes:
        counts = None
        if recipe.train.fake_labels == "data" and real.labels is not None:
            counts = torch.bincount(real.labels, minlength=spec.num_classes)
        labels = conditioning_labels(count, generator.num_classes, seed, counts)
    fake: GeneratorSamples | TrackedSamples = GeneratorSamples(
        generator, count, seed, device, spec, labels
    )
    reference = reference_name(recipe)
    extractor = None
    if any(m.needs_features for m in metrics.values()):
        extractor = make_extractor(
            options.extractor or config.extractor, device, dataset=recipe.components["data"].name,
            data_dir=options.data_dir, weights=options.inception_weights, report=report,
        )  # fmt: skip
        name = extractor_label(extractor)
        fake = TrackedSamples(fake, f"{name} features of the generated samples", report)
        real = TrackedSamples(real, f"{name} features of the reference set, {reference}", report)
    batch = options.batch_size or config.batch_size
    context = EvalContext(device, seed, reference, extractor, batch)
    result = _score(metrics, real, fake, context)
    result.protocol |= {
        "run": str(run),
        "step": step,
        "generator": "ema" if ema else "generator",
        "reference": reference,
        "num_generated": count,
        "num_reference": len(real),
        "quantized": spec.is_image,
        "seed": seed,
        "ganzoo": __version__,
    }
    subset = recipe.shell.data.subset
    if subset is not None:
        n = len(dataset)
        result.protocol["train_subset"] = (
            f"data.subset = {subset}: {subset_size(subset, n)} of the {n} reference samples, "
            f"seed {recipe.seed}"
        )
    if labels is not None:
        result.protocol["labels"] = (
            f"{recipe.train.fake_labels} over {spec.num_classes} classes, seed {seed} + 1"
        )
    return result


def evaluate_run(
    run_dir: str | Path,
    options: EvalOptions | None = None,
    *,
    report: ReportTo = None,
    **settings: Any,
) -> Report:
    """Score a run's generator (its moving average when it has one) and write ``eval.json``.

    ``options`` (or its fields as keywords) override the recipe's ``[eval]`` section; the
    reference set is the recipe's dataset (``reference_split`` overrides its split).
    """
    options = with_settings(EvalOptions, options, settings)
    folder = RunFolder.open(run_dir)
    trained = folder.load_generator(options.checkpoint, resolve_device(options.device))
    recipe = trained.recipe
    if options.reference_split:
        overrides = [f"data.split={options.reference_split}"]
        recipe = recipe_from_dict(recipe.to_dict(), recipe.source, overrides)
    dataset = build_dataset(recipe, resolve_data_dir(options.data_dir))
    result = evaluate_generator(
        trained.generator, recipe, dataset, options,
        run=folder.root, step=trained.step, ema=trained.ema, report=report,
    )  # fmt: skip
    folder.write_eval(result.to_json())
    return result


def _score(metrics: dict[str, Any], real: Any, fake: Any, context: EvalContext) -> Report:
    scores: dict[str, float] = {}
    per_metric: dict[str, dict[str, Any]] = {}
    for name, metric in metrics.items():
        result = metric.compute(real, fake, context)
        scores |= {k: float(v) for k, v in result.values.items()}
        per_metric[name] = {"params": metric.params.model_dump(mode="json"),
                            "protocol": dict(result.protocol)}  # fmt: skip
    protocol: dict[str, Any] = {}
    if context.extractor is not None:
        protocol |= context.extractor.protocol()
    return Report(scores, protocol, per_metric)


def extractor_label(extractor: FeatureExtractor) -> str:
    """An extractor's name in progress lines, as its protocol gives it (``classifier:mnist``)."""
    return str(extractor.protocol().get("extractor", extractor.name))


def _statistics_of(
    path: Path,
    extractor: FeatureExtractor,
    device: torch.device,
    batch_size: int,
    report: ReportTo = None,
    skip_unreadable: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if path.suffix == ".npz":
        return load_statistics(path)
    if not path.is_dir():
        raise UsageError(f"{path}: neither a folder of images nor a .npz of statistics")
    folder = FolderSamples(path, skip_unreadable)
    samples = TrackedSamples(folder, f"{extractor_label(extractor)} features of {path}", report)
    context = EvalContext(device, 0, str(path), extractor, batch_size)
    mu, sigma = statistics(context.features(samples).pool.numpy())
    protocol = {**extractor.protocol(), "source": str(path), "num_images": len(samples)}
    if folder.skipped:
        protocol["skipped_unreadable"] = len(folder.skipped)
        warnings.warn(
            f"{path}: skipped {len(folder.skipped):,} unreadable image files "
            f"(--skip-unreadable); the first: {folder.skipped[0]}",
            stacklevel=2,
        )
    return mu, sigma, protocol


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
    """FID between two folders of images or ``.npz`` statistics, as pytorch-fid's command does.

    Returns the distance and each side's protocol. Statistics made with different feature
    extractors (or weights) are refused. Long steps (training a classifier, extracting
    features) are shown on ``report`` (see :func:`ganzoo.progress.track`). A file that is not
    a readable image stops it with a :class:`~ganzoo.errors.DataError` naming the file, or,
    with ``skip_unreadable``, is left out with a warning that counts such files.
    """
    torch_device = resolve_device(device)
    paths = [Path(path1), Path(path2)]
    needs_network = any(p.suffix != ".npz" for p in paths)
    net = None
    if needs_network:
        net = make_extractor(extractor, torch_device, data_dir=_path(data_dir),
                             weights=_path(inception_weights), report=report)  # fmt: skip
    sides = []
    for path in paths:
        if path.suffix == ".npz":
            sides.append(load_statistics(path))
        else:
            assert net is not None
            sides.append(
                _statistics_of(path, net, torch_device, batch_size, report, skip_unreadable)
            )
    (mu1, s1, p1), (mu2, s2, p2) = sides
    for key in ("extractor", "weights_sha256"):
        if key in p1 and key in p2 and p1[key] != p2[key]:
            raise UsageError(
                f"the two sides were made with different feature extractors ({key}: "
                f"{p1[key]} vs {p2[key]}); their FID would mean nothing"
            )
    return frechet_distance(mu1, s1, mu2, s2), [p1, p2]


def dataset_statistics(
    dataset: str,
    out: str | Path,
    *,
    split: str | None = None,
    extractor: str = "auto",
    device: str = "auto",
    batch_size: int = 250,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    report: ReportTo = None,
) -> dict[str, Any]:
    """Precompute a dataset's feature statistics into a pytorch-fid-compatible ``.npz``.

    Long steps (training a classifier, extracting features) are shown on ``report``.
    """
    torch_device = resolve_device(device)
    cls = registry("datasets").load(dataset)
    if split is not None and "split" not in cls.Params.model_fields:
        raise UsageError(f"--split {split}: dataset {dataset!r} has no splits")
    try:
        params = cls.Params(**({"split": split} if split else {}))
    except ValidationError as exc:
        problems = "; ".join(f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"dataset {dataset!r}: {problems}") from None
    ds = cls(params, resolve_data_dir(data_dir))
    net = make_extractor(extractor, torch_device, dataset=dataset, data_dir=_path(data_dir),
                         weights=_path(inception_weights), report=report)  # fmt: skip
    reference = f"{dataset} {getattr(params, 'split', '')}".strip()
    samples = DatasetSamples(ds)
    tracked = TrackedSamples(samples, f"{extractor_label(net)} features of {reference}", report)
    context = EvalContext(torch_device, 0, dataset, net, batch_size)
    mu, sigma = statistics(context.features(tracked).pool.numpy())
    protocol = {
        **net.protocol(),
        "reference": reference,
        "num_images": len(samples),
        "ganzoo": __version__,
    }
    save_statistics(Path(out), mu, sigma, protocol)
    return protocol


def _path(value: str | Path | None) -> Path | None:
    return Path(value) if value is not None else None


def format_score(value: float) -> str:
    """A score with 4 significant decimals, or ``inf``/``nan`` as such."""
    return f"{value:.4f}" if math.isfinite(value) else str(value)
