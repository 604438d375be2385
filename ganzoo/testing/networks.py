"""Conformance checks of generators and discriminators."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo import api
from ganzoo.testing.base import (
    BATCH,
    ConformanceError,
    calling,
    check_contract,
    check_gradients,
    check_output,
    name_of,
    require,
    seeded,
    uniform_samples,
)

# Labels the networks are checked with when conditional: the 4 samples' classes, and others.
LABELS = torch.tensor([0, 1, 2, 1])
OTHER_LABELS = torch.tensor([3, 0, 1, 2])


def _labels(n: int, other: bool = False) -> Tensor:
    """Labels for ``n`` samples (a multiple of 4)."""
    return (OTHER_LABELS if other else LABELS).repeat(n // BATCH)


def _specs(cls: Any, specs: Sequence[api.DataSpec] | None) -> Sequence[api.DataSpec]:
    """The specs to check, labelled (10 classes) where they are not, for conditional switches."""
    chosen = cls.supported_specs if specs is None else specs
    require(cls, len(chosen) > 0, "no data specs to check (supported_specs is empty)")
    return [s if s.num_classes else replace(s, num_classes=10) for s in chosen]


def _conditional(cls: Any, net: Any, where: str) -> bool:
    classes = getattr(net, "num_classes", 0)
    require(
        cls,
        isinstance(classes, int) and classes >= 0,
        f"{where}: num_classes is {classes!r}, not an int >= 0",
    )
    return classes > 0


def _check_labels_matter(cls: Any, net: Any, inputs: Tensor, where: str) -> None:
    """A conditional network's output moves with its labels."""
    n = len(inputs)
    with torch.no_grad(), calling(cls, f"{where}, eval mode, with labels: forward"):
        net.eval()
        same = torch.equal(net(inputs, _labels(n)), net(inputs, _labels(n, other=True)))
        net.train()
    require(cls, not same, f"{where}: the output does not change with the labels")


def _build(cls: Any, params: api.Params, spec: api.DataSpec) -> nn.Module:
    try:
        return cls(params, spec)
    except Exception as exc:  # any failure to build is the finding; the cause is chained
        raise ConformanceError(
            f"{name_of(cls)}: cannot be built for data of shape {spec.shape}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def check_generator(
    cls: type[api.Generator],
    specs: Sequence[api.DataSpec] | None = None,
    params: api.Params | None = None,
) -> None:
    """Check a generator class on each of ``specs`` (default: its ``supported_specs``).

    Built with ``params`` (default: the defaults), it has a positive integer ``latent_dim``;
    ``sample_latent(4)`` gives 4 latent vectors; the output is float32 ``(4, *spec.shape)``,
    finite, inside the spec's value range for images, in train and eval mode; and gradients
    reach every trainable parameter. Specs without labels are given 10 classes, so that a
    conditional generator (``num_classes > 0``) builds; it is called as ``G(z, y)`` and its
    output must change with ``y``.

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Generator, params)
    for spec in _specs(cls, specs):
        where = f"for data of shape {spec.shape}"
        with seeded():
            G = _build(cls, params, spec)
            latent = getattr(G, "latent_dim", None)
            require(
                cls,
                isinstance(latent, int) and not isinstance(latent, bool) and latent > 0,
                f"{where}: latent_dim is {latent!r}, not a positive int",
            )
            with calling(cls, f"{where}: sample_latent({BATCH})"):
                z = G.sample_latent(BATCH)
            require(
                cls,
                isinstance(z, Tensor) and tuple(z.shape[:2]) == (BATCH, latent),
                f"{where}: sample_latent({BATCH}) gives shape "
                f"{tuple(getattr(z, 'shape', ()))}, expected ({BATCH}, {latent}, ...)",
            )
            conditional = _conditional(cls, G, where)
            labels = (LABELS,) if conditional else ()
            low, high = spec.value_range
            for training in (True, False):
                G.train(training)
                mode = f"{where}, {'train' if training else 'eval'} mode"
                with calling(cls, f"{mode}: forward"):
                    x = G(z, *labels)
                check_output(cls, x, (BATCH, *spec.shape), mode)
                if spec.is_image:
                    require(
                        cls,
                        bool(((x >= low) & (x <= high)).all()),
                        f"{mode}: images outside the value range [{low}, {high}] "
                        f"(min {x.min().item():.3g}, max {x.max().item():.3g})",
                    )
            if conditional:
                _check_labels_matter(cls, G, z, where)
            G.train()
            with calling(cls, f"{where}, train mode: forward or backward"):
                out = G(z, *labels)
                (out * torch.randn_like(out)).sum().backward()
            check_gradients(cls, G, where)


def check_discriminator(
    cls: type[api.Discriminator],
    specs: Sequence[api.DataSpec] | None = None,
    params: api.Params | None = None,
) -> None:
    """Check a discriminator class on each of ``specs`` (default: its ``supported_specs``).

    Built with ``params`` (default: the defaults), it maps a batch ``(N, *spec.shape)`` to
    float32 logits ``(N,)``, or ``(N // pack,)`` when its Params have ``pack``; finite, in
    train and eval mode; and gradients reach every trainable parameter and the input (which
    penalties such as R1 and WGAN-GP differentiate). A conditional discriminator is called as
    ``D(x, y)`` and its logits must change with ``y``; one that ``classifies`` gives finite
    float32 class logits ``(N, num_classes of the spec)`` from ``classify(x)``.

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Discriminator, params)
    pack = getattr(params, "pack", 1)
    n = BATCH * pack
    for spec in _specs(cls, specs):
        where = f"for data of shape {spec.shape}"
        with seeded():
            D = _build(cls, params, spec)
            x = uniform_samples(spec, n)
            labels = (_labels(n),) if _conditional(cls, D, where) else ()
            for training in (True, False):
                D.train(training)
                mode = f"{where}, {'train' if training else 'eval'} mode"
                with calling(cls, f"{mode}: forward"):
                    logits = D(x, *labels)
                check_output(cls, logits, (n // pack,), mode)
                if D.classifies:
                    with calling(cls, f"{mode}: classify"):
                        classes = D.classify(x)
                    check_output(cls, classes, (n, spec.num_classes), f"{mode}, classify")
            if labels:
                _check_labels_matter(cls, D, x, where)
            D.train()
            x.requires_grad_(True)
            with calling(cls, f"{where}, train mode: forward or backward"):
                out = D(x, *labels)
                total = (out * torch.randn_like(out)).sum()
                if D.classifies:
                    classes = D.classify(x)
                    total = total + (classes * torch.randn_like(classes)).sum()
                total.backward()
            check_gradients(cls, D, where)
            require(
                cls,
                x.grad is not None and bool(x.grad.isfinite().all()) and bool(x.grad.any()),
                f"{where}: no finite, non-zero gradient reaches the input samples",
            )
