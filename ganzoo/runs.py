"""Run folders: the one place that knows their layout.

A run folder ``runs/<name>/<timestamp>/`` holds ``recipe.toml`` (as given), ``resolved.toml``
(every default filled in; running it repeats the run), ``env.json``, ``metrics.jsonl``,
``samples/``, ``checkpoints/``, ``loss_curve.png``, ``tensorboard/`` and, once evaluated,
``eval.json``. :class:`RunFolder` creates one, reads it back and tells one from anything else.

While a run writes its folder it holds the folder's lock (``.lock``, see
:class:`~ganzoo.writes.WriterLock`): a second run into the same folder is refused with a
message naming the first. Every file is written through :mod:`ganzoo.writes`; a write that
fails during a run says which checkpoint was kept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ganzoo.api import DataSpec, Generator
from ganzoo.build import build_networks, data_spec
from ganzoo.checkpoint import (
    LAST,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    remove_partial_writes,
)
from ganzoo.errors import CheckpointError, FolderInUseError, UsageError, WriteError
from ganzoo.recipe import Recipe, load_recipe
from ganzoo.writes import AppendedLines, WriterLock, make_folder, write_text

RESOLVED = "resolved.toml"
LOCK = ".lock"


@dataclass(frozen=True)
class TrainedGenerator:
    """A run's generator rebuilt from a checkpoint, in eval mode, with what it came from."""

    generator: Generator
    recipe: Recipe
    spec: DataSpec
    step: int
    ema: bool


class RunFolder:
    """The files of one run folder, and what can be read from and written to them."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.recipe_file = self.root / "recipe.toml"
        self.resolved = self.root / RESOLVED
        self.env_file = self.root / "env.json"
        self.metrics = self.root / "metrics.jsonl"
        self.samples = self.root / "samples"
        self.checkpoints = self.root / "checkpoints"
        self.loss_curve = self.root / "loss_curve.png"
        self.tensorboard = self.root / "tensorboard"
        self.eval_file = self.root / "eval.json"
        self.lock_file = self.root / LOCK

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    # -- finding one --------------------------------------------------------------------------
    @staticmethod
    def is_run_folder(path: str | Path) -> bool:
        """Whether ``path`` is a run folder (it holds ``resolved.toml``)."""
        return (Path(path) / RESOLVED).is_file()

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        """The existing run folder at ``path``.

        Raises:
            UsageError: ``path`` is not a run folder.

        """
        folder = cls(path)
        if not cls.is_run_folder(folder.root):
            nested = sorted(p.parent for p in folder.root.glob(f"*/{RESOLVED}"))
            hint = f"; run folders inside it: {', '.join(map(str, nested[:3]))}" if nested else ""
            raise UsageError(f"{folder.root}: not a run folder (no {RESOLVED}){hint}")
        return folder

    @classmethod
    def new(cls, name: str, out: Path | None = None) -> RunFolder:
        """A folder for a new run: ``out`` when given (empty or absent), else a fresh one.

        The default is ``runs/<name>/<YYYYmmdd-HHMMSS>``, numbered when that exists already.

        Raises:
            UsageError: ``out`` holds files.

        """
        if out is not None:
            folder = cls(out)
            folder._check_empty()
            return folder
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        base = Path("runs") / name / stamp
        candidate, n = base, 1
        while candidate.exists():
            n += 1
            candidate = base.with_name(f"{stamp}-{n}")
        return cls(candidate)

    def _check_empty(self) -> None:
        """Refuse a folder for a new run that holds files (a lock left behind does not count)."""
        if self.root.is_dir() and any(p.name != LOCK for p in self.root.iterdir()):
            raise UsageError(
                f"{self.root} is not empty; continue the run in it with --resume {self.root}, "
                "or choose another --out"
            )

    # -- writing ------------------------------------------------------------------------------
    def lock(self, new: bool = False) -> WriterLock:
        """Take the folder for this process's writes, until the returned lock is released.

        The kernel releases the lock of a process that dies, so a killed run's folder is
        free again at once. For a ``new`` run the folder must hold nothing else.

        Raises:
            FolderInUseError: another process holds the folder; the message names it.
            UsageError: for a new run, the folder holds another run's files.
            WriteError: the folder or its lock file cannot be written.

        """
        make_folder(self.root, "the run folder")
        lock = WriterLock.try_acquire(self.lock_file)
        if lock is None:
            raise FolderInUseError(self._in_use())
        if new:
            try:
                self._check_empty()
            except UsageError:
                lock.release()
                raise
        return lock

    def _in_use(self) -> str:
        holder = WriterLock.holder(self.lock_file)
        if {"pid", "host"} <= holder.keys():
            who = f"pid {holder['pid']} on {holder['host']}"
            if holder.get("since"):
                who += f", since {holder['since']}"
            if holder.get("command"):
                who += f": {holder['command']}"
            stop = f"stop it (kill -INT {holder['pid']} saves a checkpoint)"
        else:
            who, stop = "a process that has not said which yet", "stop it"
        return (
            f"{self.root} is in use by another ganzoo run ({who}); wait for it to end or "
            f"{stop}, then continue with: ganzoo run --resume {self.root}"
        )

    def kept(self) -> str:
        """What a run that failed keeps, for messages: its newest checkpoint and that one's step."""
        path = latest_checkpoint(self.checkpoints) if self.checkpoints.is_dir() else None
        if path is None:
            return "kept: no checkpoint (none was written yet)"
        numbered = re.fullmatch(r"step_(\d+)\.pt", path.name)
        step = f" (step {int(numbered[1])})" if numbered else ""
        return f"kept: {path}{step}; continue with: ganzoo run --resume {self.root}"

    @contextmanager
    def keeping(self) -> Iterator[None]:
        """Add what was kept (:meth:`kept`) to a :class:`WriteError` raised in the block."""
        try:
            yield
        except WriteError as exc:
            raise WriteError(f"{exc}; {self.kept()}") from exc

    def create(self, recipe: Recipe, recipe_text: str | None, env: dict[str, Any]) -> None:
        """Lay out a new run: the recipe as given and resolved, the environment, empty logs."""
        make_folder(self.root, "the run folder")
        make_folder(self.checkpoints)
        make_folder(self.samples)
        write_text(self.recipe_file, recipe_text or recipe.to_toml())
        write_text(self.resolved, recipe.to_toml())
        write_text(self.env_file, json.dumps(env, indent=2) + "\n")
        write_text(self.metrics, "")

    def record_resume(self, recipe: Recipe, env: dict[str, Any], step: int) -> None:
        """Note a resume at ``step``: the new resolved recipe and environment, logs cut to it."""
        old = json.loads(self.env_file.read_text()) if self.env_file.is_file() else {}
        env["resumed_from_step"] = step
        env["history"] = [*old.pop("history", []), old] if old else []
        with self.keeping():
            write_text(self.resolved, recipe.to_toml())
            write_text(self.env_file, json.dumps(env, indent=2) + "\n")
            if self.metrics.is_file():
                kept = [
                    line
                    for line in self.metrics.read_text().splitlines()
                    if line.strip() and _line_step(line) <= step
                ]
                write_text(self.metrics, "".join(line + "\n" for line in kept))

    def open_metrics(self) -> AppendedLines:
        """``metrics.jsonl``, open for appending records (one JSON object a line)."""
        return AppendedLines(self.metrics)

    def sample_grid(self, step: int) -> Path:
        """Where the fixed-noise sample grid of ``step`` goes."""
        return self.samples / f"step_{step:08d}.png"

    def sample_file(self, kind: str, step: int, seed: int) -> Path:
        """Where ``ganzoo sample`` writes a ``kind`` of grid (samples, interpolation)."""
        return self.samples / f"{kind}_step{step}_seed{seed}.png"

    def write_eval(self, report: dict[str, Any]) -> Path:
        """Write an evaluation report as ``eval.json`` (atomically); return its path."""
        return write_text(self.eval_file, json.dumps(report, indent=2, allow_nan=False) + "\n")

    # -- reading ------------------------------------------------------------------------------
    def recipe(self, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
        """The run's resolved recipe (with ``overrides`` applied)."""
        return load_recipe(self.resolved, overrides)

    def records(self) -> list[dict[str, Any]]:
        """The metrics records logged so far."""
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]

    def read_eval(self) -> dict[str, Any] | None:
        """The last evaluation report, or None when the run was not evaluated."""
        if not self.eval_file.is_file():
            return None
        return json.loads(self.eval_file.read_text())

    def checkpoint(self, name: str | None = None) -> Path:
        """The checkpoint file ``name`` in ``checkpoints/``, or the newest one.

        Raises:
            CheckpointError: there is no such checkpoint.
            UsageError: the run has no checkpoint yet.

        """
        if name is not None:
            path = self.checkpoints / name
            if not path.is_file():
                names = [p.name for p in list_checkpoints(self.checkpoints)]
                there = f" (there: {', '.join(names)})" if names else ""
                raise CheckpointError(f"{path}: no such checkpoint{there}")
            return path
        path = latest_checkpoint(self.checkpoints) if self.checkpoints.is_dir() else None
        if path is None:
            raise UsageError(f"{self.root}: the run has no checkpoint yet")
        return path

    def resume_state(self, name: str | None, device: torch.device) -> dict[str, Any] | None:
        """The checkpoint a resumed run continues from, or None to start again from step 0.

        Temporary files of a write cut short are removed first; a run stopped before its
        first checkpoint has none.
        """
        if name is None:
            if not self.checkpoints.is_dir():
                return None
            remove_partial_writes(self.checkpoints)
            if latest_checkpoint(self.checkpoints) is None:
                return None
        return load_checkpoint(self.checkpoint(name), device)

    def last_good(self) -> str:
        """A sentence naming the last checkpoint written and its step, for error messages."""
        last = self.checkpoints / LAST
        try:
            step = load_checkpoint(last)["step"]
        except CheckpointError:
            return "No checkpoint was written before it."
        return f"The last good checkpoint is {last} (step {step})."

    def load_generator(
        self, checkpoint: str | None = None, device: torch.device | str = "cpu"
    ) -> TrainedGenerator:
        """Rebuild the run's generator (its moving average when it has one) from a checkpoint.

        Needs no data files: the spec comes from the recipe's dataset parameters.
        """
        recipe = self.recipe()
        state = load_checkpoint(self.checkpoint(checkpoint), device)
        spec = data_spec(recipe)
        generator = build_networks(recipe, spec, device).generator
        if state.get("class_names"):  # the dataset knew them (class sub-folders' names)
            spec = replace(spec, class_names=tuple(state["class_names"]))
        ema = state.get("ema") is not None
        generator.load_state_dict(state["ema"] if ema else state["generator"])
        return TrainedGenerator(generator.eval(), recipe, spec, int(state["step"]), ema)


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return sys.maxsize  # an unreadable (half-written) line is dropped
