"""The conformance kit: plugin authors check their components against ganzoo's contract.

Call one check per component class (and per shipped recipe) from the plugin's own tests::

    from ganzoo.testing import check_component

    from my_plugin.losses import MyLoss


    def test_my_loss_conforms():
        check_component(MyLoss)


    def test_my_recipe_conforms():
        check_recipe("my_recipe")

Every check starts with what ganzoo's registry demands of a class (the right base class, a
docstring, a ``Params`` model derived from :class:`ganzoo.api.Params`) and what recipes need
of its parameters (every one described, defaults that construct, a round trip through
``resolved.toml``), then exercises the component: networks on each data spec they support,
losses on a small MLP generator and discriminator, datasets on their data folder, feature
extractors on a batch of images, augmentations on a batch of each spec they support;
:func:`check_recipe` validates a recipe file. A failure
raises :class:`ConformanceError` naming the class and the problem; an exception raised inside
a component's method is one too, naming the method (the exception is its cause). What a loss
returns is held to what training accepts (:mod:`ganzoo.contract`). Everything runs on the
CPU with batches of 4 and a fixed seed, leaving the caller's random state as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ganzoo import api
from ganzoo.testing.augmentations import check_augmentation
from ganzoo.testing.base import ConformanceError, name_of
from ganzoo.testing.datasets import check_dataset
from ganzoo.testing.losses import check_loss
from ganzoo.testing.metrics import check_extractor, check_metric
from ganzoo.testing.networks import check_discriminator, check_generator
from ganzoo.testing.recipes import check_recipe

__all__ = [
    "ConformanceError",
    "check_augmentation",
    "check_component",
    "check_dataset",
    "check_discriminator",
    "check_extractor",
    "check_generator",
    "check_loss",
    "check_metric",
    "check_recipe",
]

_CHECKS: tuple[tuple[type, Callable[..., None]], ...] = (
    (api.Generator, check_generator),
    (api.Discriminator, check_discriminator),
    (api.Loss, check_loss),
    (api.Dataset, check_dataset),
    (api.Metric, check_metric),
    (api.Extractor, check_extractor),
    (api.Augmentation, check_augmentation),
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
    raise ConformanceError(f"{name_of(cls)} is not a ganzoo component: derive it from {bases}")
