"""The shape of the package: imports go one way, and one module knows the run-folder layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ganzoo"
# Modules that everything may import: they import no module that trains, evaluates or samples.
GROUND_FLOOR = {
    "ganzoo.api",
    "ganzoo.api.augmentation",
    "ganzoo.api.components",
    "ganzoo.api.evaluation",
    "ganzoo.errors",
    "ganzoo.paths",
    "ganzoo.static",
    "ganzoo.registry",
    "ganzoo.progress",
    "ganzoo.options",
    "ganzoo.distributed",
    "ganzoo.device",
    "ganzoo.writes",
    "ganzoo.stopping",
}
# The files of a run folder ("samples" and "checkpoints" are common words: the folders are
# left out, and so is checkpoint.py's own naming of the files in checkpoints/).
LAYOUT_NAMES = {"resolved.toml", "recipe.toml", "metrics.jsonl", "eval.json", "env.json",
                "loss_curve.png", "tensorboard"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ganzoo module that ``name`` imports, at any depth of its code (AST walk)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            # `from ganzoo import distributed` imports the submodule, not the package
            targets = [
                f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                for a in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imports_of(name, path, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_graph_walk_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    assert "ganzoo.train" in graph["ganzoo.cli.training"]  # imported inside `run`
    assert "ganzoo.distributed" in graph["ganzoo.device"]  # `from ganzoo import distributed`


def test_no_import_cycle_among_ganzoo_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("name", sorted(GROUND_FLOOR))
def test_ground_floor_modules_import_only_the_ground_floor(name):
    graph = import_graph()
    above = graph[name] - GROUND_FLOOR - {"ganzoo"}
    assert not above, f"{name} imports {sorted(above)}, above the ground floor"


def test_only_runs_names_the_run_folder_files():
    offenders = []
    for name, path in modules().items():
        if name == "ganzoo.runs":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and node.value in LAYOUT_NAMES
                and id(node) not in docstrings
            ):
                offenders.append(f"{name}:{node.lineno} {node.value!r}")
    assert not offenders, f"run-folder names outside ganzoo.runs: {offenders}"


def test_no_module_is_over_400_lines():
    long = {
        name: n
        for name, path in modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"


def test_only_the_fid_network_imports_torchvision_when_loaded():
    # torchvision's import pulls in torch._dynamo (about 2 s of CPU); finding the extractors
    # (`ganzoo fid a.npz b.npz`, `ganzoo plugins`) must not pay it, only building the network
    at_load = set()
    for name, path in modules().items():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            else:
                continue
            if any(t.split(".")[0] == "torchvision" for t in targets):
                at_load.add(name)
    assert at_load == {"ganzoo.metrics.fid_inception"}
