"""The leaderboard of a bench folder: its runs' scores, each recipe's mean ± std, the files."""

from __future__ import annotations

import csv
import io
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganzoo.bench.grid import BENCH_FILE, Pair, differences
from ganzoo.errors import GanzooError, UsageError
from ganzoo.plots import save_leaderboard_plot
from ganzoo.progress import fmt_duration
from ganzoo.registry import registry
from ganzoo.runs import RESOLVED, RunFolder
from ganzoo.writes import write_text

# Protocol fields of eval.json that differ between the runs of one bench by design.
PER_RUN = frozenset({"run", "step", "generator", "train_subset"})


@dataclass
class Row:
    """One run of the leaderboard: its scores, speed and whether it finished."""

    recipe: str
    seed: int
    folder: Path
    status: str
    scores: dict[str, float] = field(default_factory=dict)
    images_per_s: float | None = None
    wall_s: float | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    why: str = ""


@dataclass
class Summary:
    """Mean, sample standard deviation and count of one score over a recipe's runs."""

    mean: float
    std: float | None
    n: int

    def text(self, digits: int) -> str:
        """``mean ± std`` (just the mean for one run)."""
        if self.std is None:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


def summarise(values: Sequence[float]) -> Summary | None:
    """Mean and sample standard deviation (n - 1) of the finite ``values``; None if none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return None
    std = statistics.stdev(finite) if len(finite) > 1 else None
    return Summary(statistics.fmean(finite), std, len(finite))


def read_rows(root: Path) -> list[Row]:
    """The runs of the bench folder ``root``: those ``bench.json`` lists, or those found there."""
    grid = root / BENCH_FILE
    if grid.is_file():
        entries = [(p["recipe"], int(p["seed"])) for p in json.loads(grid.read_text())["pairs"]]
    else:
        entries = sorted(
            (path.parent.parent.name, int(path.parent.name.removeprefix("seed-")))
            for path in root.glob(f"*/seed-*/{RESOLVED}")
            if re.fullmatch(r"seed-\d+", path.parent.name)
        )
    if not entries:
        raise UsageError(
            f"{root}: no bench here (no {BENCH_FILE} and no RECIPE/seed-K run folders)"
        )
    return [_row(Pair(recipe, "", seed, root)) for recipe, seed in entries]


def _row(pair: Pair) -> Row:
    status = pair.status()
    row = Row(pair.recipe, pair.seed, pair.folder, "missing", wall_s=status.get("wall_s"))
    if not pair.started:
        row.status = "failed" if status.get("status") == "failed" else "missing"
        row.why = status.get("why", "")
        return row
    folder = RunFolder(pair.folder)
    speeds = [r["images_per_s"] for r in folder.records() if "images_per_s" in r]
    row.images_per_s = statistics.fmean(speeds) if speeds else None
    evaluation = folder.read_eval()
    if evaluation is None:
        row.status = "failed" if status.get("status") == "failed" else "unfinished"
        row.why = status.get("why", "")
        return row
    row.status = "complete"
    row.scores = {k: math.nan if v is None else float(v) for k, v in evaluation["scores"].items()}
    row.protocol = {k: v for k, v in evaluation["protocol"].items() if k not in PER_RUN}
    row.metrics = list(evaluation.get("metrics", {}))
    return row


def score_columns(rows: Sequence[Row]) -> list[str]:
    """The scores to tabulate: all that the complete runs have, per-class and ``_std`` aside."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row.scores:
            if "[" not in key and not key.endswith("_std"):
                seen[key] = None
    return list(seen)


def directions(rows: Sequence[Row]) -> dict[str, str]:
    """``lower`` or ``higher`` for each score a metric of the runs ranks (``Metric.better``).

    The scores of a metric that is not installed here are shown but not ranked.
    """
    found: dict[str, str] = {}
    for name in sorted({m for row in rows for m in row.metrics}):
        try:
            found |= dict(registry("metrics").load(name).better)
        except GanzooError:
            continue
    return found


@dataclass
class Leaderboard:
    """The runs of a bench, each recipe's summary, and the protocol they share."""

    root: Path
    rows: list[Row]
    protocol: dict[str, Any]
    columns: list[str]
    better: dict[str, str]

    def recipes(self) -> list[str]:
        """The recipes, in the order of their first run."""
        return list(dict.fromkeys(row.recipe for row in self.rows))

    def complete(self, recipe: str) -> list[Row]:
        """``recipe``'s complete runs, by seed: those its scores and timings are taken from."""
        return [r for r in self.rows if r.recipe == recipe and r.status == "complete"]

    def values(self, recipe: str, column: str) -> list[float]:
        """The finite values of ``column`` in ``recipe``'s complete runs, by seed."""
        runs = self.complete(recipe)
        return [v for r in runs if math.isfinite(v := r.scores.get(column, math.nan))]

    def summary(self, recipe: str, column: str) -> Summary | None:
        """The summary of ``column`` over ``recipe``'s complete runs."""
        return summarise(self.values(recipe, column))

    def timing(self, recipe: str) -> tuple[Summary | None, Summary | None]:
        """Images/s and wall time over ``recipe``'s complete runs, as the scores are counted."""
        runs = self.complete(recipe)
        speed = summarise([r.images_per_s for r in runs if r.images_per_s is not None])
        return speed, summarise([r.wall_s for r in runs if r.wall_s is not None])

    def best(self, column: str) -> set[str]:
        """The recipes with the best mean of ``column`` (none when it is not ranked)."""
        direction = self.better.get(column)
        means = {
            name: s.mean for name in self.recipes() if (s := self.summary(name, column)) is not None
        }
        if direction is None or not means:
            return set()
        pick = min if direction == "lower" else max
        top = pick(means.values())
        return {name for name, mean in means.items() if mean == top}

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``leaderboard.json``."""

        def summary(s: Summary | None) -> dict[str, Any] | None:
            return None if s is None else {"mean": s.mean, "std": s.std, "n": s.n}

        recipes = []
        for name in self.recipes():
            speed, wall = self.timing(name)
            recipes.append({
                "recipe": name,
                "runs": [_row_json(r) for r in self.rows if r.recipe == name],
                "summary": {c: summary(self.summary(name, c)) for c in self.columns},
                "images_per_s": summary(speed),
                "wall_s": summary(wall),
                "best": sorted(c for c in self.columns if name in self.best(c)),
            })  # fmt: skip
        return {
            "protocol": self.protocol,
            "columns": self.columns,
            "better": self.better,
            "std": "sample standard deviation (n - 1) over the complete runs; null for one run",
            "recipes": recipes,
        }

    def csv_text(self) -> str:
        """``leaderboard.csv``: one row per run."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["recipe", "seed", "status", *self.columns, "images_per_s", "wall_s",
                         "folder"])  # fmt: skip
        for r in self.rows:
            writer.writerow([
                r.recipe, r.seed, r.status,
                *(_plain(r.scores.get(c)) for c in self.columns),
                _plain(r.images_per_s), _plain(r.wall_s), str(r.folder),
            ])  # fmt: skip
        return out.getvalue()

    def markdown(self) -> str:
        """``leaderboard.md``: mean ± std per recipe and score, the best in bold."""
        arrows = {"lower": " ↓", "higher": " ↑"}
        marked = [c + arrows.get(self.better.get(c, ""), "") for c in self.columns]
        head = ["recipe", "runs", *marked, "images/s", "wall time"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name in self.recipes():
            rows = [r for r in self.rows if r.recipe == name]
            done = sum(r.status == "complete" for r in rows)
            runs = f"{done}/{len(rows)}"
            if done < len(rows):
                runs += " (" + ", ".join(f"seed {r.seed} {r.status}" for r in rows
                                         if r.status != "complete") + ")"  # fmt: skip
            cells = [name, runs]
            for column in self.columns:
                s = self.summary(name, column)
                text = "—" if s is None else s.text(_digits(column, s.mean))
                cells.append(f"**{text}**" if name in self.best(column) else text)
            speed, wall = self.timing(name)
            cells.append("—" if speed is None else f"{speed.mean:,.0f}")
            cells.append("—" if wall is None else fmt_duration(round(wall.mean)))
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def describe(self) -> str:
        """What the table's numbers are, in a few lines (the protocol in words)."""
        p = self.protocol
        reference = p.get("reference", "?")
        parts = [
            f"{p.get('num_generated', '?')} samples a run against {reference} "
            f"({p.get('num_reference', '?')} reference samples)",
            f"evaluation seed {p.get('seed', '?')}",
        ]
        if "extractor" in p:
            parts.insert(1, f"features: {p['extractor']}")
        return (
            "Mean ± sample standard deviation over each recipe's complete runs (seeds); "
            "↓ lower is better, ↑ higher is better; the best mean of each ranked score in bold. "
            + "; ".join(parts)
            + ". images/s: training throughput (mean over the logged intervals); wall time: "
            "the bench's time for the run, training and evaluation; both over the complete runs."
            "\n"
        )


def _plain(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _digits(column: str, mean: float) -> int:
    if column == "modes":
        return 1
    return 2 if abs(mean) >= 10 else 3 if abs(mean) >= 1 else 4


def _row_json(row: Row) -> dict[str, Any]:
    scores = {k: v if math.isfinite(v) else None for k, v in row.scores.items()}
    data: dict[str, Any] = {
        "seed": row.seed, "status": row.status, "folder": str(row.folder), "scores": scores,
        "images_per_s": row.images_per_s, "wall_s": row.wall_s,
    }  # fmt: skip
    if row.why:
        data["why"] = row.why
    return data


def leaderboard(root: Path) -> Leaderboard:
    """Read the bench folder ``root`` into a :class:`Leaderboard`.

    Raises:
        UsageError: there is no bench, or its complete runs were scored under different
            protocols.

    """
    rows = read_rows(root)
    complete = [r for r in rows if r.status == "complete"]
    different = differences({f"{r.recipe} seed {r.seed}": r.protocol for r in complete})
    if different:
        raise UsageError(
            f"{root}: the runs were scored under different protocols, so they make no one "
            "table: " + "; ".join(different)
        )
    shared = complete[0].protocol if complete else {}
    return Leaderboard(root, rows, shared, score_columns(complete), directions(complete))


def report(root: Path) -> tuple[Leaderboard, list[Path]]:
    """Write the leaderboard files of the bench folder ``root``; the table and their paths."""
    board = leaderboard(root)
    paths = [
        write_text(root / "leaderboard.csv", board.csv_text()),
        write_text(root / "leaderboard.json", json.dumps(board.to_json(), indent=2) + "\n"),
        write_text(root / "leaderboard.md", f"{board.describe()}\n{board.markdown()}"),
    ]
    if board.columns:
        panels = {
            column: {name: board.values(name, column) for name in board.recipes()}
            for column in board.columns
        }
        paths.append(root / "leaderboard.png")
        save_leaderboard_plot(panels, board.better, paths[-1])
    return board, paths
