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


def _python_blocks(name: str, heading: str) -> list[str]:
    """The ```python blocks of the section under ``heading`` in a docs page."""
    section = _read(name).split(heading, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def test_the_python_example_of_the_user_guide_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (block,) = _python_blocks("user-guide.md", "## From Python")
    namespace: dict = {}
    exec(compile(block, "user-guide.md", "exec"), namespace)
    assert namespace["result"].step == namespace["again"].step == 500
    assert set(namespace["report"].scores) >= {"modes", "high_quality"}
    assert namespace["png"].is_file() and namespace["trained"].step == 500


def test_the_plugin_guide_examples_conform(monkeypatch):
    from ganzoo import api
    from ganzoo.testing import check_component

    checked = []
    for block in _python_blocks("plugins.md", "## Writing a component"):
        namespace: dict = {"__name__": "plugin_guide_example"}
        exec(compile(block, "plugins.md", "exec"), namespace)
        bases = (
            api.Generator, api.Discriminator, api.Loss, api.Dataset, api.Metric, api.Extractor,
            api.Augmentation,
        )  # fmt: skip
        for value in list(namespace.values()):
            if isinstance(value, type) and issubclass(value, bases) and value not in bases:
                check_component(value)
                checked.append(value.__name__)
    assert {"PairedRelativisticLoss", "Spiral", "RandomProjection", "Flip"} <= set(checked)
