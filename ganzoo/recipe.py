"""Recipes: TOML files that pick components by name and set their parameters.

A recipe is validated in two steps: first its shell (top-level keys, section names,
``[train]`` and ``[eval]``), then each component section against the ``Params`` model of the
component it names. Every problem becomes one line ``FILE: dotted.path: message``; a problem
in a value given with ``--set`` is reported against that ``--set``.
"""

from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ganzoo.errors import PluginError, RecipeError, UnknownComponentError, did_you_mean
from ganzoo.overrides import apply_overrides, settle_unquoted, unquoted_paths
from ganzoo.recipe_errors import ErrorReport
from ganzoo.registry import Entry, registry
from ganzoo.sections import (
    RESERVED_KEYS,
    SCHEMA_VERSION,
    EvalConfig,
    OptimizerConfig,
    RecipeShell,
    TrainConfig,
)

__all__ = [
    "COMPONENT_SECTIONS",
    "SCHEMA_VERSION",
    "EvalConfig",
    "OptimizerConfig",
    "Recipe",
    "RecipeShell",
    "RecipeWarning",
    "ResolvedComponent",
    "TrainConfig",
    "find_recipe",
    "installed_recipes",
    "load_recipe",
    "recipe_from_dict",
]

COMPONENT_SECTIONS = {
    "generator": "generators",
    "discriminator": "discriminators",
    "loss": "losses",
    "data": "datasets",
    "augment": "augmentations",
}


class RecipeWarning(UserWarning):
    """A recipe holds something that has no effect."""


@dataclass(frozen=True)
class ResolvedComponent:
    """A recipe section resolved to a registered component and its validated parameters."""

    section: str
    entry: Entry
    component: type
    params: BaseModel

    @property
    def name(self) -> str:
        """The component's registered name."""
        return self.entry.name


@dataclass(frozen=True)
class Recipe:
    """A validated recipe: the shell and each component with its parameters."""

    source: str
    shell: RecipeShell
    components: dict[str, ResolvedComponent]

    @property
    def name(self) -> str:
        """The recipe's name."""
        return self.shell.name

    @property
    def seed(self) -> int:
        """The run's seed."""
        return self.shell.seed

    @property
    def train(self) -> TrainConfig:
        """The ``[train]`` section."""
        return self.shell.train

    def to_dict(self) -> dict[str, Any]:
        """The recipe with every default filled in, as plain TOML-able data."""
        data = self.shell.model_dump(mode="json", exclude_none=True, exclude=set(self.components))
        data.pop("discriminator", None)
        for section, resolved in self.components.items():
            params = resolved.params.model_dump(mode="json", exclude_none=True)
            own = getattr(self.shell, section).model_dump(mode="json", exclude_none=True)
            reserved = {k: own[k] for k in RESERVED_KEYS.get(section, ()) if k in own}
            data[section] = {"name": resolved.name, **reserved, **params}
        order = ["schema_version", "name", "seed", "description", *COMPONENT_SECTIONS, "train"]
        ordered = {k: data[k] for k in order if k in data}
        ordered.update(data)
        return ordered

    def to_toml(self) -> str:
        """The resolved recipe as TOML: running it repeats this recipe exactly."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def installed_recipes() -> dict[str, Path]:
    """The recipes installed through the ``ganzoo.recipes`` entry points, by name.

    Found without running any plugin's code; an entry whose file cannot be found is left out
    (``ganzoo plugins`` shows it).
    """
    found = {}
    for entry in registry("recipes"):
        path = entry.path()
        if path is not None:
            found[entry.name] = path
    return found


def find_recipe(spec: str | Path) -> Path:
    """Return the recipe file ``spec`` names: a path, or the name of an installed recipe.

    A file wins over an installed recipe of the same name; a folder does not (a bench or run
    folder named after its recipe must not hide the recipe).

    Raises:
        RecipeError: neither a file nor an installed recipe's name.
        PluginError: the recipe's entry is broken (its file is missing or unreadable).

    """
    path = Path(spec)
    if path.is_file() or path.suffix == ".toml" or "/" in str(spec):
        return path
    recipes = registry("recipes")
    names = recipes.names()
    if str(spec) not in names:
        what = "a folder, not a recipe file" if path.is_dir() else "no such file"
        raise RecipeError(
            [
                f"{spec}: {what}, and no installed recipe of that name"
                + did_you_mean(str(spec), names)
                + f" (installed recipes: {', '.join(names) or 'none'})"
            ]
        )
    return recipes.load(str(spec))


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file (or an installed recipe's name).

    Raises:
        RecipeError: the file is missing or malformed, or a value is invalid (exit code 2).
        PluginError: a component named by the recipe fails to load (exit code 3).

    """
    file = find_recipe(path)
    source = str(file)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError([f"{source}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError([f"{source}: cannot read: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError([f"{source}: invalid TOML: {exc}"]) from None
    return recipe_from_dict(data, source, overrides)


def recipe_from_dict(
    data: dict[str, Any], source: str = "<recipe>", overrides: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """Validate recipe data (as read from TOML), after applying ``--set`` overrides.

    Both validation steps run even when the first finds problems, so that every problem of
    the recipe is reported at once.
    """
    data, set_paths = apply_overrides(data, overrides)
    errors = ErrorReport(source, set_paths)
    errors.add_huge_integers(data)
    unquoted = unquoted_paths(data, set_paths)
    for keys in unquoted:
        if not _in_component(keys) and not _in_eval_params(keys):
            settle_unquoted(data, keys, RecipeShell, 0, errors)
    shell = None
    try:
        shell = RecipeShell.model_validate(data)
    except ValidationError as exc:
        errors.add_validation(exc, RecipeShell)
    components: dict[str, ResolvedComponent] = {}
    for section, kind in COMPONENT_SECTIONS.items():
        raw = data.get(section)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            mine = [keys for keys in unquoted if keys[0] == section and _in_component(keys)]
            resolved = _resolve_component(section, kind, data, mine, errors)
            if resolved is not None:
                components[section] = resolved
    if shell is not None:
        _check_metrics(shell.eval, [k for k in unquoted if _in_eval_params(k)], errors)
        _check_discriminator(shell, components, errors)
    errors.raise_if_any()
    assert shell is not None
    return Recipe(source, shell, components)


def _in_component(keys: tuple[str, ...]) -> bool:
    """Whether ``keys`` is a parameter of a component section (known once it is resolved)."""
    if keys[0] not in COMPONENT_SECTIONS or len(keys) < 2:
        return False
    return keys[1] != "name" and keys[1] not in RESERVED_KEYS.get(keys[0], ())


def _in_eval_params(keys: tuple[str, ...]) -> bool:
    """Whether ``keys`` is a parameter of a metric or of the extractor.

    That is ``eval.params.NAME.KEY`` or ``eval.extractor_params.KEY``.
    """
    if keys[:2] == ("eval", "params"):
        return len(keys) > 3
    return keys[:2] == ("eval", "extractor_params") and len(keys) > 2


def _resolve_component(
    section: str,
    kind: str,
    data: dict[str, Any],
    unquoted: list[tuple[str, ...]],
    errors: ErrorReport,
) -> ResolvedComponent | None:
    raw = data[section]
    try:
        entry = registry(kind).get(raw["name"])
    except UnknownComponentError as exc:
        errors.add(f"{section}.name", str(exc))
        return None
    try:
        component = entry.load()
    except PluginError as exc:
        raise PluginError(f"{errors.where(section + '.name')}: {section}.name: {exc}") from None
    for keys in unquoted:
        settle_unquoted(data, keys, component.Params, 1, errors)
    ours = ("name", *RESERVED_KEYS.get(section, ()))
    params = {k: v for k, v in raw.items() if k not in ours}
    try:
        validated = component.Params.model_validate(params)
    except ValidationError as exc:
        errors.add_validation(exc, component.Params, prefix=(section,))
        return None
    return ResolvedComponent(section, entry, component, validated)


def _check_metrics(
    config: EvalConfig, unquoted: list[tuple[str, ...]], errors: ErrorReport
) -> None:
    extractor = config.extractor.partition(":")[0]
    if extractor == "auto":
        extractor = "inception-v3"
    try:
        registry("extractors").get(extractor)
    except UnknownComponentError as exc:
        errors.add("eval.extractor", f"{exc}, or 'auto'")
    else:
        _check_extractor_params(extractor, config, unquoted, errors)
    for i, metric in enumerate(config.metrics):
        try:
            registry("metrics").get(metric)
        except UnknownComponentError as exc:
            errors.add(f"eval.metrics[{i}]", str(exc))
    for metric, params in config.params.items():
        if metric not in config.metrics:
            errors.add(f"eval.params.{metric}", f"metric {metric!r} is not in eval.metrics")
            continue
        try:
            cls = registry("metrics").load(metric)
        except UnknownComponentError:
            continue  # reported above
        except PluginError as exc:
            raise PluginError(f"{errors.where('eval.metrics')}: eval.metrics: {exc}") from None
        for keys in unquoted:
            if keys[1] == "params" and keys[2] == metric:
                settle_unquoted({"eval": {"params": config.params}}, keys, cls.Params, 3, errors)
        try:
            cls.Params.model_validate(params)
        except ValidationError as exc:
            errors.add_validation(exc, cls.Params, prefix=("eval", "params", metric))


def _check_extractor_params(
    name: str, config: EvalConfig, unquoted: list[tuple[str, ...]], errors: ErrorReport
) -> None:
    """Validate ``[eval] extractor_params`` against the extractor's Params."""
    if not config.extractor_params:
        return
    try:
        cls = registry("extractors").load(name)
    except PluginError as exc:
        raise PluginError(f"{errors.where('eval.extractor')}: eval.extractor: {exc}") from None
    for keys in unquoted:
        if keys[1] == "extractor_params":
            data = {"eval": {"extractor_params": config.extractor_params}}
            settle_unquoted(data, keys, cls.Params, 2, errors)
    try:
        cls.Params.model_validate(config.extractor_params)
    except ValidationError as exc:
        errors.add_validation(exc, cls.Params, prefix=("eval", "extractor_params"))


def _check_discriminator(
    shell: RecipeShell, components: dict[str, ResolvedComponent], errors: ErrorReport
) -> None:
    loss = components.get("loss")
    if loss is None:
        return
    if loss.component.uses_discriminator and shell.discriminator is None:
        errors.add("discriminator", f"missing section: loss {loss.name!r} needs a discriminator")
    elif not loss.component.uses_discriminator and "discriminator" in components:
        warnings.warn(
            f"{errors.source}: [discriminator] is ignored: loss {loss.name!r} uses none",
            RecipeWarning,
            stacklevel=3,
        )
        del components["discriminator"]
    if "augment" in components and not loss.component.uses_discriminator:
        errors.add(
            "augment",
            f"an augmentation is applied before the discriminator, and loss {loss.name!r} uses "
            "none; remove [augment]",
        )
