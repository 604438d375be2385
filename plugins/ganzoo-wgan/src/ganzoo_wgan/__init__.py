"""ganzoo-wgan: WGAN-GP (Gulrajani et al. 2017) for ganzoo, added through entry points only.

It registers the ``wgan-gp`` loss (:mod:`ganzoo_wgan.losses`) and the ``wgan-critic`` and
``wgan-mlp-critic`` discriminators (:mod:`ganzoo_wgan.critics`). Its recipes are installed as
package data; :func:`bundled_recipes` finds them and ``python -m ganzoo_wgan`` prints their paths.
"""

from __future__ import annotations

from importlib import metadata, resources
from pathlib import Path

__version__ = metadata.version("ganzoo-wgan")
__all__ = ["__version__", "bundled_recipes"]


def bundled_recipes() -> dict[str, Path]:
    """The recipes shipped with this plugin, by name (the file name without ``.toml``)."""
    folder = resources.files("ganzoo_wgan.recipes")
    return {
        Path(item.name).stem: Path(str(item))
        for item in sorted(folder.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".toml")
    }
