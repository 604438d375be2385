"""Scores of class-conditional runs: how often samples are of their class, and intra-class FID.

Both need the labels of the samples: the dataset's for the reference set, the conditioning
labels for the generated one. ``class-accuracy`` reads the extractor's class logits, so it
needs an extractor whose classes are the dataset's (``--extractor classifier``); intra-class
FID is the FID between the real and the generated samples of each class (Miyato and Koyama
2018), and its mean over the classes.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field
from torch import Tensor

from ganzoo.api import Better, EvalContext, Metric, MetricResult, Params, Samples
from ganzoo.errors import ComponentConfigError
from ganzoo.metrics.frechet import clamp_distance, frechet_distance, statistics


def _labels(samples: Samples, which: str) -> Tensor:
    labels = getattr(samples, "labels", None)
    if labels is None:
        raise ComponentConfigError(
            f"this metric needs labelled samples, and the {which} samples have no labels "
            "(it scores class-conditional runs on labelled data)"
        )
    return labels


def _names(samples: Samples, count: int) -> list[str]:
    names = samples.spec.class_names
    return [names[i] if i < len(names) else str(i) for i in range(count)]


class ClassAccuracy(Metric):
    """Share of generated samples the dataset classifier assigns to their conditioning label."""

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"class_accuracy": "higher"}

    class Params(Params):
        """Class accuracy has no parameters: the classifier is the evaluation's extractor."""

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Overall and per-class accuracy: ``class_accuracy`` and ``class_accuracy[NAME]``."""
        labels = _labels(fake, "generated")
        logits = context.features(fake).logits
        classes = fake.spec.num_classes
        if logits.shape[1] != classes:
            raise ComponentConfigError(
                f"class-accuracy needs an extractor whose logits are the dataset's {classes} "
                f"classes (--extractor classifier); this one gives {logits.shape[1]}"
            )
        right = logits.argmax(1) == labels
        values = {"class_accuracy": float(right.double().mean())}
        counts = {}
        for index, name in enumerate(_names(fake, classes)):
            mine = labels == index
            counts[name] = int(mine.sum())
            values[f"class_accuracy[{name}]"] = (
                float(right[mine].double().mean()) if counts[name] else float("nan")
            )
        return MetricResult(values, {"num_generated": len(fake), "per_class": counts})


class IntraClassFID(Metric):
    """Intra-class FID: the FID between real and generated samples of each class, and its mean.

    Each class's FID is clamped at 0 as ``fid`` is; the protocol's ``intra_fid_raw`` holds
    the values before clamping, by class name.
    """

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"intra_fid": "lower"}

    class Params(Params):
        """Parameters of intra-class FID."""

        min_samples: int = Field(
            2,
            ge=2,
            description="Fewest samples of a class on either side for its FID; a class with "
            "fewer is reported as NaN and left out of the mean.",
        )

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """``intra_fid`` (the mean over classes) and ``intra_fid[NAME]`` for each class."""
        real_labels, fake_labels = _labels(real, "reference"), _labels(fake, "generated")
        real_pool = context.features(real).pool.numpy()
        fake_pool = context.features(fake).pool.numpy()
        classes = fake.spec.num_classes
        values: dict[str, float] = {}
        scored = []
        counts = {}
        raw: dict[str, float | None] = {}
        for index, name in enumerate(_names(fake, classes)):
            mine_real = (real_labels == index).numpy()
            mine_fake = (fake_labels == index).numpy()
            counts[name] = [int(mine_real.sum()), int(mine_fake.sum())]
            if min(counts[name]) < self.params.min_samples:
                values[f"intra_fid[{name}]"] = float("nan")
                continue
            mu1, s1 = statistics(real_pool[mine_real])
            mu2, s2 = statistics(fake_pool[mine_fake])
            distance = frechet_distance(mu1, s1, mu2, s2)
            raw[name] = distance if math.isfinite(distance) else None
            values[f"intra_fid[{name}]"] = clamp_distance(distance)
            scored.append(values[f"intra_fid[{name}]"])
        mean = sum(scored) / len(scored) if scored else float("nan")
        protocol = {
            "per_class_reference_generated": counts,
            "classes_scored": len(scored),
            "intra_fid_raw": raw,
        }
        return MetricResult({"intra_fid": mean, **values}, protocol)
