"""Scores that read the dataset's classes: class accuracy, intra-class FID and class coverage.

``class-accuracy`` and ``intra-fid`` score class-conditional runs and need the labels of the
samples: the dataset's for the reference set, the conditioning labels for the generated one.
``class-accuracy`` reads the extractor's class logits, so it needs an extractor whose classes
are the dataset's (``--extractor classifier``); intra-class FID is the FID between the real and
the generated samples of each class (Miyato and Koyama 2018), and its mean over the classes.
``class-coverage`` needs no labels: it compares the classes the classifier finds among the
generated samples with those it finds among the reference samples, the class-level mode
dropping of an unconditional run (the classes captured and the reverse KL of VEEGAN and PacGAN,
Srivastava et al. 2017, Lin et al. 2018, on a dataset's classes).
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
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


def _class_logits(samples: Samples, context: EvalContext, metric: str, classes: int) -> Tensor:
    """The extractor's logits of ``samples``, refused unless they are the ``classes`` classes."""
    logits = context.features(samples).logits
    if logits.shape[1] != classes:
        raise ComponentConfigError(
            f"{metric} needs an extractor whose logits are the dataset's {classes} "
            f"classes (--extractor classifier); this one gives {logits.shape[1]}"
        )
    return logits


class ClassAccuracy(Metric):
    """Share of generated samples the dataset classifier assigns to their conditioning label."""

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"class_accuracy": "higher"}

    class Params(Params):
        """Class accuracy has no parameters: the classifier is the evaluation's extractor."""

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Overall and per-class accuracy: ``class_accuracy`` and ``class_accuracy[NAME]``."""
        labels = _labels(fake, "generated")
        classes = fake.spec.num_classes
        logits = _class_logits(fake, context, "class-accuracy", classes)
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


class ClassCoverage(Metric):
    """Classes the dataset classifier finds among the generated samples, against the reference.

    Both sides are classified by the evaluation's extractor, so its mistakes fall alike on
    both; the classes are the dataset's (the extractor's logits must be those classes), or the
    extractor's logits when neither side is a labelled dataset (two folders, with
    ``classifier:mnist`` say). A class is covered when its share of the generated samples is
    at least ``min_ratio`` times its share of the reference samples; ``class_kl`` is
    KL(generated || reference) of the two class histograms (0 when they match, infinite when
    the generator draws a class the reference lacks).
    """

    needs_features: ClassVar[bool] = True
    better: ClassVar[Better] = {"classes_covered": "higher", "class_kl": "lower"}

    class Params(Params):
        """Parameters of class coverage."""

        min_ratio: float = Field(
            0.1,
            gt=0,
            le=1,
            description="A class is covered when its share of the generated samples is at "
            "least this times its share of the reference samples.",
        )

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """``classes_covered``, ``class_kl`` and ``class_share[NAME]`` for each class."""
        named = real if real.spec.num_classes else fake
        classes = named.spec.num_classes or context.features(real).logits.shape[1]
        counts = {}
        for which, samples in (("reference", real), ("generated", fake)):
            logits = _class_logits(samples, context, "class-coverage", classes)
            counts[which] = torch.bincount(logits.argmax(1), minlength=classes).double()
        reference = counts["reference"] / counts["reference"].sum()
        generated = counts["generated"] / counts["generated"].sum()
        drawn = generated > 0
        kl = float((generated[drawn] * (generated[drawn] / reference[drawn]).log()).sum())
        covered = generated >= self.params.min_ratio * reference
        names = _names(named, classes)
        values = {"classes_covered": float(covered[reference > 0].sum()), "class_kl": kl}
        values |= {f"class_share[{n}]": float(s) for n, s in zip(names, generated, strict=True)}
        protocol = {
            "num_generated": len(fake),
            "num_reference": len(real),
            "min_ratio": self.params.min_ratio,
            "classes": classes,
            "reference_share": {n: float(s) for n, s in zip(names, reference, strict=True)},
            "generated_count": {n: int(c) for n, c in zip(names, counts["generated"], strict=True)},
        }
        return MetricResult(values, protocol)
