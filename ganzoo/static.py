"""Reading what a module holds without running it: its spec, and a class's docstring.

``ganzoo list`` shows every plugin's summaries this way, so that listing imports no plugin
code and one broken plugin cannot break the listing.
"""

from __future__ import annotations

import ast
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path


def first_line(doc: str | None) -> str:
    """The first line of a docstring, stripped; empty when there is none."""
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""


def spec_without_import(module: str) -> ModuleSpec | None:
    """Find a module's spec by asking the import finders, executing no package code."""
    search_path = None
    spec = None
    parts = module.split(".")
    for i in range(len(parts)):
        name = ".".join(parts[: i + 1])
        loaded = sys.modules.get(name)
        spec = getattr(loaded, "__spec__", None) if loaded is not None else None
        if spec is None:
            for finder in sys.meta_path:
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    continue
                try:
                    spec = find_spec(name, search_path)
                except Exception:  # a finder that cannot answer is skipped, as import does
                    spec = None
                if spec is not None:
                    break
        if spec is None:
            return None
        search_path = spec.submodule_search_locations
    return spec


def static_docstring(module: str, attr: str, depth: int = 0) -> str | None:
    """Read the docstring of class ``attr`` from ``module``'s source, following re-exports."""
    spec = spec_without_import(module)
    origin = getattr(spec, "origin", None)
    if not origin or not origin.endswith(".py") or depth > 3:
        return None
    try:
        tree = ast.parse(Path(origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return None
    name = attr.split(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return ast.get_docstring(node)
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if (alias.asname or alias.name) == name:
                    source = _resolve_relative(module, spec, node)
                    return static_docstring(source, alias.name, depth + 1)
    return None


def _resolve_relative(module: str, spec: ModuleSpec | None, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = spec is not None and spec.submodule_search_locations is not None
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package
