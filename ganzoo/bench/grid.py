"""A bench's grid: the (recipe, seed) pairs, their run folders, their shared protocol.

``<bench>/<recipe name>/seed-<k>/`` is a pair's run folder; ``<bench>/.bench/`` holds each
pair's log and status, and ``<bench>/bench.json`` the grid, the overrides and the protocol.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ganzoo.errors import UsageError
from ganzoo.evaluate import field_differences
from ganzoo.runs import RunFolder
from ganzoo.threads import cores

STATE = ".bench"
BENCH_FILE = "bench.json"
Executor = Literal["local", "submitit"]


@dataclass(frozen=True)
class Pair:
    """One (recipe, seed) cell of a bench and its run folder."""

    recipe: str
    source: str
    seed: int
    root: Path
    sets: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        """The pair's run folder."""
        return self.root / self.recipe / f"seed-{self.seed}"

    @property
    def label(self) -> str:
        """``recipe seed k``, for messages."""
        return f"{self.recipe} seed {self.seed}"

    def state_file(self, suffix: str) -> Path:
        """The pair's file in ``.bench/`` (``.log``: its output, ``.json``: its status)."""
        return self.root / STATE / f"{self.recipe}-seed-{self.seed}{suffix}"

    def status(self) -> dict[str, Any]:
        """What the bench recorded of this pair's attempts (empty when none)."""
        try:
            data = json.loads(self.state_file(".json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def complete(self) -> bool:
        """Whether the pair was trained and evaluated."""
        return RunFolder.is_run_folder(self.folder) and RunFolder(self.folder).eval_file.is_file()

    @property
    def started(self) -> bool:
        """Whether the pair's run folder exists (so it is resumed, not started)."""
        return RunFolder.is_run_folder(self.folder)


@dataclass(frozen=True)
class Settings:
    """How a bench runs its pairs: overrides, threads, device, data and the executor."""

    overrides: tuple[str, ...] = ()
    jobs: int = 1
    threads: int | None = None
    device: str | None = None
    data_dir: str | None = None
    executor: Executor = "local"
    cluster: str | None = None
    partition: str | None = None
    gpus_per_job: int = 0
    timeout_min: int = 240

    def threads_per_job(self) -> int:
        """Each job's CPU threads: ``threads`` if set, else the cores shared out over ``jobs``."""
        if self.threads is not None:
            return self.threads
        return max(1, cores() // self.jobs)


def parse_seeds(text: str) -> list[int]:
    """Seeds from ``0-4``, ``0,3,7`` or ``0-2,9`` (ascending, each once).

    Raises:
        UsageError: the text is not such a list.

    """
    seeds: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if match is None:
            raise UsageError(f"--seeds {text!r}: give seeds as 0-4, 0,3,7 or 0-2,9")
        low = int(match[1])
        high = int(match[2]) if match[2] is not None else low
        if high < low:
            raise UsageError(f"--seeds {text!r}: the range {part.strip()} runs backwards")
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def eval_overrides(metrics: str | None, extractor: str | None) -> list[str]:
    """The ``--set`` overrides that ``--metrics`` and ``--extractor`` stand for."""
    sets = []
    if metrics is not None:
        names = [m.strip() for m in metrics.split(",") if m.strip()]
        if not names:
            raise UsageError("--metrics: give metric names, comma-separated (ganzoo list metrics)")
        sets.append(f"eval.metrics={json.dumps(names)}")
    if extractor is not None:
        sets.append(f"eval.extractor={json.dumps(extractor)}")
    return sets


def protocol(recipe: Any) -> dict[str, Any]:
    """What a recipe's end-of-run evaluation depends on: its ``[eval]`` and reference set."""
    data = recipe.components["data"]
    section = recipe.shell.eval.model_dump(mode="json")
    del section["batch_size"]  # how many at a time, not what is scored
    return {"reference": {"dataset": data.name, **data.params.model_dump(mode="json")}, **section}


def differences(protocols: dict[str, dict[str, Any]]) -> list[str]:
    """``field: name value, ...`` for each protocol field whose value is not the same in all."""
    lines = []
    for key, values in field_differences(list(protocols.values())).items():
        shown = zip(protocols, values, strict=True)
        lines.append(f"{key}: " + ", ".join(f"{name} {json.dumps(v)}" for name, v in shown))
    return lines


def plan(
    recipes: Sequence[str],
    seeds: Sequence[int],
    root: Path,
    overrides: Sequence[str] = (),
) -> tuple[list[Pair], dict[str, Any]]:
    """The bench's pairs and the protocol they share, after checking the recipes.

    A recipe without ``[eval]`` metrics is scored with the default ones of its data (FID, IS
    and KID for images, modes for mixtures), set on its runs as ``eval.metrics``.

    Raises:
        RecipeError: a recipe or override is wrong (as ``ganzoo run`` would say).
        UsageError: two recipes have one name, or their evaluations would differ.

    """
    from ganzoo.build import check_networks, data_spec
    from ganzoo.evaluate import default_metrics
    from ganzoo.recipe import load_recipe

    if not recipes:
        raise UsageError("give the recipes to bench (files or installed names), or --report DIR")
    loaded: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {}
    for source in recipes:
        recipe = load_recipe(source, list(overrides))
        check_networks(recipe)
        if recipe.name in loaded:
            raise UsageError(
                f"{source} and {loaded[recipe.name][0]} are both named {recipe.name!r}: a bench "
                "keeps each recipe's runs under its name; give one of them another name"
            )
        found, sets = protocol(recipe), ()
        if not found["metrics"]:
            found["metrics"] = default_metrics(data_spec(recipe))
            sets = (f"eval.metrics={json.dumps(found['metrics'])}",)
        loaded[recipe.name] = (source, found, sets)
    different = differences({name: p for name, (_, p, _) in loaded.items()})
    if different:
        raise UsageError(
            "the recipes would be evaluated differently, so their scores could not be compared: "
            + "; ".join(different)
            + ". Set what differs once for all (--metrics, --extractor, --set eval.KEY=VALUE), "
            "or bench them separately"
        )
    pairs = [
        Pair(name, source, seed, root, sets)
        for name, (source, _, sets) in loaded.items()
        for seed in seeds
    ]
    return pairs, next(iter(loaded.values()))[1]


def command(pair: Pair, settings: Settings) -> list[str]:
    """The ``ganzoo run`` command that trains (or resumes) ``pair``."""
    base = [sys.executable, "-m", "ganzoo", "run"]
    tail = ["--threads", str(settings.threads_per_job()), "--progress", "plain"]
    if settings.device is not None:
        tail += ["--device", settings.device]
    if settings.data_dir is not None:
        tail += ["--data-dir", settings.data_dir]
    if pair.started:
        return [*base, "--resume", str(pair.folder), *tail]
    sets = [f"seed={pair.seed}", *settings.overrides, *pair.sets]
    flags = [arg for value in sets for arg in ("--set", value)]
    return [*base, pair.source, "--out", str(pair.folder), *flags, *tail]
