"""Recipe problems as readable lines: ``FILE: dotted.path: message``, one per problem.

A problem in a value given with ``--set`` is reported against that ``--set``; an unknown key
gets a "did you mean" where one fits.
"""

from __future__ import annotations

import json
import re
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from ganzoo.errors import RecipeError, did_you_mean

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def format_loc(loc: tuple[str | int, ...]) -> str:
    """Turn a pydantic error location into ``a.b[1].c``.

    A key that is not a bare TOML key is quoted as TOML quotes it (``train."a.b"``).
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
            continue
        key = part if _BARE_KEY.match(str(part)) else json.dumps(str(part), ensure_ascii=False)
        text += f".{key}" if text else key
    return text


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped.

    Control characters and line or paragraph separators would split one problem's line.
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


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


def _under(path: str, top: str) -> bool:
    """Whether dotted ``path`` is ``top`` or inside it."""
    return path == top or path.startswith((top + ".", top + "["))


class ErrorReport:
    """Collects recipe problems as ``where: dotted.path: message`` lines."""

    def __init__(self, source: str, set_paths: dict[str, str]) -> None:
        self.source = source
        self.set_paths = set_paths
        self.lines: list[str] = []
        self._final: list[str] = []

    def where(self, path: str) -> str:
        """The file a problem at ``path`` is in, naming the ``--set`` that gave it if one did."""
        for set_path, text in self.set_paths.items():
            if _under(path, set_path):
                return f"{self.source} (--set {text})"
        return self.source

    def add(self, path: str, message: str) -> None:
        """Record ``message`` about the value at dotted ``path``."""
        if not any(_under(path, final) for final in self._final):
            self.lines.append(printable(f"{self.where(path)}: {path}: {message}"))

    def add_final(self, path: str, message: str) -> None:
        """Record ``message`` as the one problem at ``path``: later ones there are dropped."""
        self.add(path, message)
        self._final.append(path)

    def add_validation(
        self, exc: ValidationError, model: type[BaseModel], prefix: tuple[str, ...] = ()
    ) -> None:
        """Record every error of a pydantic validation of ``model``, under ``prefix``."""
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

    def add_huge_integers(self, data: Any, loc: tuple[str | int, ...] = ()) -> None:
        """Record each integer in ``data`` beyond TOML's 64 bits as the one problem at its path.

        ``tomllib`` reads them; torch would fail on them with an overflow deep inside.
        """
        if isinstance(data, dict | list):
            items = data.items() if isinstance(data, dict) else enumerate(data)
            for key, value in items:
                self.add_huge_integers(value, (*loc, key))
        elif isinstance(data, int) and not -(2**63) <= data < 2**63:
            self.add_final(format_loc(loc), f"{data} is outside TOML's 64-bit integers")

    def raise_if_any(self) -> None:
        """Raise :class:`RecipeError` with every recorded line, if there is one."""
        if self.lines:
            raise RecipeError(self.lines)
