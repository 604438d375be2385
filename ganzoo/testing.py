"""The conformance kit: plugin authors check their components against ganzoo's contract.

Call one check per component class from the plugin's own tests::

    from ganzoo.testing import check_component

    from my_plugin.losses import MyLoss


    def test_my_loss_conforms():
        check_component(MyLoss)

Every check starts with what ganzoo's registry demands of a class (the right base class, a
docstring, a ``Params`` model derived from :class:`ganzoo.api.Params`) and what recipes need
of its parameters (every one described, defaults that construct, a round trip through
``resolved.toml``), then exercises the component: networks on each data spec they support,
losses on a small MLP generator and discriminator, datasets on their data folder. A failure
raises :class:`ConformanceError` naming the class and the problem. Everything runs on the
CPU with batches of 4 and a fixed seed, leaving the caller's random state as it was.
"""

from __future__ import annotations

import numbers
import tempfile
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from ganzoo import api
from ganzoo.errors import DataError
from ganzoo.registry import KINDS, _contract_problem
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

__all__ = [
    "ConformanceError",
    "check_component",
    "check_dataset",
    "check_discriminator",
    "check_generator",
    "check_loss",
    "check_metric",
]

BATCH = 4
# The data a loss is checked on when the caller gives no spec: 2-D points.
POINTS = api.DataSpec((2,), value_range=(-1.0, 1.0))
# The data a metric is checked on when the caller gives no spec: a 2-D Gaussian mixture.
MIXTURE = api.DataSpec(
    (2,),
    value_range=(-1.5, 1.5),
    mixture=api.Mixture(((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)), 0.05),
)


class ConformanceError(AssertionError):
    """A component breaks ganzoo's contract; the message names the class and the problem."""


def _name(cls: Any) -> str:
    return getattr(cls, "__qualname__", repr(cls))


def _require(cls: Any, condition: bool, problem: str) -> None:
    if not condition:
        raise ConformanceError(f"{_name(cls)}: {problem}")


@contextmanager
def _seeded(seed: int = 0) -> Iterator[None]:
    """Seed torch's CPU generator for the block and restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- what every component needs ------------------------------------------------------------


def _check_contract(cls: Any, base: type, params: api.Params | None) -> api.Params:
    """Check the class and its Params; return ``params`` or the default parameters."""
    kind = next(k for k in KINDS.values() if k.base == base.__name__)
    problem = _contract_problem(kind, cls)
    if problem is not None:
        raise ConformanceError(problem)
    model = cls.Params
    _require(
        cls,
        issubclass(model, api.Params),
        "Params must derive from ganzoo.api.Params (unknown recipe keys are then rejected)",
    )
    for name, field in model.model_fields.items():
        _require(
            cls,
            bool(field.description),
            f"parameter {name!r} has no description (give it Field(description=...))",
        )
    if params is None:
        try:
            params = model()
        except ValidationError as exc:
            raise ConformanceError(
                f"{_name(cls)}: Params() fails with the defaults; give every parameter a "
                f"default, or pass params= to the check: {exc}"
            ) from exc
    _require(cls, isinstance(params, model), f"params= must be a {_name(model)}")
    _check_params_round_trip(cls, params)
    return params


def _check_params_round_trip(cls: Any, params: api.Params) -> None:
    """Unknown keys are refused; the parameters survive resolved.toml (dump, TOML, validate)."""
    model = type(params)
    data = params.model_dump(mode="json", exclude_none=True)
    try:
        model.model_validate({**data, "not_a_parameter": 1})
    except ValidationError:
        pass
    else:
        raise ConformanceError(f"{_name(cls)}: Params accepts an unknown key 'not_a_parameter'")
    try:
        again = model.model_validate(tomllib.loads(tomli_w.dumps(data)))
    except (TypeError, ValueError) as exc:  # tomli_w's TypeError; ValidationError is a ValueError
        raise ConformanceError(
            f"{_name(cls)}: parameters {data} do not survive a round trip through TOML: {exc}"
        ) from exc
    _require(
        cls,
        again == params,
        f"parameters do not survive a round trip through TOML: {params!r} came back as {again!r}",
    )


# --- networks ------------------------------------------------------------------------------


def _specs(cls: Any, specs: Sequence[api.DataSpec] | None) -> Sequence[api.DataSpec]:
    chosen = cls.supported_specs if specs is None else specs
    _require(cls, len(chosen) > 0, "no data specs to check (supported_specs is empty)")
    return chosen


def _build(cls: Any, params: api.Params, spec: api.DataSpec) -> nn.Module:
    try:
        return cls(params, spec)
    except Exception as exc:  # any failure to build is the finding; the cause is chained
        raise ConformanceError(
            f"{_name(cls)}: cannot be built for data of shape {spec.shape}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _samples(spec: api.DataSpec, n: int) -> Tensor:
    """``n`` model-space samples spread uniformly over the spec's value range."""
    low, high = spec.value_range
    return torch.rand(n, *spec.shape) * (high - low) + low


def _check_output(cls: Any, out: Any, shape: tuple[int, ...], where: str) -> None:
    _require(cls, isinstance(out, Tensor), f"{where}: returns {type(out).__name__}, not a Tensor")
    _require(
        cls, tuple(out.shape) == shape, f"{where}: output shape {tuple(out.shape)}, not {shape}"
    )
    _require(cls, out.dtype == torch.float32, f"{where}: output dtype {out.dtype}, not float32")
    _require(cls, bool(out.isfinite().all()), f"{where}: output holds NaN or inf")


def _check_gradients(cls: Any, net: nn.Module, where: str) -> None:
    """After a backward pass: every trainable parameter has a finite gradient, not all zero."""
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    _require(cls, bool(trainable), f"{where}: the network has no trainable parameters")
    missing = [n for n, p in trainable if p.grad is None]
    _require(cls, not missing, f"{where}: no gradient reaches {', '.join(missing)}")
    bad = [n for n, p in trainable if not bool(p.grad.isfinite().all())]
    _require(cls, not bad, f"{where}: NaN or inf gradient in {', '.join(bad)}")
    _require(cls, any(bool(p.grad.any()) for _, p in trainable), f"{where}: all gradients are 0")


def check_generator(
    cls: type[api.Generator],
    specs: Sequence[api.DataSpec] | None = None,
    params: api.Params | None = None,
) -> None:
    """Check a generator class on each of ``specs`` (default: its ``supported_specs``).

    Built with ``params`` (default: the defaults), it has a positive integer ``latent_dim``;
    ``sample_latent(4)`` gives 4 latent vectors; the output is float32 ``(4, *spec.shape)``,
    finite, inside the spec's value range for images, in train and eval mode; and gradients
    reach every trainable parameter.

    Raises:
        ConformanceError: the first problem found.

    """
    params = _check_contract(cls, api.Generator, params)
    for spec in _specs(cls, specs):
        where = f"for data of shape {spec.shape}"
        with _seeded():
            G = _build(cls, params, spec)
            latent = getattr(G, "latent_dim", None)
            _require(
                cls,
                isinstance(latent, int) and not isinstance(latent, bool) and latent > 0,
                f"{where}: latent_dim is {latent!r}, not a positive int",
            )
            z = G.sample_latent(BATCH)
            _require(
                cls,
                isinstance(z, Tensor) and tuple(z.shape[:2]) == (BATCH, latent),
                f"{where}: sample_latent({BATCH}) gives shape "
                f"{tuple(getattr(z, 'shape', ()))}, expected ({BATCH}, {latent}, ...)",
            )
            low, high = spec.value_range
            for training in (True, False):
                G.train(training)
                mode = f"{where}, {'train' if training else 'eval'} mode"
                x = G(z)
                _check_output(cls, x, (BATCH, *spec.shape), mode)
                if spec.is_image:
                    _require(
                        cls,
                        bool(((x >= low) & (x <= high)).all()),
                        f"{mode}: images outside the value range [{low}, {high}] "
                        f"(min {x.min().item():.3g}, max {x.max().item():.3g})",
                    )
            G.train()
            out = G(z)
            (out * torch.randn_like(out)).sum().backward()
            _check_gradients(cls, G, where)


def check_discriminator(
    cls: type[api.Discriminator],
    specs: Sequence[api.DataSpec] | None = None,
    params: api.Params | None = None,
) -> None:
    """Check a discriminator class on each of ``specs`` (default: its ``supported_specs``).

    Built with ``params`` (default: the defaults), it maps a batch ``(N, *spec.shape)`` to
    float32 logits ``(N,)``, or ``(N // pack,)`` when its Params have ``pack``; finite, in
    train and eval mode; and gradients reach every trainable parameter and the input (which
    penalties such as R1 and WGAN-GP differentiate).

    Raises:
        ConformanceError: the first problem found.

    """
    params = _check_contract(cls, api.Discriminator, params)
    pack = getattr(params, "pack", 1)
    n = BATCH * pack
    for spec in _specs(cls, specs):
        where = f"for data of shape {spec.shape}"
        with _seeded():
            D = _build(cls, params, spec)
            x = _samples(spec, n)
            for training in (True, False):
                D.train(training)
                mode = f"{where}, {'train' if training else 'eval'} mode"
                _check_output(cls, D(x), (n // pack,), mode)
            D.train()
            x.requires_grad_(True)
            out = D(x)
            (out * torch.randn_like(out)).sum().backward()
            _check_gradients(cls, D, where)
            _require(
                cls,
                x.grad is not None and bool(x.grad.isfinite().all()) and bool(x.grad.any()),
                f"{where}: no finite, non-zero gradient reaches the input samples",
            )


def _check_loss_output(cls: Any, out: Any, method: str) -> None:
    _require(
        cls,
        isinstance(out, api.LossOutput),
        f"{method} returns {type(out).__name__}, not ganzoo.api.LossOutput",
    )
    value = out.value
    _require(
        cls,
        isinstance(value, Tensor) and value.dim() == 0 and value.is_floating_point(),
        f"{method}: value must be a scalar float tensor, got "
        f"{getattr(value, 'shape', type(value).__name__)}",
    )
    _require(cls, bool(value.isfinite()), f"{method}: value is {value.item()}")
    for key, log in out.logs.items():
        where = f"{method}: log {key!r}"
        _require(cls, isinstance(key, str), f"{method}: log name {key!r} is not a string")
        _require(
            cls,
            isinstance(log, Tensor) and log.dim() == 0,
            f"{where} is not a scalar tensor",
        )
        _require(cls, not log.requires_grad, f"{where} is not detached (use .detach())")
        _require(cls, bool(log.isfinite()), f"{where} is {log.item()} (training would stop)")


def check_loss(
    cls: type[api.Loss], params: api.Params | None = None, spec: api.DataSpec | None = None
) -> None:
    """Check a loss class on a small MLP generator and discriminator for ``spec`` (2-D points).

    ``uses_discriminator`` is a bool and ``default_d_steps`` an int >= 1; built with ``params``
    (default: the defaults), ``discriminator_loss`` (when the loss uses a discriminator) and
    ``generator_loss`` return a :class:`ganzoo.api.LossOutput` with a finite scalar value and
    detached scalar logs; the discriminator loss trains every discriminator parameter and the
    generator loss every generator parameter, through the fake batch.

    Raises:
        ConformanceError: the first problem found.

    """
    params = _check_contract(cls, api.Loss, params)
    _require(cls, isinstance(cls.uses_discriminator, bool), "uses_discriminator is not a bool")
    steps = cls.default_d_steps
    _require(
        cls,
        type(steps) is int and steps >= 1,
        f"default_d_steps is {steps!r}, not an int >= 1",
    )
    spec = spec or POINTS
    with _seeded():
        loss = cls(params)
        G = MLPGenerator(MLPGenerator.Params(latent_dim=4, hidden=[16]), spec)
        D = None
        if cls.uses_discriminator:
            D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[16], dropout=0.0), spec)
        real = _samples(spec, 2 * BATCH)
        fake = G(G.sample_latent(2 * BATCH))
        if D is not None:
            out = loss.discriminator_loss(D, real, fake.detach())
            _check_loss_output(cls, out, "discriminator_loss")
            _require(
                cls,
                out.value.requires_grad,
                "discriminator_loss does not depend on the discriminator",
            )
            out.value.backward()
            _check_gradients(cls, D, "discriminator_loss")
            D.requires_grad_(False)  # as in training: the generator step leaves D alone
        out = loss.generator_loss(D, real, fake)
        _check_loss_output(cls, out, "generator_loss")
        _require(
            cls,
            out.value.requires_grad,
            "generator_loss does not depend on the generator (is the fake batch detached?)",
        )
        out.value.backward()
        _check_gradients(cls, G, "generator_loss")


def check_dataset(
    cls: type[api.Dataset], params: api.Params | None = None, data_dir: str | Path | None = None
) -> None:
    """Check a dataset class with ``params`` (default: the defaults) on ``data_dir``.

    ``spec_for(params)`` gives a :class:`ganzoo.api.DataSpec`. The dataset is built on
    ``data_dir``, or on an empty folder when it is None: missing or unreadable files must
    raise :class:`ganzoo.errors.DataError` (any other exception fails), and a dataset that
    needs files fails the check until it gets a ``data_dir`` holding a small copy. Built, it
    has samples of the spec's shape, uint8 or floating for images and floating for points;
    ``tensor()`` is None or all samples ``(N, *shape)`` agreeing with indexing; ``labels()``
    is None or integers ``(N,)``.

    Raises:
        ConformanceError: the first problem found.

    """
    params = _check_contract(cls, api.Dataset, params)
    spec = cls.spec_for(params)
    _require(cls, isinstance(spec, api.DataSpec), f"spec_for returns {type(spec).__name__}")
    with tempfile.TemporaryDirectory() as empty:
        try:
            dataset = cls(params, Path(data_dir if data_dir is not None else empty))
        except DataError as exc:
            _require(cls, data_dir is None, f"cannot read the data in {data_dir}: {exc}")
            raise ConformanceError(
                f"{_name(cls)}: needs data files; pass data_dir= with a small copy ({exc})"
            ) from exc
        except Exception as exc:  # the wrong exception type is the finding
            where = "an empty data folder" if data_dir is None else str(data_dir)
            raise ConformanceError(
                f"{_name(cls)}: on {where} raises {type(exc).__name__}: {exc}; missing or "
                "unreadable data must raise ganzoo.errors.DataError naming the files"
            ) from exc
        _check_samples(cls, dataset, spec)


def _check_samples(cls: Any, dataset: api.Dataset, spec: api.DataSpec) -> None:
    n = len(dataset)
    _require(cls, n > 0, "the dataset is empty")
    item = dataset[0]
    _require(cls, isinstance(item, Tensor), f"an item is {type(item).__name__}, not a Tensor")
    _require(
        cls,
        tuple(item.shape) == spec.shape,
        f"an item has shape {tuple(item.shape)}, the spec says {spec.shape}",
    )
    allowed = "uint8 or floating" if spec.is_image else "floating"
    _require(
        cls,
        item.is_floating_point() or (spec.is_image and item.dtype == torch.uint8),
        f"items are {item.dtype}; samples of shape {spec.shape} must be {allowed}",
    )
    data = dataset.tensor()
    if data is not None:
        _require(
            cls,
            tuple(data.shape) == (n, *spec.shape) and data.dtype == item.dtype,
            f"tensor() gives {data.dtype} {tuple(data.shape)}, expected {item.dtype} "
            f"{(n, *spec.shape)}",
        )
        _require(cls, torch.equal(data[0], item), "tensor()[0] differs from dataset[0]")
    labels = dataset.labels()
    if labels is not None:
        _require(
            cls,
            tuple(labels.shape) == (n,)
            and not labels.is_floating_point()
            and labels.dtype != torch.bool,
            f"labels() gives {labels.dtype} {tuple(labels.shape)}, expected integers ({n},)",
        )


class _TensorSamples:
    """A :class:`ganzoo.api.Samples` over one tensor of model-space samples."""

    def __init__(self, spec: api.DataSpec, data: Tensor) -> None:
        self.spec, self.data = spec, data

    def __len__(self) -> int:
        return len(self.data)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        yield from self.data.split(batch_size)


class _ProjectionExtractor:
    """A :class:`ganzoo.api.FeatureExtractor` of fixed random tanh features, 8 and 10 wide."""

    name = "conformance-projection"

    def __init__(self, numel: int) -> None:
        rng = torch.Generator().manual_seed(0)
        self.weights = torch.randn(numel, 18, generator=rng)
        self.bias = torch.randn(18, generator=rng)

    def protocol(self) -> dict[str, Any]:
        return {"network": self.name}

    def __call__(self, images: Tensor) -> tuple[Tensor, Tensor]:
        features = torch.tanh(images.flatten(1).float() @ self.weights + self.bias)
        return features[:, :8], features[:, 8:]


def _draw(spec: api.DataSpec, n: int) -> Tensor:
    """Samples from the spec's mixture when it has one, else uniform over its range."""
    if spec.mixture is None:
        return _samples(spec, n)
    means = torch.tensor(spec.mixture.means)
    return means[torch.arange(n) % len(means)] + spec.mixture.std * torch.randn(n, *spec.shape)


def check_metric(
    cls: type[api.Metric], params: api.Params | None = None, spec: api.DataSpec | None = None
) -> None:
    """Check a metric class by scoring 64 samples of ``spec`` against 64 others.

    The default spec is a 2-D mixture of four Gaussians. A metric that ``needs_features`` gets
    fixed random features from the context. ``compute`` returns a
    :class:`ganzoo.api.MetricResult` whose values map names to numbers and whose protocol is
    a mapping.

    Raises:
        ConformanceError: the first problem found.

    """
    params = _check_contract(cls, api.Metric, params)
    spec = spec or MIXTURE
    extractor = _ProjectionExtractor(spec.numel) if cls.needs_features else None
    with _seeded():
        real, fake = _TensorSamples(spec, _draw(spec, 64)), _TensorSamples(spec, _draw(spec, 64))
        context = api.EvalContext(
            torch.device("cpu"), seed=0, reference="conformance", extractor=extractor
        )
        result = cls(params).compute(real, fake, context)
    _require(
        cls,
        isinstance(result, api.MetricResult),
        f"compute returns {type(result).__name__}, not ganzoo.api.MetricResult",
    )
    _require(cls, bool(result.values), "compute returns no values")
    for key, value in result.values.items():
        _require(
            cls,
            isinstance(key, str)
            and isinstance(value, numbers.Real)
            and not isinstance(value, bool),
            f"value {key!r} is {value!r}, not a number",
        )
    _require(cls, isinstance(result.protocol, Mapping), "the protocol is not a mapping")


_CHECKS: tuple[tuple[type, Callable[..., None]], ...] = (
    (api.Generator, check_generator),
    (api.Discriminator, check_discriminator),
    (api.Loss, check_loss),
    (api.Dataset, check_dataset),
    (api.Metric, check_metric),
)


def check_component(cls: type, **options: Any) -> None:
    """Run the check for the kind of ``cls`` (found from its base class) with ``options``.

    Raises:
        ConformanceError: ``cls`` is no component, or the first problem the check finds.

    """
    for base, check in _CHECKS:
        if isinstance(cls, type) and issubclass(cls, base):
            check(cls, **options)
            return
    bases = ", ".join(f"ganzoo.api.{base.__name__}" for base, _ in _CHECKS)
    raise ConformanceError(f"{_name(cls)} is not a ganzoo component: derive it from {bases}")
