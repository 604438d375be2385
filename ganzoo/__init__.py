"""ganzoo: a plugin-based GAN zoo. Recipes in, trained and evaluated GANs out.

``import ganzoo`` is light: torch is imported only when a component, the training loop or a
metric is first used, so that the command line stays fast.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

try:
    __version__ = metadata.version("ganzoo")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "run": "ganzoo.train",
    "RunResult": "ganzoo.loop",
    "RunOptions": "ganzoo.options",
    "SampleOptions": "ganzoo.options",
    "EvalOptions": "ganzoo.options",
    "RunFolder": "ganzoo.runs",
    "sample_run": "ganzoo.sample",
    "evaluate_run": "ganzoo.evaluate",
    "load_recipe": "ganzoo.recipe",
    "recipe_from_dict": "ganzoo.recipe",
    "Recipe": "ganzoo.recipe",
    "registry": "ganzoo.registry",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    """Import the public names lazily, so that ``import ganzoo`` does not import torch."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ganzoo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
