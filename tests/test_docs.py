"""The documentation stays true to the code: it builds, and names every field, command and option."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from ganzoo.cli import app
from ganzoo.recipe import EvalConfig, OptimizerConfig, RecipeShell, TrainConfig
from ganzoo.registry import KINDS, registry

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def _read(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def _commands() -> dict:
    return typer.main.get_command(app).commands


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_build_is_strict_clean(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("model", [RecipeShell, TrainConfig, OptimizerConfig, EvalConfig])
def test_recipe_reference_names_every_field(model):
    text = _read("recipes.md")
    missing = [name for name in model.model_fields if f"`{name}`" not in text]
    assert not missing, f"docs/recipes.md does not mention {model.__name__} fields {missing}"


def test_cli_reference_names_every_command():
    text = _read("cli.md")
    missing = [
        name
        for name in _commands()
        if not re.search(rf"^#+ .*\b{re.escape(name)}\b", text, re.MULTILINE)
        and f"ganzoo {name}" not in text
    ]
    assert not missing, f"docs/cli.md does not document the commands {missing}"


def test_cli_reference_names_every_long_option():
    text = _read("cli.md")
    group = typer.main.get_command(app)
    missing = []
    for name, command in [("(global)", group), *_commands().items()]:
        for param in command.params:
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and not re.search(rf"`{re.escape(opt)}`", text):
                    missing.append(f"{name} {opt}")
    assert not missing, f"docs/cli.md does not document the options {missing}"


def test_recipe_reference_names_every_builtin_component():
    text = _read("recipes.md")
    missing = [
        f"{kind} {name}"
        for kind in KINDS
        for name in registry(kind).names()
        if registry(kind).get(name).dist == "ganzoo" and f"`{name}`" not in text
    ]
    assert not missing, f"docs/recipes.md does not document the built-in components {missing}"
