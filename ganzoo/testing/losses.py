"""Conformance checks of losses, on a small MLP generator and discriminator."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ganzoo import api
from ganzoo.testing.base import (
    BATCH,
    POINTS,
    check_contract,
    check_gradients,
    require,
    seeded,
    uniform_samples,
)
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator


def _check_loss_output(cls: Any, out: Any, method: str) -> None:
    require(
        cls,
        isinstance(out, api.LossOutput),
        f"{method} returns {type(out).__name__}, not ganzoo.api.LossOutput",
    )
    value = out.value
    require(
        cls,
        isinstance(value, Tensor) and value.dim() == 0 and value.is_floating_point(),
        f"{method}: value must be a scalar float tensor, got "
        f"{getattr(value, 'shape', type(value).__name__)}",
    )
    require(cls, bool(value.isfinite()), f"{method}: value is {value.item()}")
    for key, log in out.logs.items():
        where = f"{method}: log {key!r}"
        require(cls, isinstance(key, str), f"{method}: log name {key!r} is not a string")
        require(
            cls,
            isinstance(log, Tensor) and log.dim() == 0,
            f"{where} is not a scalar tensor",
        )
        require(cls, not log.requires_grad, f"{where} is not detached (use .detach())")
        require(cls, bool(log.isfinite()), f"{where} is {log.item()} (training would stop)")


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
    params = check_contract(cls, api.Loss, params)
    require(cls, isinstance(cls.uses_discriminator, bool), "uses_discriminator is not a bool")
    steps = cls.default_d_steps
    require(
        cls,
        type(steps) is int and steps >= 1,
        f"default_d_steps is {steps!r}, not an int >= 1",
    )
    spec = spec or POINTS
    with seeded():
        loss = cls(params)
        G = MLPGenerator(MLPGenerator.Params(latent_dim=4, hidden=[16]), spec)
        D = None
        if cls.uses_discriminator:
            D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[16], dropout=0.0), spec)
        real = uniform_samples(spec, 2 * BATCH)
        fake = G(G.sample_latent(2 * BATCH))
        if D is not None:
            out = loss.discriminator_loss(D, real, fake.detach())
            _check_loss_output(cls, out, "discriminator_loss")
            require(
                cls,
                out.value.requires_grad,
                "discriminator_loss does not depend on the discriminator",
            )
            out.value.backward()
            check_gradients(cls, D, "discriminator_loss")
            D.requires_grad_(False)  # as in training: the generator step leaves D alone
        out = loss.generator_loss(D, real, fake)
        _check_loss_output(cls, out, "generator_loss")
        require(
            cls,
            out.value.requires_grad,
            "generator_loss does not depend on the generator (is the fake batch detached?)",
        )
        out.value.backward()
        check_gradients(cls, G, "generator_loss")
