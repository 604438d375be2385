"""Progress of a training run: a rich bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, Literal, TextIO

ProgressMode = Literal["auto", "bar", "plain", "none"]


def _fmt_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def describe(record: dict[str, Any]) -> str:
    """One plain line for a metrics record."""
    parts = [f"step {record['step']}"]
    for key, label in (("d_loss", "D loss"), ("g_loss", "G loss"), ("d_real", "D(x)"),
                       ("d_fake", "D(G(z))")):  # fmt: skip
        if key in record:
            parts.append(f"{label} {record[key]:.4f}")
    extra = [k for k in record if k not in {"step", "time", "images_per_s", "d_loss", "g_loss",
                                             "d_real", "d_fake"}]  # fmt: skip
    parts += [f"{k} {record[k]:.4g}" for k in extra]
    parts.append(f"{record['images_per_s']:,.0f} img/s")
    return "  ".join(parts)


class Progress:
    """Reports steps, images/s, the live losses and the ETA of a run."""

    def __init__(
        self, total: int, start: int, mode: ProgressMode = "auto", stream: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        self.mode = mode
        self.total, self.start = total, start
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        if mode == "bar":
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TextColumn("eta"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=total, completed=start, status="")

    def step(self, step: int) -> None:
        """Note that ``step`` steps are done (cheap; called every step)."""
        if self._bar is not None:
            self._bar.update(self._task, completed=step)

    def record(self, record: dict[str, Any]) -> None:
        """Show a metrics record (called every ``log_every`` steps)."""
        if self.mode == "bar":
            status = f"D {record.get('d_loss', float('nan')):.3f}  G {record['g_loss']:.3f}  "
            status += f"{record['images_per_s']:,.0f} img/s"
            self._bar.update(self._task, completed=record["step"], status=status)
        elif self.mode == "plain":
            done = record["step"] - self.start
            elapsed = time.perf_counter() - self.started
            eta = elapsed / done * (self.total - record["step"]) if done > 0 else 0.0
            line = f"{describe(record)}  [{record['step']}/{self.total}, eta {_fmt_duration(eta)}]"
            print(line, file=self.stream, flush=True)

    def message(self, text: str) -> None:
        """Print a line that is not a metrics record."""
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.mode != "none":
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the bar, leaving its last state on screen."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
