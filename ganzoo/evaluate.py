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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ganzoo import __version__
from ganzoo.api import Dataset, DataSpec, EvalContext, FeatureExtractor, Generator
from ganzoo.build import build_dataset
from ganzoo.device import resolve_device
from ganzoo.extractors import make_extractor
from ganzoo.options import EvalOptions, with_settings
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.progress import ReportTo
from ganzoo.recipe import Recipe, recipe_from_dict
from ganzoo.refcache import CachedReference, FeatureCache, reference_key
from ganzoo.registry import registry
from ganzoo.runs import RunFolder
from ganzoo.sources import (
    DatasetSamples,
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
    reference_features: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``eval.json``; a score that is not finite becomes null.

        ``reference_features`` says where the reference set's features came from (the
        feature cache's file, or extracted and stored); it is not part of the protocol.
        """
        scores = {k: v if math.isfinite(v) else None for k, v in self.scores.items()}
        data = {"scores": scores, "protocol": self.protocol, "metrics": self.metrics}
        if self.reference_features:
            data["reference_features"] = self.reference_features
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """Read back what :meth:`to_json` wrote (null scores become NaN)."""
        scores = {k: math.nan if v is None else v for k, v in data["scores"].items()}
        return cls(
            scores, data["protocol"], data.get("metrics", {}), data.get("reference_features", {})
        )


def protocol_differences(reports: list[Report]) -> dict[str, list[Any]]:
    """The protocol fields whose values are not the same in every report."""
    return field_differences([r.protocol for r in reports])


def field_differences(protocols: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The fields whose values are not the same in every protocol, with each one's value."""
    keys = sorted({k for p in protocols for k in p})
    return {
        key: [p.get(key) for p in protocols]
        for key in keys
        if len({json.dumps(p.get(key), sort_keys=True) for p in protocols}) > 1
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
            params={**config.extractor_params, **options.extractor_params},
        )  # fmt: skip
        name = extractor_label(extractor)
        fake = TrackedSamples(fake, f"{name} features of the generated samples", report)
        real = TrackedSamples(real, f"{name} features of the reference set, {reference}", report)
    batch = options.batch_size or config.batch_size
    context = EvalContext(device, seed, reference, extractor, batch)
    cached = None
    if extractor is not None and options.cache:
        data = recipe.components["data"]
        key = reference_key(
            extractor.protocol(), data.name, data.params.model_dump(mode="json"), dataset
        )
        cached = CachedReference(FeatureCache(), key, context, real)
    result = _score(metrics, real, fake, context)
    if cached is not None:
        result.reference_features = cached.keep()
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


def format_score(value: float) -> str:
    """A score with 4 significant decimals, or ``inf``/``nan`` as such."""
    return f"{value:.4f}" if math.isfinite(value) else str(value)
