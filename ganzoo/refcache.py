"""A cache of reference-set features, keyed by the full protocol that made them.

Extracting Inception features of a reference set (10,000 MNIST images, 60,000 Fashion-MNIST
images) takes minutes on a CPU and gives the same features every time for the same protocol.
:class:`FeatureCache` keeps them under ``CACHE_DIR/features`` (``$GANZOO_CACHE_DIR``, else
``~/.cache/ganzoo``), one ``.npz`` per key. The key (:func:`reference_key`) holds everything
the features depend on: the extractor's protocol (network, weights hash, resize mode,
precision), the dataset's name and parameters (split, folder...), the number of samples and,
where the dataset holds its images in memory, the SHA-256 of those images, so that changed
files miss the cache. Not in the key: the batch size and the device (they move features by
float rounding only) and the evaluation's seed (the reference set is read whole and in order;
no draw depends on it).

A file stores its key, the features and a SHA-256 of them: a truncated or corrupt file, or one
whose key does not match, is reported in one warning line and recomputed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganzoo import __version__
from ganzoo.api import Dataset, EvalContext, Features, Samples
from ganzoo.errors import WriteError
from ganzoo.paths import cache_dir
from ganzoo.writes import remove, write_file

FORMAT = 1
SUBFOLDER = "features"


def reference_key(
    extractor_protocol: dict[str, Any],
    dataset_name: str,
    dataset_params: dict[str, Any],
    dataset: Dataset,
) -> dict[str, Any]:
    """The cache key of ``dataset``'s features under an extractor with ``extractor_protocol``."""
    key: dict[str, Any] = {
        "format": FORMAT,
        "extractor": extractor_protocol,
        "dataset": dataset_name,
        "params": dataset_params,
        "num_samples": len(dataset),
    }
    data = dataset.tensor()
    if data is not None:
        key["data_sha256"] = hashlib.sha256(data.contiguous().numpy().tobytes()).hexdigest()
    return key


def _canonical(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _digest(pool: np.ndarray, logits: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in (pool, logits):
        digest.update(str(array.shape).encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """One cached feature file: where it is, what made it, how many samples, how big."""

    path: Path
    key: dict[str, Any]
    created: str
    ganzoo: str
    num_samples: int
    size_bytes: int

    def describe(self) -> str:
        """The reference set and extractor of this entry in a few words."""
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.key.get("params", {}).items()))
        extractor = self.key.get("extractor", {})
        name = extractor.get("extractor", "?")
        extras = [str(extractor[k]) for k in ("resize", "precision") if k in extractor]
        how = f"{name} ({'; '.join(extras)})" if extras else name
        return f"{self.key.get('dataset', '?')} [{params}] by {how}"


class FeatureCache:
    """Reference features on disk, one ``.npz`` per :func:`reference_key`."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else cache_dir() / SUBFOLDER

    def path_for(self, key: dict[str, Any]) -> Path:
        """The file that holds (or would hold) the features of ``key``."""
        digest = hashlib.sha256(_canonical(key).encode()).hexdigest()[:24]
        return self.root / f"{digest}.npz"

    def load(self, key: dict[str, Any]) -> tuple[Features, CacheEntry] | None:
        """The features stored for ``key``, or None when there are none.

        A file that cannot be read, fails its checksum or holds another key is reported in one
        warning and treated as missing (the caller recomputes and overwrites it).
        """
        path = self.path_for(key)
        if not path.is_file():
            return None
        try:
            pool, logits, entry = _read(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            warnings.warn(
                f"{path}: the cached reference features are unreadable ({exc}); recomputing",
                stacklevel=2,
            )
            return None
        if _canonical(entry.key) != _canonical(key):
            warnings.warn(
                f"{path}: the cached reference features belong to another protocol; recomputing",
                stacklevel=2,
            )
            return None
        return Features(torch.from_numpy(pool), torch.from_numpy(logits)), entry

    def store(self, key: dict[str, Any], features: Features) -> CacheEntry | None:
        """Write ``features`` for ``key``; a failed write is a warning, not an error."""
        path = self.path_for(key)
        pool = features.pool.float().numpy()
        logits = features.logits.float().numpy()
        created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        meta = {"key": key, "created": created, "ganzoo": __version__,
                "sha256": _digest(pool, logits)}  # fmt: skip
        meta_json = np.array(json.dumps(meta, sort_keys=True, default=str))
        try:
            write_file(
                path,
                lambda f: np.savez(f, pool=pool, logits=logits, meta=meta_json),
                "the reference-feature cache",
            )
        except WriteError as exc:
            warnings.warn(f"{exc}; the features are not cached", stacklevel=2)
            return None
        return CacheEntry(path, key, created, __version__, len(pool), path.stat().st_size)

    def entries(self) -> list[CacheEntry | Path]:
        """Every cache file, read (a :class:`CacheEntry`) or, when unreadable, its path."""
        found: list[CacheEntry | Path] = []
        for path in sorted(self.root.glob("*.npz")) if self.root.is_dir() else []:
            try:
                found.append(_read(path)[2])
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                found.append(path)
        return found

    def clear(self) -> int:
        """Delete every cache file; returns how many there were."""
        paths = sorted(self.root.glob("*.npz")) if self.root.is_dir() else []
        for path in paths:
            remove(path)
        return len(paths)


class CachedReference:
    """One evaluation's reference features through a :class:`FeatureCache`.

    Built before the metrics run: a cache hit hands the stored features to ``context`` (the
    extractor never sees the reference set). :meth:`keep` after the metrics stores what they
    extracted on a miss and says where the features came from, for ``eval.json``.
    """

    def __init__(
        self, cache: FeatureCache, key: dict[str, Any], context: EvalContext, samples: Samples
    ) -> None:
        self.cache, self.key, self.context, self.samples = cache, key, context, samples
        found = cache.load(key)
        self.hit = found is not None
        if found is not None:
            features, self.entry = found
            context.provide(samples, features)

    def keep(self) -> dict[str, Any]:
        """Store freshly extracted features; where this evaluation's reference features came from.

        ``cache`` is ``hit`` (read from ``file``), ``stored`` (extracted and written to
        ``file``), ``not stored`` (extracted; the file could not be written) or ``unused`` (no
        metric needed reference features).
        """
        if self.hit:
            return self._origin("hit", self.entry)
        features = self.context.extracted(self.samples)
        if features is None:
            return {"cache": "unused"}
        entry = self.cache.store(self.key, features)
        if entry is None:
            return {"cache": "not stored", "file": str(self.cache.path_for(self.key))}
        return self._origin("stored", entry)

    @staticmethod
    def _origin(status: str, entry: CacheEntry) -> dict[str, Any]:
        return {"cache": status, "file": str(entry.path), "created": entry.created,
                "created_by": f"ganzoo {entry.ganzoo}"}  # fmt: skip


def _read(path: Path) -> tuple[np.ndarray, np.ndarray, CacheEntry]:
    """The arrays and entry of a cache file, checked against its stored SHA-256.

    Raises:
        ValueError: the checksum does not match (a damaged file).
        OSError, KeyError, EOFError, zipfile.BadZipFile: the file cannot be read as one.

    """
    with np.load(path, allow_pickle=False) as data:
        pool, logits = data["pool"], data["logits"]
        meta = json.loads(str(data["meta"]))
    if _digest(pool, logits) != meta["sha256"]:
        raise ValueError("checksum mismatch")
    entry = CacheEntry(
        path, meta["key"], meta["created"], meta["ganzoo"], len(pool), path.stat().st_size
    )
    return pool, logits, entry
