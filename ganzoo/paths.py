"""Where ganzoo looks for data and keeps its caches."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "GANZOO_DATA_DIR"
CACHE_DIR_ENV = "GANZOO_CACHE_DIR"


def cache_dir() -> Path:
    """Ganzoo's cache folder: ``$GANZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/ganzoo``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "ganzoo"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit`` (``--data-dir``), else ``$GANZOO_DATA_DIR``, else cache."""
    if explicit is not None:
        return Path(explicit).expanduser()
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV]).expanduser()
    return cache_dir() / "data"
