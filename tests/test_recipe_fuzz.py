"""A property-based battery at the recipe front door: mutated recipes never crash validation.

Every installed recipe (the bundled ones and the plugins') is mutated by hypothesis (keys
dropped, renamed or added, values retyped, nested into tables and lists, huge and negative
numbers, NaN and infinities, unicode, empty tables, another component's name) and validated
as ``ganzoo validate`` does: through the command itself, in this process for speed, with the
command line's error reporting. Validation must end with exit 0 or 2, with no traceback and
no internal error, and every line it prints must name the recipe file. One mutated recipe is
also validated by a real ``ganzoo validate`` subprocess, which must print the same lines.
"""

from __future__ import annotations

import importlib
import io
import math
import signal
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import tomli_w
import typer
from conftest import run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ganzoo.cli import training
from ganzoo.recipe import COMPONENT_SECTIONS, installed_recipes
from ganzoo.registry import registry

RECIPES = installed_recipes()
COMPONENT_NAMES = sorted(
    {n for kind in COMPONENT_SECTIONS.values() for n in registry(kind).names()}
)
# the module, which the package's ``app`` (the Typer app) shadows as an attribute
cli_app = importlib.import_module("ganzoo.cli.app")
SECONDS = 20  # one validation taking longer than this is a hang


class Hang(BaseException):
    """A validation ran past SECONDS (a BaseException, so that no handler swallows it)."""


def _all_keys(data: Any) -> Iterator[str]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield key
            yield from _all_keys(value)
    elif isinstance(data, list):
        for value in data:
            yield from _all_keys(value)


KEYS = sorted(
    {key for path in RECIPES.values() for key in _all_keys(tomllib.loads(path.read_text()))}
)
NUMBERS = [0, -1, 1, 3, -(2**31), 2**31, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30)]
FLOATS = [math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 1e-30, 0.5, 1.5, -2.0]
TEXTS = ["", " ", "auto", "mnist", "test", "uniform", "adam", "ü✓𝔘", "x" * 300, "a.b", "0"]

key_strategy = st.one_of(
    st.sampled_from(KEYS), st.text(max_size=12), st.sampled_from(["", "ü", "name", "🙂"])
)
scalar_strategy = st.one_of(
    st.sampled_from(NUMBERS),
    st.integers(),
    st.sampled_from(FLOATS),
    st.floats(),
    st.booleans(),
    st.sampled_from(TEXTS),
    st.text(max_size=16),
    st.sampled_from(COMPONENT_NAMES),
)
value_strategy = st.recursive(
    scalar_strategy,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(key_strategy, inner, max_size=3)
    ),
    max_leaves=6,
)
MUTATIONS = ["drop", "retype", "rename", "nest", "number", "empty", "add", "component"]


def _paths(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a value inside ``data``: dict keys and list indices."""
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


def _tables(data: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path to a table inside ``data``, the top level included."""
    if isinstance(data, dict):
        yield prefix
    items = data.items() if isinstance(data, dict) else enumerate(data)
    for key, value in items:
        if isinstance(value, dict | list):
            yield from _tables(value, (*prefix, key))


def _at(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data


@st.composite
def mutated_recipes(draw: st.DrawFn) -> tuple[str, dict]:
    """An installed recipe's name and its data after one to four mutations."""
    name = draw(st.sampled_from(sorted(RECIPES)))
    data = tomllib.loads(RECIPES[name].read_text())
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        paths = list(_paths(data))
        # a number for a number and a name for a name: the rest of the recipe stays valid, so
        # that validation goes on to build the networks
        if kind == "number":
            paths = [p for p in paths if isinstance(_at(data, p), int | float)] or paths
        elif kind == "component":
            paths = [p for p in paths if p[-1] == "name"] or paths
        if kind == "add" or not paths:
            table = _at(data, draw(st.sampled_from(list(_tables(data)))))
            table[draw(key_strategy)] = draw(value_strategy)
            continue
        path = draw(st.sampled_from(paths))
        parent, key = _at(data, path[:-1]), path[-1]
        if kind == "drop":
            del parent[key]
        elif kind == "retype":
            parent[key] = draw(value_strategy)
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(key_strategy)] = parent.pop(key)
        elif kind == "nest":
            if draw(st.booleans()):
                parent[key] = {draw(key_strategy): parent[key]}
            else:
                parent[key] = [parent[key]]
        elif kind == "number":
            parent[key] = draw(st.sampled_from(NUMBERS + FLOATS))
        elif kind == "empty":
            parent[key] = {}
        elif kind == "component":
            parent[key] = draw(st.sampled_from(COMPONENT_NAMES))
    return name, data


@contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The command line's consoles, writing into strings."""
    out, err = io.StringIO(), io.StringIO()
    saved = cli_app.console_err, training.console
    cli_app.console_err = Console(file=err, width=4096, highlight=False)
    training.console = Console(file=out, width=4096, highlight=False)
    try:
        yield out, err
    finally:
        cli_app.console_err, training.console = saved


def _hang(*_: Any) -> None:
    raise Hang(f"validation took over {SECONDS} s")


def validate_in_process(path: Path, overrides: list[str] | None = None) -> tuple[int, list[str]]:
    """``ganzoo validate PATH --set ...`` run by the command itself in this process: exit
    code and lines.

    Warnings are the lines the command line would print for them (``warning: MESSAGE``).
    """
    previous = signal.signal(signal.SIGALRM, _hang)
    signal.alarm(SECONDS)
    try:
        with _captured() as (_, err), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                training.validate(str(path), overrides, False)
                code = 0
            except typer.Exit as exc:
                code = exc.exit_code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    lines = [f"warning: {w.message}" for w in caught] + err.getvalue().splitlines()
    return code, lines


def check_reported(path: Path, code: int, lines: list[str], set_lines: bool = False) -> None:
    """Exit 0 or 2, no traceback or internal error, the file named at the start of each line
    (or, with ``set_lines``, the ``--set`` that could not be read)."""
    text = "\n".join(lines)
    assert code in (0, 2), text
    assert "Traceback" not in text and "internal error" not in text, text
    for line in lines:
        line = line.removeprefix("warning: ")
        assert line.startswith(str(path)) or (set_lines and line.startswith("--set ")), line
    assert (code == 2) == any(not line.startswith("warning: ") for line in lines), text


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(
    max_examples=1000,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(mutated_recipes())
def test_mutated_recipes_are_reported_never_crash(fuzz_dir: Path, case: tuple[str, dict]) -> None:
    name, data = case
    path = fuzz_dir / f"{name}.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    code, lines = validate_in_process(path)
    check_reported(path, code, lines)


@st.composite
def set_options(draw: st.DrawFn) -> tuple[str, list[str]]:
    """An installed recipe's name and one to three ``--set KEY.PATH=TEXT`` for it: a path of
    the recipe or a new one, and any text, TOML or not."""
    name = draw(st.sampled_from(sorted(RECIPES)))
    data = tomllib.loads(RECIPES[name].read_text())
    paths = [".".join(p) for p in _paths(data) if all(isinstance(k, str) for k in p)]
    key = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,8}", fullmatch=True)
    new_paths = st.lists(key, min_size=1, max_size=3).map(".".join)
    text = st.one_of(
        st.text(max_size=20),
        st.sampled_from([*TEXTS, "images/cats", "/a b/c", "[1,", "{x = 1}", "'q'", "1e999"]),
        scalar_strategy.map(lambda v: tomli_w.dumps({"v": v})[4:].strip()),
    )
    options = draw(
        st.lists(st.tuples(st.sampled_from(paths) | new_paths, text), min_size=1, max_size=3)
    )
    return name, [f"{path}={value}" for path, value in options]


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(set_options())
def test_set_overrides_are_reported_never_crash(case: tuple[str, list[str]]) -> None:
    name, overrides = case
    code, lines = validate_in_process(RECIPES[name], overrides)
    check_reported(RECIPES[name], code, lines, set_lines=True)


def test_every_recipe_validates_in_process(fuzz_dir: Path) -> None:
    for name, path in RECIPES.items():
        code, lines = validate_in_process(path)
        assert (code, lines) == (0, []), (name, lines)


def test_a_mutated_recipe_through_the_real_command(fuzz_dir: Path) -> None:
    data = tomllib.loads(RECIPES["dcgan_mnist"].read_text())
    del data["loss"]
    data["generator"]["latent_dim"] = 2**63
    data["train"]["generator_optimizer"] = {"lr": math.nan}
    data["train"]["stëps"] = {}
    data["data"]["split"] = ["test"]
    path = fuzz_dir / "mutated dcgan.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    done = run_cli("validate", str(path))
    lines = done.stderr.strip().splitlines()
    check_reported(path, done.returncode, lines)
    assert done.returncode == 2
    assert (done.returncode, lines) == validate_in_process(path)
    assert f"{path}: loss: Field required" in lines


def _write(fuzz_dir: Path, name: str, change: dict[str, dict[str, Any]]) -> Path:
    """The quickstart recipe with the tables of ``change`` updated, written as ``name``."""
    data = tomllib.loads(RECIPES["quickstart"].read_text())
    for section, values in change.items():
        data.setdefault(section, {}).update(values)
    path = fuzz_dir / name
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "line"),
    [
        # an integer TOML does not have: torch failed on it with a C++ trace
        ({"generator": {"latent_dim": 2**64}}, "generator.latent_dim: 18446744073709551616 is "
         "outside TOML's 64-bit integers"),
        # sizes no tensor can have, even on the meta device: internal errors
        ({"generator": {"hidden": [2**63 - 1]}}, "generator: mlp: cannot be built: Storage size "
         "calculation overflowed with sizes=[9223372036854775807, 34]"),
        ({"train": {"batch_size": 2**62}}, "the networks cannot be built and run at these sizes "
         "(train.batch_size = 4611686018427387904): Storage size calculation overflowed with "
         "sizes=[4611686018427387904]"),
        # one sample through batch norm: an internal ValueError
        ({"train": {"batch_size": 1}}, "the networks cannot be built and run at these sizes "
         "(train.batch_size = 1): Expected more than 1 value per channel when training, got "
         "input size torch.Size([1, 128])"),
        # a key with a control character split the line in two
        ({"train": {"a\x1eb": 1}}, "train.\"a\\u001eb\": unknown key 'a\\x1eb'"),
    ],
)  # fmt: skip
def test_what_the_battery_found(fuzz_dir: Path, change: dict, line: str) -> None:
    path = _write(fuzz_dir, "found.toml", change)
    assert validate_in_process(path) == (2, [f"{path}: {line}"])


def test_a_set_with_a_line_separator_stays_on_one_line() -> None:
    code, lines = validate_in_process(RECIPES["ring"], ["train.log_every=[\x85"])
    assert code == 2
    assert lines == [
        "--set train.log_every=[\\x85: not a TOML value (Invalid value (at end of document))"
    ]
