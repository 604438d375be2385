"""Recipes: TOML files that pick components by name and set their parameters.

A recipe is validated in two steps: first its shell (top-level keys, section names,
``[train]`` and ``[eval]``), then each component section against the ``Params`` model of the
component it names. Every problem becomes one line ``FILE: dotted.path: message``; a problem
in a value given with ``--set`` is reported against that ``--set``.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ganzoo.errors import PluginError, RecipeError, UnknownComponentError, did_you_mean
from ganzoo.registry import Entry, registry

SCHEMA_VERSION = 1
COMPONENT_SECTIONS = {
    "generator": "generators",
    "discriminator": "discriminators",
    "loss": "losses",
    "data": "datasets",
}
UnitFloat = Annotated[float, Field(ge=0.0, lt=1.0)]


class RecipeWarning(UserWarning):
    """A recipe holds something that has no effect."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimizerConfig(_Strict):
    """An optimiser for one network (defaults: Adam, lr 2e-4, betas (0.5, 0.999))."""

    name: Literal["adam", "adamw", "rmsprop"] = Field("adam", description="The optimiser.")
    lr: float = Field(2e-4, gt=0, description="Learning rate.")
    betas: tuple[UnitFloat, UnitFloat] = Field(
        (0.5, 0.999), description="Adam/AdamW moment decay rates."
    )
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (decoupled for AdamW).")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant",
        description="Learning-rate schedule over train.steps: constant, or a linear or cosine "
        "decay to zero.",
    )


class TrainConfig(_Strict):
    """The ``[train]`` section: the training loop's settings."""

    steps: int = Field(10_000, gt=0, description="Generator updates to train for.")
    batch_size: int = Field(64, gt=0, description="Samples per batch, real and generated.")
    d_steps: int | None = Field(
        None, gt=0, description="Discriminator updates per generator update; unset: the loss's."
    )
    generator_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    discriminator_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    ema: UnitFloat = Field(
        0.0, description="Decay of an exponential moving average of G's weights; 0 is off."
    )
    log_every: int = Field(100, gt=0, description="Steps between metric lines.")
    sample_every: int = Field(1000, gt=0, description="Steps between sample grids.")
    checkpoint_every: int = Field(1000, gt=0, description="Steps between checkpoints.")
    keep_checkpoints: int = Field(3, ge=1, description="Numbered checkpoints kept besides last.")
    num_samples: int = Field(64, gt=0, description="Size of the fixed-noise sample grid.")
    data_on_device: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Hold the whole dataset on the training device (auto: when it is small "
        "enough and the dataset offers it).",
    )
    num_workers: int = Field(2, ge=0, description="DataLoader workers for streamed datasets.")
    tensorboard: bool = Field(
        True, description="Write TensorBoard event files when the tensorboard package is installed."
    )
    compile: bool = Field(
        False, description="torch.compile the networks (the first steps are slow while compiling)."
    )
    amp: bool = Field(
        False,
        description="bf16 autocast for the forward passes on CUDA and on CPUs with native bf16 "
        "(AMX, AVX512-BF16); ignored with a warning elsewhere.",
    )
    channels_last: bool = Field(
        False, description="Keep convolutional networks and image batches in channels-last layout."
    )


class EvalConfig(_Strict):
    """The ``[eval]`` section: metrics computed at the end of training."""

    metrics: list[str] = Field(
        [], description="Metric names from the metrics registry; empty: no evaluation."
    )
    num_samples: int = Field(10_000, gt=0, description="Generated samples to score.")
    batch_size: int = Field(250, gt=0, description="Batch size for sampling and features.")
    extractor: str = Field(
        "auto",
        description="Feature extractor: inception-v3, classifier[:DATASET], or auto (Inception "
        "when its weights are available, else the dataset's classifier).",
    )
    seed: int = Field(0, description="Seed of the generated samples and of KID's subsets.")
    params: dict[str, dict[str, Any]] = Field(
        {},
        description="Parameters of the metrics, by metric name: [eval.params.kid] subsets = 50.",
    )


class ComponentSection(BaseModel):
    """A component section: ``name`` picks the component, the other keys are its Params."""

    model_config = ConfigDict(extra="allow")
    name: str


class RecipeShell(_Strict):
    """The top level of a recipe."""

    schema_version: int = Field(
        description=f"Recipe format version; this ganzoo reads {SCHEMA_VERSION}."
    )
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name.")
    seed: int = Field(0, description="Seed of every random choice of the run.")
    description: str = Field("", description="Free text.")
    generator: ComponentSection
    discriminator: ComponentSection | None = None
    loss: ComponentSection
    data: ComponentSection
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"this ganzoo reads schema_version {SCHEMA_VERSION}, not {value}")
        return value


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
            data[section] = {"name": resolved.name, **params}
        order = ["schema_version", "name", "seed", "description", *COMPONENT_SECTIONS, "train"]
        ordered = {k: data[k] for k in order if k in data}
        ordered.update(data)
        return ordered

    def to_toml(self) -> str:
        """The resolved recipe as TOML: running it repeats this recipe exactly."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def bundled_recipes() -> dict[str, Path]:
    """The recipes shipped with ganzoo, by name (file name without ``.toml``)."""
    folder = resources.files("ganzoo.recipes")
    if not folder.is_dir():
        return {}
    return {
        Path(item.name).stem: Path(str(item))
        for item in sorted(folder.iterdir(), key=lambda i: i.name)
        if item.name.endswith(".toml")
    }


def find_recipe(spec: str | Path) -> Path:
    """Return the recipe file ``spec`` names: a path, or the name of a bundled recipe."""
    path = Path(spec)
    if path.exists() or path.suffix == ".toml" or "/" in str(spec):
        return path
    bundled = bundled_recipes()
    if str(spec) in bundled:
        return bundled[str(spec)]
    raise RecipeError(
        [
            f"{spec}: no such file, and no bundled recipe of that name"
            + did_you_mean(str(spec), list(bundled))
            + f" (bundled: {', '.join(bundled) or 'none'})"
        ]
    )


def load_recipe(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    """Read, override and validate a recipe file (or bundled recipe name).

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
    errors = _ErrorReport(source, set_paths)
    shell = None
    try:
        shell = RecipeShell.model_validate(data)
    except ValidationError as exc:
        errors.add_validation(exc, RecipeShell)
    components: dict[str, ResolvedComponent] = {}
    for section, kind in COMPONENT_SECTIONS.items():
        raw = data.get(section)
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            params = {k: v for k, v in raw.items() if k != "name"}
            resolved = _resolve_component(section, kind, raw["name"], params, errors)
            if resolved is not None:
                components[section] = resolved
    if shell is not None:
        _check_metrics(shell.eval, errors)
        _check_discriminator(shell, components, errors)
    errors.raise_if_any()
    assert shell is not None
    return Recipe(source, shell, components)


def _resolve_component(
    section: str, kind: str, name: str, params: dict[str, Any], errors: _ErrorReport
) -> ResolvedComponent | None:
    try:
        entry = registry(kind).get(name)
    except UnknownComponentError as exc:
        errors.add(f"{section}.name", str(exc))
        return None
    try:
        component = entry.load()
    except PluginError as exc:
        raise PluginError(f"{errors.where(section + '.name')}: {section}.name: {exc}") from None
    try:
        validated = component.Params.model_validate(params)
    except ValidationError as exc:
        errors.add_validation(exc, component.Params, prefix=(section,))
        return None
    return ResolvedComponent(section, entry, component, validated)


def _check_metrics(config: EvalConfig, errors: _ErrorReport) -> None:
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
        try:
            cls.Params.model_validate(params)
        except ValidationError as exc:
            errors.add_validation(exc, cls.Params, prefix=("eval", "params", metric))


def _check_discriminator(
    shell: RecipeShell, components: dict[str, ResolvedComponent], errors: _ErrorReport
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


_SET_PATTERN = re.compile(r"^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)=(.*)$", re.S)
_BARE_WORD = re.compile(r"^[A-Za-z_][\w\-./:]*$")


def parse_value(text: str) -> Any:
    """Parse the right side of ``--set`` as a TOML value; a bare word is taken as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if _BARE_WORD.match(text):
            return text
        raise ValueError(f"not a TOML value ({exc})") from None


def apply_overrides(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``key.path=value`` overrides to a copy of ``data``.

    Returns the new data and, for each overridden dotted path, the ``--set`` text that set it.
    """
    data = _deep_copy(data)
    set_paths: dict[str, str] = {}
    for item in overrides:
        match = _SET_PATTERN.match(item.strip())
        if not match:
            raise RecipeError([f"--set {item}: expected KEY.PATH=VALUE, e.g. train.steps=500"])
        path, text = match.groups()
        try:
            value = parse_value(text.strip())
        except ValueError as exc:
            raise RecipeError([f"--set {item}: {exc}"]) from None
        node = data
        keys = path.split(".")
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                where = ".".join(keys[: depth + 1])
                raise RecipeError([f"--set {item}: {where} is a value, not a table"])
        node[keys[-1]] = value
        set_paths[path] = item
    return data, set_paths


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def format_loc(loc: tuple[str | int, ...]) -> str:
    """Turn a pydantic error location into ``a.b[1].c``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the value at ``loc`` inside ``model``, if any."""
    for part in loc:
        if isinstance(part, int) or part not in model.model_fields:
            return None
        inner = _find_model(model.model_fields[part].annotation)
        if inner is None:
            return None
        model = inner
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _find_model(arg)
            if found is not None:
                return found
    return None


class _ErrorReport:
    """Collects recipe problems as ``where: dotted.path: message`` lines."""

    def __init__(self, source: str, set_paths: dict[str, str]) -> None:
        self.source = source
        self.set_paths = set_paths
        self.lines: list[str] = []

    def where(self, path: str) -> str:
        for set_path, text in self.set_paths.items():
            if (
                path == set_path
                or path.startswith(set_path + ".")
                or path.startswith(set_path + "[")
            ):
                return f"{self.source} (--set {text})"
        return self.source

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{self.where(path)}: {path}: {message}")

    def add_validation(
        self, exc: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()
    ) -> None:
        for error in exc.errors():
            loc = tuple(error["loc"])
            message = error["msg"]
            if error["type"] == "value_error":
                message = str(error["ctx"]["error"])
            elif error["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                choices = list(parent.model_fields) if parent else []
                if prefix and not loc[:-1]:
                    choices = [*choices, "name"]
                message = f"unknown key {loc[-1]!r}" + (
                    did_you_mean(str(loc[-1]), choices) if choices else ""
                )
            self.add(format_loc(prefix + loc), message)

    def raise_if_any(self) -> None:
        if self.lines:
            raise RecipeError(self.lines)
