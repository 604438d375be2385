"""Conformance checks of metrics and of feature extractors."""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor

from ganzoo import api
from ganzoo.testing.base import (
    MIXTURE,
    ConformanceError,
    check_contract,
    require,
    seeded,
    uniform_samples,
)


class _TensorSamples:
    """A :class:`ganzoo.api.Samples` over one tensor of model-space samples and its labels."""

    def __init__(self, spec: api.DataSpec, data: Tensor, labels: Tensor | None) -> None:
        self.spec, self.data, self.labels = spec, data, labels

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        yield from self.data.split(batch_size)


class _ProjectionExtractor:
    """A :class:`ganzoo.api.FeatureExtractor` of fixed random tanh features and logits.

    8 features, and one logit per class of labelled data (10 for unlabelled data).
    """

    name = "conformance-projection"

    def __init__(self, numel: int, classes: int) -> None:
        rng = torch.Generator().manual_seed(0)
        self.weights = torch.randn(numel, 8 + classes, generator=rng)
        self.bias = torch.randn(8 + classes, generator=rng)

    def protocol(self) -> dict[str, Any]:
        return {"network": self.name}

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.tanh(images.flatten(1).float() @ self.weights + self.bias)
        return features[:, :8], features[:, 8:]


def _draw(spec: api.DataSpec, n: int) -> _TensorSamples:
    """Samples from the spec's mixture when it has one (labelled by mode), else uniform.

    Labelled data gets labels cycling through its classes.
    """
    labels = torch.arange(n) % spec.num_classes if spec.num_classes else None
    if spec.mixture is None:
        return _TensorSamples(spec, uniform_samples(spec, n), labels)
    means = torch.tensor(spec.mixture.means)
    modes = torch.arange(n) % len(means)
    points = means[modes] + spec.mixture.std * torch.randn(n, *spec.shape)
    return _TensorSamples(spec, points, modes if spec.num_classes else None)


def check_metric(
    cls: type[api.Metric], params: api.Params | None = None, spec: api.DataSpec | None = None
) -> None:
    """Check a metric class by scoring 64 samples of ``spec`` against 64 others.

    The default spec is a 2-D mixture of four Gaussians, each sample labelled by its mode (for
    metrics of conditional runs). A metric that ``needs_features`` gets
    fixed random features from the context. ``compute`` returns a
    :class:`ganzoo.api.MetricResult` whose values map names to numbers and whose protocol is
    a mapping.

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Metric, params)
    spec = spec or MIXTURE
    classes = spec.num_classes or 10
    extractor = _ProjectionExtractor(spec.numel, classes) if cls.needs_features else None
    with seeded():
        real, fake = _draw(spec, 64), _draw(spec, 64)
        context = api.EvalContext(
            torch.device("cpu"), seed=0, reference="conformance", extractor=extractor
        )
        result = cls(params).compute(real, fake, context)
    require(
        cls,
        isinstance(result, api.MetricResult),
        f"compute returns {type(result).__name__}, not ganzoo.api.MetricResult",
    )
    require(cls, bool(result.values), "compute returns no values")
    for key, value in result.values.items():
        require(
            cls,
            isinstance(key, str)
            and isinstance(value, numbers.Real)
            and not isinstance(value, bool),
            f"value {key!r} is {value!r}, not a number",
        )
    require(cls, isinstance(result.protocol, Mapping), "the protocol is not a mapping")


# The images an extractor is checked on when the caller gives no spec: grey 28x28.
IMAGES = api.DataSpec((1, 28, 28))


def _features(cls: Any, extractor: Any, images: Tensor, where: str) -> tuple[Tensor, Tensor]:
    with torch.inference_mode():
        out = extractor(images)
    require(
        cls,
        isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, Tensor) for t in out),
        f"{where}: the extractor returns {type(out).__name__}, not (features, logits) tensors",
    )
    for part, tensor in zip(("features", "logits"), out, strict=True):
        require(
            cls,
            tensor.dim() == 2 and tensor.shape[0] == len(images) and tensor.is_floating_point(),
            f"{where}: {part} of shape {tuple(tensor.shape)} ({tensor.dtype}), expected "
            f"floats ({len(images)}, D)",
        )
        require(cls, bool(tensor.isfinite().all()), f"{where}: {part} hold NaN or inf")
    return out


def check_extractor(
    cls: type[api.Extractor],
    params: api.Params | None = None,
    request: api.ExtractorRequest | None = None,
    spec: api.DataSpec | None = None,
) -> None:
    """Check an extractor class: it builds for ``request`` and extracts features of ``spec``.

    ``argument`` is a string; ``build(params, request)`` (default request: no argument, the
    CPU) gives a feature extractor with a string ``name`` and a JSON-able ``protocol()`` that
    names it under ``"extractor"``; on 6 images of ``spec`` (default grey 28x28) it returns
    finite float features and logits with one row per image, the same on a second call and
    for the first 3 images alone (no batch statistics: scores must not depend on batching).

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Extractor, params)
    require(cls, isinstance(cls.argument, str), "argument is not a string")
    request = request or api.ExtractorRequest("", torch.device("cpu"))
    spec = spec or IMAGES
    with seeded():
        try:
            extractor = cls.build(params, request)
        except Exception as exc:  # any failure to build is the finding; the cause is chained
            raise ConformanceError(
                f"{cls.__qualname__}: build() fails for {request!r}: {type(exc).__name__}: "
                f"{exc} (pass request= with what it needs)"
            ) from exc
        require(cls, isinstance(getattr(extractor, "name", None), str), "built: no str name")
        protocol = extractor.protocol()
        require(cls, isinstance(protocol, dict), "protocol() does not return a dict")
        try:
            json.dumps(protocol, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConformanceError(f"{cls.__qualname__}: protocol() is not JSON: {exc}") from exc
        require(
            cls,
            isinstance(protocol.get("extractor"), str),
            "protocol() does not name the extractor under 'extractor'",
        )
        images = uniform_samples(spec, 6).to(request.device)
        first = _features(cls, extractor, images, "6 images")
        again = _features(cls, extractor, images, "the same 6 images again")
        alone = _features(cls, extractor, images[:3], "the first 3 images alone")
    for part, a, b, c in zip(("features", "logits"), first, again, alone, strict=True):
        require(cls, torch.equal(a, b), f"{part} differ between two calls on the same images")
        require(
            cls,
            torch.allclose(a[:3], c, rtol=1e-4, atol=1e-5),
            f"{part} of 3 images differ alone and in a batch of 6 (batch statistics? eval mode?)",
        )
