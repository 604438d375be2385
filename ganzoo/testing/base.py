"""What every conformance check shares: the error, the seeded block, the contract of a class."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tomli_w
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from ganzoo import api
from ganzoo.registry import KINDS, contract_problem

BATCH = 4
# The data a loss is checked on when the caller gives no spec: 2-D points.
POINTS = api.DataSpec((2,), value_range=(-1.0, 1.0))
# The data a metric is checked on when the caller gives no spec: a 2-D Gaussian mixture.
# Its samples are labelled by their mode, for metrics of conditional runs.
MIXTURE = api.DataSpec(
    (2,),
    value_range=(-1.5, 1.5),
    num_classes=4,
    mixture=api.Mixture(((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0)), 0.05),
)


class ConformanceError(AssertionError):
    """A component breaks ganzoo's contract; the message names the class and the problem."""


def name_of(cls: Any) -> str:
    """The qualified name of a class, for messages."""
    return getattr(cls, "__qualname__", repr(cls))


def require(cls: Any, condition: bool, problem: str) -> None:
    """Raise :class:`ConformanceError` naming ``cls`` and ``problem`` unless ``condition``."""
    if not condition:
        raise ConformanceError(f"{name_of(cls)}: {problem}")


@contextmanager
def calling(cls: Any, method: str) -> Iterator[None]:
    """Report an exception raised inside the block, a call of ``method``, as a finding."""
    try:
        yield
    except ConformanceError:
        raise
    except Exception as exc:  # whatever the component raises is the finding; the cause is chained
        lines = str(exc).strip().splitlines()
        raised = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        raise ConformanceError(f"{name_of(cls)}: {method} raised {raised}") from exc


@contextmanager
def seeded(seed: int = 0) -> Iterator[None]:
    """Seed torch's CPU generator for the block and restore the caller's state afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# --- what every component needs ------------------------------------------------------------


def check_contract(cls: Any, base: type, params: api.Params | None) -> api.Params:
    """Check the class and its Params; return ``params`` or the default parameters."""
    kind = next(k for k in KINDS.values() if k.base == base.__name__)
    problem = contract_problem(kind, cls)
    if problem is not None:
        raise ConformanceError(problem)
    model = cls.Params
    require(
        cls,
        issubclass(model, api.Params),
        "Params must derive from ganzoo.api.Params (unknown recipe keys are then rejected)",
    )
    for name, field in model.model_fields.items():
        require(
            cls,
            bool(field.description),
            f"parameter {name!r} has no description (give it Field(description=...))",
        )
    if params is None:
        try:
            params = model()
        except ValidationError as exc:
            raise ConformanceError(
                f"{name_of(cls)}: Params() fails with the defaults; give every parameter a "
                f"default, or pass params= to the check: {exc}"
            ) from exc
    require(cls, isinstance(params, model), f"params= must be a {name_of(model)}")
    check_params_round_trip(cls, params)
    return params


def check_params_round_trip(cls: Any, params: api.Params) -> None:
    """Unknown keys are refused; the parameters survive resolved.toml (dump, TOML, validate)."""
    model = type(params)
    data = params.model_dump(mode="json", exclude_none=True)
    try:
        model.model_validate({**data, "not_a_parameter": 1})
    except ValidationError:
        pass
    else:
        raise ConformanceError(f"{name_of(cls)}: Params accepts an unknown key 'not_a_parameter'")
    try:
        again = model.model_validate(tomllib.loads(tomli_w.dumps(data)))
    except (TypeError, ValueError) as exc:  # tomli_w's TypeError; ValidationError is a ValueError
        raise ConformanceError(
            f"{name_of(cls)}: parameters {data} do not survive a round trip through TOML: {exc}"
        ) from exc
    require(
        cls,
        again == params,
        f"parameters do not survive a round trip through TOML: {params!r} came back as {again!r}",
    )


def uniform_samples(spec: api.DataSpec, n: int) -> Tensor:
    """``n`` model-space samples spread uniformly over the spec's value range."""
    low, high = spec.value_range
    return torch.rand(n, *spec.shape) * (high - low) + low


def check_output(cls: Any, out: Any, shape: tuple[int, ...], where: str) -> None:
    """A network output is a finite float32 tensor of ``shape``."""
    require(cls, isinstance(out, Tensor), f"{where}: returns {type(out).__name__}, not a Tensor")
    require(
        cls, tuple(out.shape) == shape, f"{where}: output shape {tuple(out.shape)}, not {shape}"
    )
    require(cls, out.dtype == torch.float32, f"{where}: output dtype {out.dtype}, not float32")
    require(cls, bool(out.isfinite().all()), f"{where}: output holds NaN or inf")


def check_gradients(cls: Any, net: nn.Module, where: str) -> None:
    """After a backward pass: every trainable parameter has a finite gradient, not all zero."""
    trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    require(cls, bool(trainable), f"{where}: the network has no trainable parameters")
    missing = [n for n, p in trainable if p.grad is None]
    require(cls, not missing, f"{where}: no gradient reaches {', '.join(missing)}")
    bad = [n for n, p in trainable if not bool(p.grad.isfinite().all())]
    require(cls, not bad, f"{where}: NaN or inf gradient in {', '.join(bad)}")
    require(cls, any(bool(p.grad.any()) for _, p in trainable), f"{where}: all gradients are 0")
