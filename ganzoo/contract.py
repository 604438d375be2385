"""The component contract at run time: what ganzoo checks, and whom it names when it breaks.

- A loss method's return (:func:`loss_terms`, every step): a scalar floating-point tensor
  that carries gradients (the value, with no logs) or a :class:`~ganzoo.api.LossOutput` of
  one, whose logs are scalar tensors.
- A plugin network's output (:func:`watch`, a forward hook): a generator's samples
  ``(N, *spec.shape)``, a discriminator's logits ``(N // pack,)``, floating point.
- An exception raised inside a plugin component's method (:func:`blame`) is traced through
  its traceback to the component and the method ganzoo (or another component) called.

Every check reads types and shapes only, which are known without waiting for the device.
A plugin that breaks the contract gets a :class:`~ganzoo.errors.PluginError` naming its
distribution and version, the component, the method and what was expected. ganzoo's own
networks are not watched: a violation by one of ganzoo's components is a bug in ganzoo and
is reported as an internal error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo.api import Augmentation, DataSpec, Generator, LossOutput
from ganzoo.errors import GanzooError, PluginError
from ganzoo.registry import BUILTIN_DIST, Entry, entry_of, normalize_dist_name

LOSS_EXPECTED = "expected a scalar tensor or ganzoo.api.LossOutput"
_TORCH_DIR = os.path.dirname(torch.__file__)


@dataclass(frozen=True)
class Provider:
    """Who provides a component: its kind and registered name, its distribution and version."""

    kind: str
    name: str
    dist: str
    version: str

    @classmethod
    def of(cls, entry: Entry) -> Provider:
        """The provider of a registry entry."""
        return cls(entry.kind.singular, entry.name, entry.dist, entry.version)

    @property
    def builtin(self) -> bool:
        """Whether ganzoo itself provides the component."""
        return normalize_dist_name(self.dist) == BUILTIN_DIST

    def __str__(self) -> str:
        if self.builtin:
            return f"built-in {self.kind} {self.name!r} (ganzoo {self.version})"
        return f"plugin {self.dist} {self.version} ({self.kind} {self.name!r})"

    def error(self, method: str, problem: str) -> Exception:
        """The error for ``method`` breaking the contract as ``problem`` says.

        A :class:`PluginError` for a plugin; for ganzoo's own component, a bug in ganzoo,
        a ``RuntimeError`` that the command line reports as an internal error.
        """
        message = f"{self}: {method} {problem}"
        return (
            RuntimeError(f"{message} (a bug in ganzoo)") if self.builtin else PluginError(message)
        )


def describe(value: object) -> str:
    """A returned value in words: a tensor's dtype and shape, or another object's type."""
    if isinstance(value, Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


# --- losses -------------------------------------------------------------------------------


def loss_problem(out: object) -> str | None:
    """What is wrong with a loss method's return, as ``returned ...; expected ...``, or None.

    Accepted: a scalar floating-point tensor, or a :class:`LossOutput` of one whose logs map
    names to scalar tensors.
    """
    if isinstance(out, Tensor):
        value, logs, holder = out, {}, ""
    elif isinstance(out, LossOutput):
        value, logs, holder = out.value, out.logs, "a LossOutput whose value is "
    else:
        return f"returned {describe(out)}; {LOSS_EXPECTED}"
    if not isinstance(value, Tensor):
        return f"returned {holder}{describe(value)}; expected a scalar tensor"
    if value.dim() != 0:
        return (
            f"returned {holder}{describe(value)}; expected a scalar tensor (reduce it, e.g. with "
            ".mean())"
        )
    if not value.is_floating_point():
        return f"returned {holder}{describe(value)}; expected a floating-point scalar tensor"
    if not isinstance(logs, Mapping):
        return f"returned a LossOutput whose logs are {describe(logs)}; expected a mapping"
    for key, log in logs.items():
        if not isinstance(key, str) or not isinstance(log, Tensor) or log.dim() != 0:
            return f"returned log {key!r} as {describe(log)}; expected a scalar tensor per name"
    return None


def loss_terms(
    out: object, provider: Provider, method: str, trains: str
) -> tuple[Tensor, Mapping[str, Tensor]]:
    """The value and logs of a loss method's return ``out``, checked against the contract.

    ``trains`` names the network the value trains ("the generator"), for the message.

    Raises:
        PluginError: ``out`` breaks the contract (a ``RuntimeError`` for ganzoo's own loss).

    """
    problem = loss_problem(out)
    if problem is not None:
        raise provider.error(method, problem)
    value, logs = (out.value, out.logs) if isinstance(out, LossOutput) else (out, {})
    assert isinstance(value, Tensor)
    if not value.requires_grad:
        raise provider.error(
            method,
            f"returned a value that does not depend on {trains} (it requires no gradient); "
            "expected a loss to minimise",
        )
    return value, logs


# --- networks -----------------------------------------------------------------------------


def samples_problem(out: object, n: int, shape: tuple[int, ...]) -> str | None:
    """What is wrong with a generator's output for ``n`` latent vectors, or None."""
    expected = (n, *shape)
    if not isinstance(out, Tensor):
        return f"returned {describe(out)}; expected samples, a tensor of shape {expected}"
    if out.shape != expected:
        got = tuple(out.shape)
        return f"returned samples of shape {got}; expected {expected}, (N, *spec.shape)"
    if not out.is_floating_point():
        return f"returned {out.dtype} samples; expected a floating-point tensor"
    return None


def logits_problem(out: object, n: int, pack: int = 1) -> str | None:
    """What is wrong with a discriminator's logits for ``n`` samples judged ``pack`` at once."""
    expected = (n // pack,)
    per = "one logit per sample" if pack == 1 else f"one logit per pack of {pack} samples"
    if not isinstance(out, Tensor):
        return f"returned {describe(out)}; expected logits of shape {expected}, {per}"
    if out.shape != expected:
        return f"returned logits of shape {tuple(out.shape)}; expected {expected}, {per}"
    if not out.is_floating_point():
        return f"returned {out.dtype} logits; expected a floating-point tensor"
    return None


class OutputCheck:
    """A forward hook that holds a network's output to the contract (types and shapes only).

    ``sample_shape`` is given for a generator (whose output must be ``(N, *sample_shape)``);
    a discriminator's logits must be ``(N // pack,)``. ``N`` is the first input's batch size.
    """

    def __init__(
        self, provider: Provider, sample_shape: tuple[int, ...] | None, pack: int = 1
    ) -> None:
        self.provider, self.sample_shape, self.pack = provider, sample_shape, pack

    def __call__(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        """Raise the provider's error when ``output`` breaks the contract."""
        if not args or not isinstance(args[0], Tensor) or args[0].dim() == 0:
            return  # not called as the contract says; the component's own business
        n = args[0].shape[0]
        if self.sample_shape is not None:
            problem = samples_problem(output, n, self.sample_shape)
        else:
            problem = logits_problem(output, n, self.pack)
        if problem is not None:
            raise self.provider.error("forward", problem)


def watch(net: nn.Module, entry: Entry, spec: DataSpec) -> None:
    """Check every output of a plugin's network or augmentation ``net`` (a forward hook).

    ganzoo's own networks are left alone: they are tested, and their steps stay hook-free.
    """
    provider = Provider.of(entry)
    if provider.builtin:
        return
    if isinstance(net, Generator | Augmentation):
        net.register_forward_hook(OutputCheck(provider, spec.shape))
        return
    pack = getattr(getattr(net, "params", None), "pack", 1)
    ok = isinstance(pack, int) and pack >= 1
    net.register_forward_hook(OutputCheck(provider, None, pack if ok else 1))
    if spec.num_classes and callable(getattr(net, "classify", None)):
        net.classify = _checked_classify(net.classify, provider, spec.num_classes)  # type: ignore[method-assign]


def classes_problem(out: object, n: int, classes: int) -> str | None:
    """What is wrong with a discriminator's class logits for ``n`` samples, or None."""
    expected = (n, classes)
    if not isinstance(out, Tensor):
        return f"returned {describe(out)}; expected class logits of shape {expected}"
    if out.shape != expected:
        return f"returned class logits of shape {tuple(out.shape)}; expected {expected}"
    if not out.is_floating_point():
        return f"returned {out.dtype} class logits; expected a floating-point tensor"
    return None


def _checked_classify(
    classify: Callable[[Tensor], Tensor], provider: Provider, classes: int
) -> Callable[[Tensor], Tensor]:
    """``classify`` whose output is held to ``(N, classes)`` floating-point logits."""

    def checked(x: Tensor) -> Tensor:
        out = classify(x)
        problem = classes_problem(out, x.shape[0], classes)
        if problem is not None:
            raise provider.error("classify", problem)
        return out

    return checked


# --- exceptions ---------------------------------------------------------------------------


def _component(frame: FrameType) -> tuple[object, Entry] | None:
    """The registered component whose method ``frame`` runs, with its entry, or None."""
    owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
    if owner is None:
        return None
    entry = entry_of(owner if isinstance(owner, type) else type(owner))
    return (owner, entry) if entry is not None else None


def blame(exc: BaseException) -> PluginError | None:
    """The plugin-named error for ``exc`` when it was raised inside a plugin component, or None.

    The component is the innermost plugin component in the traceback; the method is the
    outermost of its own frames (what was called on it, e.g. ``generator_loss``, rather than
    a helper of it); another component that called it is named too. ganzoo's errors, running
    out of memory and failures outside plugins give None.
    """
    if not isinstance(exc, Exception) or isinstance(
        exc, GanzooError | MemoryError | torch.cuda.OutOfMemoryError
    ):
        return None
    frames: list[FrameType] = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    found = [(i, c) for i, f in enumerate(frames) if (c := _component(f)) is not None]
    plugin = [(i, c) for i, c in found if not Provider.of(c[1]).builtin]
    if not plugin:
        return None
    index, (owner, entry) = plugin[-1]
    method, caller = frames[index].f_code.co_name, ""
    for frame in reversed(frames[:index]):
        if frame.f_code.co_filename.startswith(_TORCH_DIR):
            continue  # nn.Module's call machinery
        outer = _component(frame)
        if outer is not None and outer[0] is owner:
            method = frame.f_code.co_name
        elif outer is not None:
            by = Provider.of(outer[1])
            caller = f" (called by {by.kind} {by.name!r} in {frame.f_code.co_name})"
            break
    lines = str(exc).strip().splitlines()
    raised = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return PluginError(
        f"{Provider.of(entry)}: {method} raised {raised}{caller} "
        "(ganzoo --debug shows its traceback)"
    )


@contextmanager
def blaming() -> Iterator[None]:
    """Raise an exception from inside a plugin component in the block as its PluginError.

    The original exception is the PluginError's cause (``--debug`` shows both tracebacks).
    """
    try:
        yield
    except Exception as exc:
        blamed = blame(exc)
        if blamed is None:
            raise
        raise blamed from exc
