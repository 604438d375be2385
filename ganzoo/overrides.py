"""``--set KEY.PATH=VALUE``: overrides of recipe values, applied before validation.

A value is read as TOML. One that is not TOML (``images/cats``) is kept as :class:`Unquoted`
text until validation knows the field it sets: a string where the field takes text (a string,
a path, a literal of strings), otherwise an error that says to quote strings.
"""

from __future__ import annotations

import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel

from ganzoo.errors import RecipeError
from ganzoo.recipe_errors import ErrorReport, printable

_SET_PATTERN = re.compile(r"^([A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)*)=(.*)$", re.S)
# a value that starts like a TOML array, table or string is meant as TOML: its syntax error
# says more than "quote strings" would
_TOML_OPENERS = ("[", "{", '"', "'")
# what _field_type returns where no field is: the key is unknown, or under a value
_MISSING = object()


class Unquoted(str):
    """The text of a ``--set`` value that is not TOML: a string if its field takes text."""


def parse_value(text: str) -> Any:
    """Parse the right side of ``--set`` as a TOML value; other text becomes :class:`Unquoted`.

    Raises:
        ValueError: the text starts like TOML (a bracket, a brace, a quote) and is not valid
            TOML.

    """
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError as exc:
        if text.startswith(_TOML_OPENERS):
            raise ValueError(f"not a TOML value ({exc})") from None
        return Unquoted(text)


def _quote_hint(path: str, text: str) -> str:
    """The message for unquoted ``text`` given to a ``path`` whose field takes no text."""
    return f"{text} is not a TOML value (quote strings: --set '{path}=\"...\"')"


def apply_overrides(
    data: dict[str, Any], overrides: list[str] | tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``key.path=value`` overrides to a copy of ``data``.

    Returns the new data and, for each overridden dotted path, the ``--set`` text that set it.
    """
    data = _deep_copy(data)
    set_paths: dict[str, str] = {}
    for item in overrides:
        shown = printable(item)
        match = _SET_PATTERN.match(item.strip())
        if not match:
            raise RecipeError([f"--set {shown}: expected KEY.PATH=VALUE, e.g. train.steps=500"])
        path, text = match.groups()
        if not text.strip():
            empty = f"no value (for an empty string: --set '{path}=\"\"')"
            raise RecipeError([f"--set {shown}: {empty}"])
        try:
            value = parse_value(text.strip())
        except ValueError as exc:
            raise RecipeError([printable(f"--set {item}: {exc}")]) from None
        node = data
        keys = path.split(".")
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                where = ".".join(keys[: depth + 1])
                raise RecipeError([f"--set {shown}: {where} is a value, not a table"])
        node[keys[-1]] = value
        set_paths[path] = item
    return data, set_paths


def settle_unquoted(
    data: dict[str, Any],
    keys: tuple[str, ...],
    model: type[BaseModel],
    skip: int,
    errors: ErrorReport,
) -> None:
    """Make the unquoted ``--set`` text at ``keys`` a string, or report it.

    It becomes a string where ``model``'s field there (at ``keys[skip:]``) takes text; an
    unknown key is left to validation, which names it.
    """
    table = _container(data, keys)
    assert table is not None
    annotation = _field_type(model, keys[skip:])
    text = str(table[keys[-1]])
    if annotation is _MISSING or _takes_text(annotation):
        table[keys[-1]] = text
    else:
        path = ".".join(keys)
        errors.add_final(path, _quote_hint(path, text))


def unquoted_paths(data: dict[str, Any], set_paths: dict[str, str]) -> list[tuple[str, ...]]:
    """The dotted paths (as key tuples) whose ``--set`` value in ``data`` is still unquoted."""
    found = []
    for path in set_paths:
        keys = tuple(path.split("."))
        node = _container(data, keys)
        if node is not None and isinstance(node.get(keys[-1]), Unquoted):
            found.append(keys)
    return found


def _container(data: dict[str, Any], keys: Sequence[str]) -> dict[str, Any] | None:
    """The table that holds ``keys[-1]`` inside ``data``, or None where there is none."""
    node: Any = data
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _field_type(model: type[BaseModel], keys: Sequence[str]) -> Any:
    """The annotation of the field at ``keys`` inside ``model``.

    The keys go through nested models and dicts; ``_MISSING`` where no field is there.
    """
    annotation: Any = model
    for key in keys:
        inner = _model_or_dict(annotation)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            if key not in inner.model_fields:
                return _MISSING
            annotation = inner.model_fields[key].annotation
        elif inner is not None:
            annotation = inner
        else:
            return _MISSING
    return annotation


def _model_or_dict(annotation: Any) -> Any:
    """A model in ``annotation`` (itself or in a union), else the value type of a dict in it."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, Mapping):
        return typing.get_args(annotation)[1] if typing.get_args(annotation) else Any
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        args = typing.get_args(annotation)
        for arg in args[:1] if origin is typing.Annotated else args:
            found = _model_or_dict(arg)
            if found is not None:
                return found
    return None


def _takes_text(annotation: Any) -> bool:
    """Whether a field of this type takes a string.

    It does when it is str, a path or a literal of strings, or a union with one of them.
    """
    if isinstance(annotation, type):
        return issubclass(annotation, str | PurePath)
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return any(isinstance(arg, str) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _takes_text(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_takes_text(arg) for arg in typing.get_args(annotation))
    return False


def _deep_copy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data
