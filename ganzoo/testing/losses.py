"""Conformance checks of losses, on a small MLP generator and discriminator."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ganzoo import api
from ganzoo.contract import loss_problem
from ganzoo.testing.base import (
    BATCH,
    POINTS,
    calling,
    check_contract,
    check_gradients,
    require,
    seeded,
    uniform_samples,
)
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator


def _check_loss_output(cls: Any, out: Any, method: str) -> api.LossOutput:
    """``out`` as training reads it (checked as training checks it), its value finite."""
    problem = loss_problem(out)
    require(cls, problem is None, f"{method} {problem}")
    if isinstance(out, Tensor):
        out = api.LossOutput(out)
    value = out.value
    require(cls, bool(value.isfinite()), f"{method}: value is {value.item()}")
    for key, log in out.logs.items():
        where = f"{method}: log {key!r}"
        require(cls, not log.requires_grad, f"{where} is not detached (use .detach())")
        require(cls, bool(log.isfinite()), f"{where} is {log.item()} (training would stop)")
    return out


def check_loss(
    cls: type[api.Loss], params: api.Params | None = None, spec: api.DataSpec | None = None
) -> None:
    """Check a loss class on a small MLP generator and discriminator for ``spec`` (2-D points).

    ``uses_discriminator`` is a bool and ``default_d_steps`` an int >= 1; built with ``params``
    (default: the defaults), ``discriminator_loss`` (when the loss uses a discriminator) and
    ``generator_loss`` raise nothing and return what training accepts: a finite scalar
    floating-point tensor, or a :class:`ganzoo.api.LossOutput` of one with detached scalar
    logs; the discriminator loss trains every discriminator parameter and the
    generator loss every generator parameter, through the fake batch. A loss that
    ``uses_labels`` is checked on labelled points (4 classes) with a conditional generator and
    a discriminator with a classifier head, bound to the labels as in training.

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
    labelled = bool(cls.uses_labels)
    spec = spec or (replace(POINTS, num_classes=4) if labelled else POINTS)
    with seeded():
        with calling(cls, "__init__"):
            loss = cls(params)
        G = MLPGenerator(MLPGenerator.Params(latent_dim=4, hidden=[16], conditional=labelled), spec)
        D = None
        if cls.uses_discriminator:
            D_params = MLPDiscriminator.Params(hidden=[16], dropout=0.0, classifier=labelled)
            D = MLPDiscriminator(D_params, spec)
        real = uniform_samples(spec, 2 * BATCH)
        real_labels = torch.arange(2 * BATCH) % max(spec.num_classes, 1)
        fake_labels = real_labels.flip(0)
        fake = (
            G(G.sample_latent(2 * BATCH), fake_labels)
            if labelled
            else G(G.sample_latent(2 * BATCH))
        )

        def bound(D: Any, fakes: Tensor) -> Any:
            if not labelled:
                return D
            return api.LabelledDiscriminator(D, real_labels, fakes, fake_labels)

        if D is not None:
            detached = fake.detach()
            with calling(cls, "discriminator_loss"):
                out = loss.discriminator_loss(bound(D, detached), real, detached)
            out = _check_loss_output(cls, out, "discriminator_loss")
            require(
                cls,
                out.value.requires_grad,
                "discriminator_loss does not depend on the discriminator",
            )
            with calling(cls, "discriminator_loss's backward pass"):
                out.value.backward()
            check_gradients(cls, D, "discriminator_loss")
            D.requires_grad_(False)  # as in training: the generator step leaves D alone
        with calling(cls, "generator_loss"):
            out = loss.generator_loss(bound(D, fake) if D is not None else None, real, fake)
        out = _check_loss_output(cls, out, "generator_loss")
        require(
            cls,
            out.value.requires_grad,
            "generator_loss does not depend on the generator (is the fake batch detached?)",
        )
        with calling(cls, "generator_loss's backward pass"):
            out.value.backward()
        check_gradients(cls, G, "generator_loss")
