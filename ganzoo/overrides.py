"""``--set KEY.PATH=VALUE``: overrides of recipe values, applied before validation."""

from __future__ import annotations

import re
import tomllib
from typing import Any

from ganzoo.errors import RecipeError

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
