"""Evaluation: sample a trained run, score it with registered metrics, record the protocol.

Every score goes out with the protocol that produced it (extractor, weights hash, resize,
input range, sample counts, reference set, seed, ganzoo version): FID and its relatives move
with each of these, so two scores are only comparable when their protocols agree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import Tensor

from ganzoo import __version__
from ganzoo.api import (
    Dataset,
    DataSpec,
    EvalContext,
    FeatureExtractor,
    Generator,
    to_model_space,
)
from ganzoo.build import build_dataset
from ganzoo.errors import UsageError
from ganzoo.metrics.frechet import frechet_distance, load_statistics, save_statistics, statistics
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.recipe import format_loc
from ganzoo.registry import registry
from ganzoo.sample import load_generator
from ganzoo.train import resolve_device

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class DatasetSamples:
    """A dataset's samples in order: from its tensor when it has one, else item by item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.spec = dataset, dataset.spec
        self.data = dataset.tensor()

    def __len__(self) -> int:
        """The number of samples."""
        return len(self.dataset)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space float batches."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if self.data is not None:
                raw = self.data[start:stop]
            else:
                raw = torch.stack([self.dataset[i] for i in range(start, stop)])
            yield to_model_space(raw)


class GeneratorSamples:
    """``n`` samples of a generator from a seeded latent draw; images go through uint8.

    Quantising images to 8 bits makes generated samples exactly what a saved PNG would hold,
    so that scores agree with tools that read image files.
    """

    def __init__(
        self, generator: Generator, n: int, seed: int, device: torch.device, spec: DataSpec
    ) -> None:
        self.generator, self.n, self.seed, self.device, self.spec = generator, n, seed, device, spec

    def __len__(self) -> int:
        """The number of samples."""
        return self.n

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space float batches, the same for the same seed and batch size."""
        rng = torch.Generator().manual_seed(self.seed)
        with torch.inference_mode():
            for start in range(0, self.n, batch_size):
                count = min(batch_size, self.n - start)
                z = self.generator.sample_latent(count, generator=rng).to(self.device)
                x = self.generator(z).float()
                if self.spec.is_image:
                    x = x.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)
                yield x.cpu()


class FolderSamples:
    """Every image file in a folder (sorted by name), as RGB, at its own size."""

    def __init__(self, folder: Path) -> None:
        self.files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not self.files:
            raise UsageError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        first = self._load(self.files[0])
        self.spec = DataSpec(tuple(first.shape))

    @staticmethod
    def _load(path: Path) -> Tensor:
        from PIL import Image

        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def __len__(self) -> int:
        """The number of image files."""
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space batches; every image must have the first image's size."""
        for start in range(0, len(self.files), batch_size):
            images = [self._load(p) for p in self.files[start : start + batch_size]]
            for path, image in zip(self.files[start : start + batch_size], images, strict=True):
                if tuple(image.shape) != self.spec.shape:
                    raise UsageError(
                        f"{path}: size {tuple(image.shape)} differs from the folder's first "
                        f"image {self.spec.shape}; resize the images to one size first"
                    )
            yield to_model_space(torch.stack(images))


def make_extractor(
    name: str,
    device: torch.device,
    *,
    dataset: str | None = None,
    data_dir: Path | None = None,
    inception_weights: str | Path | None = None,
    report: Callable[[str], None] | None = None,
) -> FeatureExtractor:
    """Build a feature extractor: ``inception-v3``, ``classifier[:DATASET]`` or ``auto``.

    ``auto`` takes the Inception network when its weights can be found (or downloaded), and
    otherwise the classifier of ``dataset``.
    """
    from ganzoo.errors import DataError
    from ganzoo.metrics import classifier, inception

    if name == "auto":
        try:
            return make_extractor("inception-v3", device, inception_weights=inception_weights)
        except DataError as exc:
            if dataset is None:
                raise
            if report is not None:
                report(f"Inception weights unavailable; using the {dataset} classifier ({exc})")
            return make_extractor("classifier", device, dataset=dataset, data_dir=data_dir,
                                  report=report)  # fmt: skip
    if name == "inception-v3":
        weights = inception.find_weights(inception_weights)
        return inception.InceptionExtractor(weights).to(device)
    kind, _, named = name.partition(":")
    if kind == "classifier":
        target = named or dataset
        if not target:
            raise UsageError("--extractor classifier needs a dataset: classifier:mnist")
        return classifier.load_or_train_classifier(
            target, resolve_data_dir(data_dir), device, report=report
        )
    raise UsageError(
        f"unknown extractor {name!r}; choose auto, inception-v3 or classifier[:DATASET]"
    )


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


def evaluate_run(
    run_dir: str | Path,
    *,
    metrics: list[str] | None = None,
    extractor: str | None = None,
    num_samples: int | None = None,
    reference_split: str | None = None,
    device: str = "auto",
    seed: int | None = None,
    checkpoint: str | None = None,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
    batch_size: int | None = None,
    report: Callable[[str], None] | None = None,
) -> Report:
    """Score a run's generator (its moving average when it has one) and write ``eval.json``.

    Unset arguments come from the recipe's ``[eval]`` section; the reference set is the
    recipe's dataset (``reference_split`` overrides its split).
    """
    root = Path(run_dir)
    torch_device = resolve_device(device)
    trained = load_generator(root, checkpoint, device)
    recipe, spec = trained.recipe, trained.spec
    config = recipe.shell.eval
    names = metrics or config.metrics or default_metrics(spec)
    count = num_samples or config.num_samples
    batch = batch_size or config.batch_size
    seed = config.seed if seed is None else seed
    metric_objects = {}
    for name in names:
        cls = registry("metrics").load(name)
        metric_objects[name] = cls(cls.Params.model_validate(config.params.get(name, {})))
    data_overrides = [f"data.split={reference_split}"] if reference_split else []
    data_recipe = recipe
    if data_overrides:
        from ganzoo.recipe import recipe_from_dict

        data_recipe = recipe_from_dict(recipe.to_dict(), recipe.source, data_overrides)
    dataset = build_dataset(data_recipe, resolve_data_dir(data_dir))
    real = DatasetSamples(dataset)
    fake = GeneratorSamples(trained.generator, count, seed, torch_device, spec)
    data = data_recipe.components["data"]
    reference = f"{data.name} {getattr(data.params, 'split', '')}".strip()
    feature_extractor = None
    if any(m.needs_features for m in metric_objects.values()):
        feature_extractor = make_extractor(
            extractor or config.extractor, torch_device, dataset=data.name, data_dir=data_dir,
            inception_weights=inception_weights, report=report,
        )  # fmt: skip
    context = EvalContext(torch_device, seed, reference, feature_extractor, batch)
    result = _score(metric_objects, real, fake, context)
    result.protocol |= {
        "run": str(root),
        "step": trained.step,
        "generator": "ema" if trained.ema else "generator",
        "reference": reference,
        "num_generated": count,
        "num_reference": len(real),
        "quantized": spec.is_image,
        "seed": seed,
        "ganzoo": __version__,
    }
    (root / "eval.json").write_text(json.dumps(result.to_json(), indent=2, allow_nan=False) + "\n")
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


def _statistics_of(
    path: Path, extractor: FeatureExtractor, device: torch.device, batch_size: int
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if path.suffix == ".npz":
        return load_statistics(path)
    if not path.is_dir():
        raise UsageError(f"{path}: neither a folder of images nor a .npz of statistics")
    samples = FolderSamples(path)
    context = EvalContext(device, 0, str(path), extractor, batch_size)
    mu, sigma = statistics(context.features(samples).pool.numpy())
    return mu, sigma, {**extractor.protocol(), "source": str(path), "num_images": len(samples)}


def fid_between(
    path1: str | Path,
    path2: str | Path,
    *,
    extractor: str = "inception-v3",
    device: str = "auto",
    batch_size: int = 50,
    data_dir: str | Path | None = None,
    inception_weights: str | Path | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """FID between two folders of images or ``.npz`` statistics, as pytorch-fid's command does.

    Returns the distance and each side's protocol. Statistics made with different feature
    extractors (or weights) are refused.
    """
    torch_device = resolve_device(device)
    paths = [Path(path1), Path(path2)]
    needs_network = any(p.suffix != ".npz" for p in paths)
    net = None
    if needs_network:
        net = make_extractor(extractor, torch_device, data_dir=data_dir,
                             inception_weights=inception_weights)  # fmt: skip
    sides = []
    for path in paths:
        if path.suffix == ".npz":
            sides.append(load_statistics(path))
        else:
            assert net is not None
            sides.append(_statistics_of(path, net, torch_device, batch_size))
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
    report: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Precompute a dataset's feature statistics into a pytorch-fid-compatible ``.npz``."""
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
    net = make_extractor(extractor, torch_device, dataset=dataset, data_dir=data_dir,
                         inception_weights=inception_weights, report=report)  # fmt: skip
    samples = DatasetSamples(ds)
    context = EvalContext(torch_device, 0, dataset, net, batch_size)
    mu, sigma = statistics(context.features(samples).pool.numpy())
    protocol = {
        **net.protocol(),
        "reference": f"{dataset} {getattr(params, 'split', '')}".strip(),
        "num_images": len(samples),
        "ganzoo": __version__,
    }
    save_statistics(Path(out), mu, sigma, protocol)
    return protocol


def format_score(value: float) -> str:
    """A score with 4 significant decimals, or ``inf``/``nan`` as such."""
    return f"{value:.4f}" if math.isfinite(value) else str(value)
