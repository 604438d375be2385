"""Component registries filled from Python entry points, one per kind.

Each kind (generators, discriminators, losses, datasets, metrics, extractors, augmentations,
recipes) reads the
entry-point group ``ganzoo.<kind>``. Discovery reads package metadata only; a component's
summary is read from its module's source text without running it; the class itself is imported
on first use. A recipe entry names a TOML file in a package (``name = "package:file.toml"``),
found without running the package's code. A plugin that fails to import is recorded and fails
only the runs that use it.

Name clashes: the entry of ganzoo itself wins, then the first third-party entry in
``sys.path`` order; every shadowed entry is reported with a :class:`PluginClashWarning`.
Set ``GANZOO_DISABLE_PLUGINS`` to a comma-separated list of distribution names to ignore
them without uninstalling.
"""

from __future__ import annotations

import contextlib
import os
import re
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ganzoo.errors import PluginError, UnknownComponentError, did_you_mean
from ganzoo.static import first_line, spec_without_import, static_docstring

BUILTIN_DIST = "ganzoo"
DISABLE_ENV = "GANZOO_DISABLE_PLUGINS"


@dataclass(frozen=True)
class Kind:
    """One kind of entry: its plural and singular names and its base class in ganzoo.api.

    ``base`` is empty for recipes, whose entries are files rather than classes.
    """

    plural: str
    singular: str
    base: str

    @property
    def group(self) -> str:
        """The entry-point group that lists components of this kind."""
        return f"ganzoo.{self.plural}"


KINDS: dict[str, Kind] = {
    k.plural: k
    for k in (
        Kind("generators", "generator", "Generator"),
        Kind("discriminators", "discriminator", "Discriminator"),
        Kind("losses", "loss", "Loss"),
        Kind("datasets", "dataset", "Dataset"),
        Kind("metrics", "metric", "Metric"),
        Kind("extractors", "extractor", "Extractor"),
        Kind("augmentations", "augmentation", "Augmentation"),
        Kind("recipes", "recipe", ""),
    )
}
_SINGULAR = {k.singular: k.plural for k in KINDS.values()}


class PluginClashWarning(UserWarning):
    """Two distributions register a component under the same name; one is shadowed."""


def kind_of(name: str) -> Kind:
    """Return the kind named ``name``, accepting the plural or singular form."""
    plural = name if name in KINDS else _SINGULAR.get(name)
    if plural is None:
        raise UnknownComponentError(
            f"unknown kind {name!r}{did_you_mean(name, [*KINDS, *_SINGULAR])} "
            f"(kinds: {', '.join(KINDS)})"
        )
    return KINDS[plural]


def normalize_dist_name(name: str) -> str:
    """Normalise a distribution name as PEP 503 does (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def disabled_distributions() -> set[str]:
    """Distribution names listed in ``GANZOO_DISABLE_PLUGINS``, normalised."""
    raw = os.environ.get(DISABLE_ENV, "")
    return {normalize_dist_name(p.strip()) for p in raw.split(",") if p.strip()}


@dataclass
class Entry:
    """One registered component: its name, where it lives and which distribution provides it."""

    kind: Kind
    name: str
    value: str
    dist: str
    version: str
    _entry_point: metadata.EntryPoint = field(repr=False)
    _loaded: Any = field(default=None, repr=False)
    _error: str | None = field(default=None, repr=False)

    @property
    def builtin(self) -> bool:
        """Whether ganzoo itself provides this entry."""
        return normalize_dist_name(self.dist) == BUILTIN_DIST

    @property
    def provider(self) -> str:
        """The providing distribution as ``name version``."""
        return f"{self.dist} {self.version}"

    @property
    def load_error(self) -> str | None:
        """The error of the last failed load, or None."""
        return self._error

    def load(self) -> Any:
        """Import the component class, check it against the contract and cache it.

        Raises:
            PluginError: the import raised, or the object breaks the contract.

        """
        if self._loaded is None and self._error is None:
            try:
                obj = self._resolve()
            except (Exception, SystemExit) as exc:
                self._error = f"import failed: {type(exc).__name__}: {exc}"
            else:
                self._error = self._problem(obj)
                if self._error is None:
                    self._loaded = obj
        if self._loaded is not None:
            return self._loaded
        raise PluginError(
            f"{self.kind.singular} {self.name!r} (from {self.provider}, {self.value}) "
            f"cannot be used: {self._error}"
        )

    def _resolve(self) -> Any:
        return self._entry_point.load()

    def _problem(self, obj: Any) -> str | None:
        return contract_problem(self.kind, obj)

    def summary(self) -> str:
        """The first line of the component's docstring, without importing it if not loaded."""
        if self._loaded is not None:
            return first_line(self._loaded.__doc__)
        module, _, attr = self.value.partition(":")
        return first_line(static_docstring(module.strip(), attr.strip()))


@dataclass
class RecipeEntry(Entry):
    """A recipe shipped by a distribution: ``name = "package:file.toml"``, a file in a package.

    :meth:`load` returns the file's path; the summary is its first comment line.
    """

    def path(self) -> Path | None:
        """Where the file lies, found without running the package's code (None if not found)."""
        package, _, file = self.value.partition(":")
        spec = spec_without_import(package.strip())
        folders = getattr(spec, "submodule_search_locations", None) or []
        for folder in folders:
            candidate = Path(folder) / file.strip()
            if candidate.is_file():
                return candidate
        return None

    def _resolve(self) -> Path:
        package, colon, file = self.value.partition(":")
        if not colon or not file.strip().endswith(".toml"):
            raise ValueError(f"a recipe entry is 'package:file.toml', not {self.value!r}")
        path = self.path()
        if path is not None:
            return path
        resource = resources.files(package.strip()) / file.strip()
        return Path(str(resource))

    def _problem(self, path: Path) -> str | None:
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return f"no file {path}"
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            return f"{path}: {type(exc).__name__}: {exc}"
        return None

    def summary(self) -> str:
        """The first ``#`` comment line of the recipe file."""
        path = self._loaded or self.path()
        try:
            first = path.read_text(encoding="utf-8").splitlines()[:1] if path else []
        except (OSError, UnicodeDecodeError):
            return ""
        return first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""


def contract_problem(kind: Kind, obj: Any) -> str | None:
    """Describe how ``obj`` breaks the component contract of ``kind``, or return None."""
    from pydantic import BaseModel

    from ganzoo import api

    base = getattr(api, kind.base)
    if not isinstance(obj, type):
        return f"expected a class derived from ganzoo.api.{kind.base}, got {type(obj).__name__}"
    if not issubclass(obj, base):
        return f"{obj.__qualname__} does not derive from ganzoo.api.{kind.base}"
    params = getattr(obj, "Params", None)
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        return f"{obj.__qualname__}.Params is not a pydantic model"
    if params.model_config.get("extra") != "forbid":
        return f'{obj.__qualname__}.Params must set extra="forbid" (derive from ganzoo.api.Params)'
    if not first_line(obj.__doc__):
        return f"{obj.__qualname__} has no docstring (its first line is the summary)"
    return None


class Registry:
    """The components of one kind, discovered from the entry-point group ``ganzoo.<kind>``."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] | None = None
        self.shadowed: list[tuple[Entry, Entry]] = []
        self.disabled: list[Entry] = []

    def _discover(self) -> dict[str, Entry]:
        if self._entries is not None:
            return self._entries
        off = disabled_distributions()
        chosen: dict[str, Entry] = {}
        self.shadowed, self.disabled = [], []
        for ep in metadata.entry_points(group=self.kind.group):
            dist = ep.dist
            entry = (Entry if self.kind.base else RecipeEntry)(
                kind=self.kind,
                name=ep.name,
                value=ep.value,
                dist=dist.name if dist is not None else "unknown",
                version=dist.version if dist is not None else "unknown",
                _entry_point=ep,
            )
            if normalize_dist_name(entry.dist) in off and not entry.builtin:
                self.disabled.append(entry)
                continue
            winner = chosen.get(ep.name)
            if winner is None:
                chosen[ep.name] = entry
                continue
            if entry.builtin and not winner.builtin:
                chosen[ep.name], winner, entry = entry, entry, winner
            self.shadowed.append((entry, winner))
            warnings.warn(
                f"{self.kind.singular} {ep.name!r} from {entry.provider} is shadowed by the one "
                f"from {winner.provider}",
                PluginClashWarning,
                stacklevel=2,
            )
        self._entries = dict(sorted(chosen.items()))
        return self._entries

    def __iter__(self) -> Iterator[Entry]:
        """Iterate over the winning entries, sorted by name."""
        return iter(self._discover().values())

    def names(self) -> list[str]:
        """The names of the available components, sorted."""
        return list(self._discover())

    def get(self, name: str) -> Entry:
        """Return the entry named ``name``.

        Raises:
            UnknownComponentError: no installed plugin provides ``name``; the message lists the
                installed names and suggests the closest one.

        """
        entries = self._discover()
        if name in entries:
            return entries[name]
        plural = self.kind.plural
        installed = ", ".join(entries) or "none"
        raise UnknownComponentError(
            f"unknown {self.kind.singular} {name!r}{did_you_mean(name, list(entries))} "
            f"(installed {plural}: {installed})"
        )

    def load(self, name: str) -> Any:
        """Return the component class (or recipe file) named ``name``, loading it on first use."""
        return self.get(name).load()


def installed_names(kind: str) -> list[str]:
    """The names in ``kind``'s entry-point group, sorted, read from metadata alone.

    For help texts: nothing is imported, cached or warned about.
    """
    group = kind_of(kind).group
    off = disabled_distributions()
    return sorted(
        {
            ep.name
            for ep in metadata.entry_points(group=group)
            if ep.dist is None or normalize_dist_name(ep.dist.name) not in off - {BUILTIN_DIST}
        }
    )


_REGISTRIES: dict[str, Registry] = {}


def registry(kind: str) -> Registry:
    """Return the (cached) registry of ``kind`` (plural or singular name)."""
    k = kind_of(kind)
    if k.plural not in _REGISTRIES:
        _REGISTRIES[k.plural] = Registry(k)
    return _REGISTRIES[k.plural]


def entry_of(cls: type) -> Entry | None:
    """The loaded entry whose component is ``cls`` or its nearest registered base class.

    Names the provider of a live component in error messages; only entries loaded in this
    process are known.
    """
    loaded = {
        id(entry._loaded): entry
        for reg in _REGISTRIES.values()
        for entry in (reg._entries or {}).values()
        if entry._loaded is not None and entry.kind.base
    }
    return next((loaded[id(c)] for c in cls.__mro__ if id(c) in loaded), None)


def reset() -> None:
    """Forget every discovered entry, so that the next use reads the metadata again."""
    _REGISTRIES.clear()


@dataclass
class PluginDistribution:
    """A distribution that provides ganzoo components, with its entries and their state."""

    name: str
    version: str
    entries: list[Entry]
    shadowed: list[tuple[Entry, Entry]]
    disabled: bool


def plugin_distributions(load: bool = True) -> list[PluginDistribution]:
    """Every distribution with ``ganzoo.*`` entry points; with ``load``, try loading each entry."""
    by_dist: dict[str, PluginDistribution] = {}

    def dist_of(entry: Entry, disabled: bool = False) -> PluginDistribution:
        key = normalize_dist_name(entry.dist)
        if key not in by_dist:
            by_dist[key] = PluginDistribution(entry.dist, entry.version, [], [], disabled)
        return by_dist[key]

    for kind in KINDS:
        reg = registry(kind)
        for entry in reg:
            dist_of(entry).entries.append(entry)
            if load:
                with contextlib.suppress(PluginError):  # recorded in entry.load_error
                    entry.load()
        for loser, winner in reg.shadowed:
            dist_of(loser).shadowed.append((loser, winner))
        for entry in reg.disabled:
            dist_of(entry, disabled=True).entries.append(entry)
    builtin = normalize_dist_name(BUILTIN_DIST)
    return sorted(by_dist.values(), key=lambda d: (normalize_dist_name(d.name) != builtin, d.name))
