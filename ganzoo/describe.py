"""Plain-data descriptions of entries (components, extractors, recipes), for list and show."""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from ganzoo.registry import Entry, RecipeEntry, registry

_CONSTRAINTS = (
    (at.Gt, "gt", ">"),
    (at.Ge, "ge", ">="),
    (at.Lt, "lt", "<"),
    (at.Le, "le", "<="),
    (at.MinLen, "min_length", "length >="),
    (at.MaxLen, "max_length", "length <="),
)


def constraint_text(metadata: list[Any]) -> str:
    """Render pydantic constraints (``Gt(gt=0)``...) as ``> 0, ...``."""
    parts = []
    for item in metadata:
        for kind, attr, symbol in _CONSTRAINTS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attr)}")
    return ", ".join(parts)


def type_text(annotation: Any) -> str:
    """Render a parameter's type annotation for people: ``list[int > 0]``, ``'a' | 'b'``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        constraints = constraint_text(list(args[1:]))
        return type_text(args[0]) + (f" {constraints}" if constraints else "")
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_text(a) for a in args)
    if origin in (list, tuple, dict, set):
        return f"{origin.__name__}[{', '.join(type_text(a) for a in args)}]"
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def params_info(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One record per parameter: name, type, required, default, description."""
    rows = []
    for name, field in model.model_fields.items():
        rows.append(
            {
                "name": name,
                "type": _field_type(field),
                "required": field.is_required(),
                "default": _default(field),
                "description": field.description or "",
            }
        )
    return rows


def _field_type(field: FieldInfo) -> str:
    constraints = constraint_text(field.metadata)
    return type_text(field.annotation) + (f", {constraints}" if constraints else "")


def _default(field: FieldInfo) -> Any:
    if field.is_required():
        return None
    value = field.default
    if value is PydanticUndefined and field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return list(value) if isinstance(value, tuple) else value


def entry_info(entry: Entry) -> dict[str, Any]:
    """What ``ganzoo list`` shows of an entry, read without importing it."""
    info = {
        "kind": entry.kind.singular,
        "name": entry.name,
        "summary": entry.summary(),
        "dist": entry.dist,
        "version": entry.version,
        "builtin": entry.builtin,
        "value": entry.value,
    }
    if isinstance(entry, RecipeEntry):
        path = entry.path()
        info["path"] = str(path) if path is not None else None
    return info


def recipe_header(path: Path) -> str:
    """The comment lines at the top of a recipe file, without their ``#``."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return "\n".join(lines)


def component_info(kind: str, name: str) -> dict[str, Any]:
    """Everything ``ganzoo show`` prints of a component (loads it)."""
    entry = registry(kind).get(name)
    loaded = entry.load()
    info = entry_info(entry)
    info["summary"] = entry.summary()
    if isinstance(entry, RecipeEntry):
        return info | {"path": str(loaded), "doc": recipe_header(loaded), "params": []}
    cls = loaded
    info["doc"] = inspect.getdoc(cls) or ""
    info["params"] = params_info(cls.Params)
    plural = entry.kind.plural
    if plural in ("generators", "discriminators"):
        info["sizes"] = _network_sizes(cls, plural == "generators")
    elif plural == "losses":
        info["uses_discriminator"] = cls.uses_discriminator
        info["uses_labels"] = cls.uses_labels
        info["default_d_steps"] = cls.default_d_steps
    elif plural == "extractors":
        info["argument"] = cls.argument
    return info


def _network_sizes(cls: type, is_generator: bool) -> list[dict[str, Any]]:
    """Parameter counts and output shapes for the specs the network declares, default params."""
    import torch

    rows = []
    for spec in cls.supported_specs:
        with torch.device("meta"), torch.no_grad():
            net = cls(cls.Params(), spec)
            if is_generator:
                out = net(net.sample_latent(4, device="meta"))
            else:
                out = net(torch.empty(4, *spec.shape))
        rows.append(
            {
                "data_shape": list(spec.shape),
                "parameters": sum(p.numel() for p in net.parameters()),
                "output_shape": ["N", *out.shape[1:]] if is_generator else ["N"],
            }
        )
    return rows
