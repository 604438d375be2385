"""ganzoo-wgan: WGAN-GP (Gulrajani et al. 2017) for ganzoo, added through entry points only.

It registers the ``wgan-gp`` loss (:mod:`ganzoo_wgan.losses`), the ``wgan-critic`` and
``wgan-mlp-critic`` discriminators (:mod:`ganzoo_wgan.critics`) and two recipes in the
``ganzoo.recipes`` group, so that ``ganzoo list recipes`` shows them and ``ganzoo run
wgan_gp_grid`` runs one. :func:`bundled_recipes` and ``python -m ganzoo_wgan`` give their paths.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

__version__ = metadata.version("ganzoo-wgan")
__all__ = ["__version__", "bundled_recipes"]


def bundled_recipes() -> dict[str, Path]:
    """The recipes this plugin registers, by name, as ganzoo's recipe registry finds them."""
    from ganzoo.registry import normalize_dist_name, registry

    return {
        entry.name: entry.load()
        for entry in registry("recipes")
        if normalize_dist_name(entry.dist) == "ganzoo-wgan"
    }
