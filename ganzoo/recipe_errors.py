"""Recipe problems as readable lines: ``FILE: dotted.path: message``, one per problem.

A problem in a value given with ``--set`` is reported against that ``--set``; an unknown key
gets a "did you mean" where one fits.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from ganzoo.errors import RecipeError, did_you_mean


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


class ErrorReport:
    """Collects recipe problems as ``where: dotted.path: message`` lines."""

    def __init__(self, source: str, set_paths: dict[str, str]) -> None:
        self.source = source
        self.set_paths = set_paths
        self.lines: list[str] = []

    def where(self, path: str) -> str:
        """The file a problem at ``path`` is in, naming the ``--set`` that gave it if one did."""
        for set_path, text in self.set_paths.items():
            if (
                path == set_path
                or path.startswith(set_path + ".")
                or path.startswith(set_path + "[")
            ):
                return f"{self.source} (--set {text})"
        return self.source

    def add(self, path: str, message: str) -> None:
        """Record ``message`` about the value at dotted ``path``."""
        self.lines.append(f"{self.where(path)}: {path}: {message}")

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

    def raise_if_any(self) -> None:
        """Raise :class:`RecipeError` with every recorded line, if there is one."""
        if self.lines:
            raise RecipeError(self.lines)
