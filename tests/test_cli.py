"""The command line: version, listings, show, completion, exit codes and tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import run_cli

import ganzoo
from ganzoo.registry import KINDS, registry


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ganzoo {ganzoo.__version__}"


def test_python_dash_m_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "ganzoo", "--version"], capture_output=True, text=True
    )
    assert done.stdout.strip() == f"ganzoo {ganzoo.__version__}"


def test_a_malformed_set_or_unknown_recipe_is_reported_before_torch_loads():
    # the ganzoo CLI in a fresh process, asked afterwards whether torch was imported
    code = (
        "import sys\nfrom ganzoo.cli import main\nsys.argv = ['ganzoo', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)\n"
    )
    for args in (
        ["validate", "quickstart", "--set", "train.steps"],
        ["validate", "quickstrat"],
        ["run", "quickstrat", "--out", "never"],
    ):
        done = subprocess.run(
            [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
        )
        assert done.stdout.split() == ["2", "False"], (args, done.stdout, done.stderr)
        assert "did you mean 'quickstart'" in done.stderr or "train.steps=500" in done.stderr


def test_list_losses_shows_builtins_with_provider():
    done = run_cli("list", "losses")
    assert done.returncode == 0, done.stderr
    for name in ("minimax", "non-saturating", "mmd", "hinge", "least-squares"):
        line = next(ln for ln in done.stdout.splitlines() if f" {name} " in ln)
        assert f"ganzoo {ganzoo.__version__}" in line


def test_list_all_as_json_covers_every_kind():
    rows = json.loads(run_cli("list", "--json").stdout)
    assert set(rows) == set(KINDS)
    assert {r["name"] for r in rows["datasets"]} >= {"mnist", "fashion-mnist", "cifar10",
                                                       "image-folder", "ring", "grid"}  # fmt: skip
    assert all(
        r["summary"] and r["builtin"] == (r["dist"] == "ganzoo") for k in rows for r in rows[k]
    )


def test_list_recipes():
    rows = json.loads(run_cli("list", "recipes", "--json").stdout)
    names = {r["name"] for r in rows}
    assert {"quickstart", "vanilla_mnist"} <= names
    assert all(r["summary"] for r in rows)


def test_show_every_component():
    from ganzoo.describe import component_info

    for kind in KINDS:
        for name in registry(kind).names():
            info = component_info(kind, name)
            assert info["doc"].splitlines()[0] == info["summary"]
            for p in info["params"]:
                assert p["description"], (kind, name, p["name"])
                assert p["type"]
    done = run_cli("show", "loss", "mmd", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == json.loads(json.dumps(component_info("loss", "mmd")))


def test_show_table_states_types_defaults_and_sizes():
    done = run_cli("show", "discriminator", "mlp")
    assert done.returncode == 0, done.stderr
    assert "list[int > 0], length >= 1" in done.stdout
    assert "[1024, 512, 256]" in done.stdout
    assert "1x28x28" in done.stdout and "1,460,225" in done.stdout


def test_unknown_kind_and_name_exit_2_without_traceback():
    for args, message in (
        (("list", "lossez"), "error: unknown kind 'lossez'; did you mean 'losses'?"),
        (("show", "loss", "hing"), "error: unknown loss 'hing'; did you mean 'hinge'?"),
    ):
        done = run_cli(*args)
        assert done.returncode == 2
        assert done.stderr.startswith(message)
        assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path):
    missing = tmp_path / "missing.toml"
    quiet = run_cli("validate", str(missing))
    loud = run_cli("--debug", "validate", str(missing))
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr and "RecipeError" in loud.stderr


def test_bad_option_is_a_usage_error():
    done = run_cli("list", "--nope")
    assert done.returncode == 2
    assert "No such option" in done.stderr


def test_shell_completion_of_component_names():
    env = {
        "_GANZOO_COMPLETE": "complete_bash",
        "COMP_WORDS": "ganzoo show loss m",
        "COMP_CWORD": "3",
    }
    done = run_cli(env=env)
    assert done.returncode == 0
    assert done.stdout.split() == ["minimax", "mmd"]
    env = {"_GANZOO_COMPLETE": "complete_bash", "COMP_WORDS": "ganzoo run quick", "COMP_CWORD": "2"}
    assert run_cli(env=env).stdout.split() == ["quickstart"]


def test_cli_import_does_not_import_torch():
    probe = "import sys, ganzoo.cli; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
