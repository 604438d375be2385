"""Conformance checks of augmentations: shape, identity at p = 0, gradients, seeded draws."""

from __future__ import annotations

import torch

from ganzoo import api
from ganzoo.errors import ComponentConfigError
from ganzoo.testing.base import (
    ConformanceError,
    calling,
    check_contract,
    check_output,
    name_of,
    require,
    seeded,
    uniform_samples,
)


def check_augmentation(cls: type[api.Augmentation], params: api.Params | None = None) -> None:
    """Check an augmentation class with ``params`` (default: the defaults).

    On each data spec it supports (``supported_specs``) it builds, maps a batch of 4 to a
    finite float32 batch of the same shape, returns the batch unchanged at ``p = 0``, passes
    gradients back to its input, and repeats its output under the same seed.

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Augmentation, params)
    require(cls, bool(cls.supported_specs), "supported_specs is empty")
    for spec in cls.supported_specs:
        where = f"on {spec.shape}"
        with seeded(), calling(cls, "__init__"):
            try:
                augmentation = cls(params, spec)
            except ComponentConfigError as exc:
                raise ConformanceError(
                    f"{name_of(cls)}: refuses {spec.shape}, a spec it declares in "
                    f"supported_specs: {exc}"
                ) from exc
        x = uniform_samples(spec, 4).requires_grad_(True)
        with seeded(), calling(cls, "forward"):
            out = augmentation(x, torch.tensor(1.0))
        check_output(cls, out, (4, *spec.shape), f"forward {where}")
        with seeded(), calling(cls, "forward"):
            again = augmentation(x, torch.tensor(1.0))
        require(cls, torch.equal(out, again), f"{where}: two calls under one seed differ")
        require(cls, out.requires_grad, f"{where}: no gradient reaches the input")
        with calling(cls, "backward"):
            out.square().sum().backward()
        grad = x.grad
        reached = grad is not None and bool(grad.isfinite().all()) and bool(grad.any())
        require(cls, reached, f"{where}: no gradient reaches the input")
        with seeded(), calling(cls, "forward"):
            kept = augmentation(x.detach(), torch.tensor(0.0))
        require(cls, torch.equal(kept, x.detach()), f"{where}: p = 0 changes the batch")
