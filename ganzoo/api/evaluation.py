"""The evaluation contract: sample sets, feature extractors and metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor

from ganzoo.api.components import Component, DataSpec, Params
from ganzoo.errors import ComponentConfigError

Better = Mapping[str, Literal["lower", "higher"]]
"""For each score of a metric, whether lower or higher values are better."""


class Samples(Protocol):
    """A finite set of model-space samples that a metric reads in batches."""

    spec: DataSpec

    def __len__(self) -> int:
        """The number of samples."""
        ...

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Yield model-space float batches on the CPU, in a fixed order."""
        ...


@dataclass(frozen=True)
class Features:
    """Feature vectors and class logits of a set of samples (float32, on the CPU)."""

    pool: Tensor
    logits: Tensor


class FeatureExtractor(Protocol):
    """A network that maps model-space images to features and class logits."""

    name: str

    def protocol(self) -> dict[str, Any]:
        """How the features are made: network, weights hash, resize, input range..."""
        ...

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features (N, D) and logits (N, K) of a batch of model-space images."""
        ...


@dataclass(frozen=True)
class ExtractorRequest:
    """What an evaluation asks of an extractor entry when it builds its network.

    Attributes:
        argument: the text after ``:`` in ``--extractor NAME:ARGUMENT`` (``""`` when none).
        device: the device the features are computed on.
        dataset: the registered name of the reference dataset, when there is one.
        data_dir: the data folder.
        weights: a weights file the user named (``--inception-weights``), or None.
        report: where to say what takes a while (training, downloading), or None.

    """

    argument: str
    device: torch.device
    dataset: str | None = None
    data_dir: Path = Path()
    weights: Path | None = None
    report: Callable[[str], None] | None = None


class Extractor(Component):
    """An entry of the ``ganzoo.extractors`` group: it builds a :class:`FeatureExtractor`.

    ``--extractor NAME[:ARGUMENT]`` (or ``[eval] extractor``) picks it by its entry-point
    name. ``argument`` names what the text after ``:`` means (``"DATASET"`` for the built-in
    classifier) and is empty for an extractor that takes none. :meth:`build` may take long
    (downloading weights, training a network); it says so through ``request.report``, and
    raises :class:`ganzoo.errors.DataError` when what it needs cannot be had.
    """

    argument: ClassVar[str] = ""

    @classmethod
    def build(cls, params: Params, request: ExtractorRequest) -> FeatureExtractor:
        """The feature network for ``request``, in eval mode on ``request.device``."""
        raise NotImplementedError(f"{cls.__name__} does not implement build()")


@dataclass(frozen=True)
class EvalContext:
    """Where and how metrics run: device, seed, the reference set and the feature extractor.

    :meth:`features` runs the extractor over a sample set once and caches the result, so that
    FID, IS, KID and precision/recall of one evaluation share one pass.
    """

    device: torch.device
    seed: int
    reference: str
    extractor: FeatureExtractor | None = None
    batch_size: int = 250
    _cache: dict[int, tuple[Samples, Features]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def features(self, samples: Samples) -> Features:
        """The extractor's features and logits of ``samples`` (computed once per set)."""
        if self.extractor is None:
            raise ComponentConfigError("this metric needs a feature extractor (--extractor)")
        cached = self._cache.get(id(samples))
        if cached is not None:
            return cached[1]
        pools, logits = [], []
        with torch.inference_mode():
            for batch in samples.batches(self.batch_size):
                pool, logit = self.extractor(batch.to(self.device))
                pools.append(pool.float().cpu())
                logits.append(logit.float().cpu())
        features = Features(torch.cat(pools), torch.cat(logits))
        self.provide(samples, features)
        return features

    def provide(self, samples: Samples, features: Features) -> None:
        """Use ``features`` as those of ``samples`` (from a cache) instead of extracting them."""
        self._cache[id(samples)] = (samples, features)

    def extracted(self, samples: Samples) -> Features | None:
        """The features of ``samples`` if some metric has asked for them, else None."""
        cached = self._cache.get(id(samples))
        return None if cached is None else cached[1]


@dataclass(frozen=True)
class MetricResult:
    """Scores and the protocol that produced them (extractor, weights hash, sample counts...)."""

    values: Mapping[str, float]
    protocol: Mapping[str, Any] = field(default_factory=dict)


class Metric(Component):
    """A score of generated samples against reference samples.

    ``needs_features`` says whether :meth:`compute` uses ``context.features`` (so that an
    evaluation builds the feature extractor only when some metric needs it). ``better`` says,
    for each score it returns, whether ``"lower"`` or ``"higher"`` values are better; tables
    that rank runs (``ganzoo bench``) rank only the scores named there.
    """

    needs_features: ClassVar[bool] = False
    better: ClassVar[Better] = {}

    def __init__(self, params: Params) -> None:
        self.params = params

    def compute(self, real: Samples, fake: Samples, context: EvalContext) -> MetricResult:
        """Score ``fake`` against ``real``."""
        raise NotImplementedError
