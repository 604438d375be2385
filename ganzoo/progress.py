"""Progress of long work: a rich bar on a terminal, plain periodic lines otherwise.

:class:`Progress` shows a training run. Any other long step (training a classifier,
extracting features, downloading weights) is a :class:`Task` that :func:`track` opens on a
``report``: None (the library is quiet), a :class:`Reporter` (a bar on a terminal, lines
otherwise; :class:`Progress` is one), or any callable that prints one line (lines only).
Plain output is a first line saying what is done and why, a line every few seconds with
the counts, and a last line with the time taken.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Literal, TextIO, get_args

from ganzoo.errors import UsageError

ProgressMode = Literal["auto", "bar", "plain", "none"]
ReportTo = Callable[[str], None] | None
# Seconds between two plain progress lines of a task.
LINE_INTERVAL = 5.0


def progress_mode(mode: str) -> ProgressMode:
    """``mode`` as a :data:`ProgressMode` (what ``--progress`` takes).

    Raises:
        UsageError: ``mode`` is not one of them.

    """
    if mode not in get_args(ProgressMode):
        raise UsageError(f"--progress {mode}: choose auto, bar, plain or none")
    return mode  # type: ignore[return-value]  (checked above)


def fmt_duration(seconds: float) -> str:
    """``H:MM:SS`` of ``seconds``, whole seconds (truncated), never below zero."""
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fmt_took(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else fmt_duration(seconds)


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


class Task:
    """One long step: counts ``total`` ``unit`` as they are done and says how far it got.

    Use it as a context manager: leaving the block normally ends it with :meth:`finish`;
    leaving it by an exception stops its bar without a last line (the error is the news).
    """

    def __init__(
        self,
        title: str,
        total: int,
        unit: str,
        say: Callable[[str], None] | None = None,
        bar: Any = None,
        interval: float = LINE_INTERVAL,
    ) -> None:
        self.title, self.total, self.unit = title, total, unit
        self.done = 0
        self.status = ""
        self.interval = interval
        self._say, self._bar = say, bar
        self._bar_task = bar.add_task(title, total=total, status="") if bar is not None else None
        self.started = self._last_line = time.perf_counter()
        self.finished = False

    @property
    def shown(self) -> bool:
        """Whether anyone sees this task (work done only to be shown may be skipped if not)."""
        return self._say is not None

    def advance(self, count: int = 1, status: str | None = None) -> None:
        """Count ``count`` more units done; ``status`` replaces the text shown beside the count."""
        self.done += count
        if status is not None:
            self.status = status
        if self._bar is not None:
            self._bar.update(self._bar_task, completed=self.done, status=self.status)
        elif self._say is not None:
            now = time.perf_counter()
            if now - self._last_line >= self.interval and self.done < self.total:
                self._last_line = now
                self._say(self._line(now - self.started))

    def _line(self, elapsed: float) -> str:
        percent = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        parts = [f"{self.done:,}/{self.total:,} {self.unit}{percent}"]
        if self.status:
            parts.append(self.status)
        parts.append(f"{fmt_duration(elapsed)} elapsed")
        if 0 < self.done < self.total:
            parts.append(f"eta {fmt_duration(elapsed / self.done * (self.total - self.done))}")
        return f"{self.title}: " + ", ".join(parts)

    def finish(self, outcome: str = "") -> None:
        """End the task with a line: what was done, the time it took and ``outcome``."""
        if self.finished:
            return
        self._close()
        if self._say is not None:
            took = _fmt_took(time.perf_counter() - self.started)
            line = f"{self.title}: done, {self.done:,} {self.unit} in {took}"
            self._say(f"{line}; {outcome}" if outcome else line)

    def _close(self) -> None:
        self.finished = True
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> Task:
        """The task itself."""
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Finish the task, or only stop its bar when an exception is leaving the block."""
        if kind is None:
            self.finish()
        else:
            self._close()


class Reporter:
    """Where long work is shown: a rich bar per task on a terminal, plain lines otherwise.

    ``mode`` is ``auto`` (a bar when ``stream`` is a terminal, else plain lines), ``bar``,
    ``plain`` or ``none`` (nothing at all). It is also a callable that prints one line.
    """

    def __init__(self, mode: ProgressMode = "auto", stream: TextIO | None = None) -> None:
        self._mode, self._stream = mode, stream
        # the rich bar on screen, if any: lines are printed above it, through its console
        self._live: Any = None

    @property
    def stream(self) -> TextIO:
        """Where it prints: the stream it was given, else standard error at the time."""
        return self._stream or sys.stderr

    @property
    def mode(self) -> ProgressMode:
        """``bar``, ``plain`` or ``none``: ``auto`` is decided by the stream at the time."""
        if self._mode == "auto":
            return "bar" if self.stream.isatty() else "plain"
        return self._mode

    def message(self, text: str) -> None:
        """Print a line (unless the mode is ``none``)."""
        if self._live is not None and self._live.live.is_started:
            self._live.console.print(text, markup=False, highlight=False)
        elif self.mode != "none":
            print(text, file=self.stream, flush=True)

    def __call__(self, text: str) -> None:
        """Print a line, as :meth:`message` does."""
        self.message(text)

    def task(self, title: str, total: int, unit: str, intro: str | None = None) -> Task:
        """Start a task after printing ``intro`` (by default the title and the total)."""
        if self.mode == "none":
            return Task(title, total, unit)
        self.message(intro or _intro(title, total, unit))
        if self.mode != "bar":
            return Task(title, total, unit, self.message)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(unit),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            transient=True,
        )
        bar.start()
        self._live = bar
        return Task(title, total, unit, self.message, bar)


def _intro(title: str, total: int, unit: str) -> str:
    return f"{title} ({total:,} {unit})"


def track(report: ReportTo, title: str, total: int, unit: str, intro: str | None = None) -> Task:
    """Open a :class:`Task` of ``total`` ``unit`` on ``report`` (see the module's docstring).

    ``intro`` is the first line (what is done and why); by default the title and the total.
    With ``report=None`` the task shows nothing.
    """
    if isinstance(report, Reporter):
        return report.task(title, total, unit, intro)
    if report is None:
        return Task(title, total, unit)
    report(intro or _intro(title, total, unit))
    return Task(title, total, unit, report)


class Progress(Reporter):
    """Reports steps, images/s, the live losses and the ETA of a run.

    As a :class:`Reporter` it also shows the long steps after training (the evaluation).
    """

    def __init__(
        self, total: int, start: int, mode: ProgressMode = "auto", stream: TextIO | None = None
    ) -> None:
        super().__init__(mode, stream)
        # a run is shown one way from start to end, on the stream it started with
        self._stream, self._mode = self.stream, self.mode
        self.total, self.start = total, start
        self.started = time.perf_counter()
        self._bar: Any = None
        self._task: Any = None
        if self.mode == "bar":
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
            self._live = self._bar
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
            line = f"{describe(record)}  [{record['step']}/{self.total}, eta {fmt_duration(eta)}]"
            print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Stop the bar, leaving its last state on screen."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
