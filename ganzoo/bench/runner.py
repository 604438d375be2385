"""Running a bench's pairs: each a ``ganzoo run`` process, on this machine or through submitit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ganzoo.bench.grid import BENCH_FILE, STATE, Pair, Settings, command, plan
from ganzoo.errors import UsageError
from ganzoo.progress import ReportTo, track
from ganzoo.stopping import StopRequest
from ganzoo.writes import WriterLock, make_folder, write_text

POLL_S = 0.5  # how often the bench looks for a stop request while its runs go on
STOPPED_CODES = (130, 143)  # the exit codes of a run stopped by SIGINT / SIGTERM


class _ParentDeath:
    """Makes a child process get SIGTERM (a checkpoint, then exit) when its parent dies."""

    def __init__(self) -> None:
        import ctypes

        self._prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork

    def __call__(self) -> None:  # pragma: no cover - runs in the child, before exec
        pr_set_pdeathsig = 1
        self._prctl(pr_set_pdeathsig, signal.SIGTERM)


def execute(
    argv: list[str],
    log: str,
    threads: int,
    started: Callable[[subprocess.Popen[bytes]], None] | None = None,
) -> int:
    """Run ``argv`` with its output appended to ``log``; its exit code.

    The process computes on ``threads`` threads; ``started`` is given it once it runs. On
    Linux it is stopped (SIGTERM, so it saves a checkpoint) if the process that started it
    dies.
    """
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "NO_COLOR": "1"}
    env.pop("GANZOO_DEBUG", None)
    setup = _ParentDeath() if sys.platform.startswith("linux") else None
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        with subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, preexec_fn=setup
        ) as process:
            if started is not None:
                started(process)
            return process.wait()


class _Local:
    """``--executor local``: up to ``jobs`` pairs at once, each a process on this machine."""

    def __init__(self, jobs: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="bench")
        self._processes: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._stopping = False

    def submit(self, argv: list[str], log: Path, threads: int) -> Future[int]:
        """Start ``argv`` when a worker is free."""
        return self._pool.submit(execute, argv, str(log), threads, self._started)

    def _started(self, process: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._processes.append(process)
            if self._stopping:
                process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Ask every run still going to save a checkpoint and exit (SIGTERM)."""
        with self._lock:
            self._stopping = True
            for process in self._processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)

    def close(self) -> None:
        """Wait for nothing more: the pairs still queued are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Submitit:
    """``--executor submitit``: each pair a job of submitit (SLURM, or its local backend)."""

    def __init__(self, root: Path, settings: Settings) -> None:
        try:
            import submitit
        except ImportError as exc:
            raise UsageError(
                "--executor submitit needs the submitit package: pip install 'ganzoo[bench]'"
            ) from exc
        self._executor = submitit.AutoExecutor(
            folder=str(root / STATE / "submitit"), cluster=settings.cluster
        )
        params: dict[str, Any] = {
            "timeout_min": settings.timeout_min,
            "cpus_per_task": settings.threads_per_job(),
            "name": "ganzoo-bench",
        }
        if settings.gpus_per_job:
            params["gpus_per_node"] = settings.gpus_per_job
        if settings.partition is not None:
            params["slurm_partition"] = settings.partition
        self._executor.update_parameters(**params)
        self._jobs: list[Any] = []

    def submit(self, argv: list[str], log: Path, threads: int) -> Future[int]:
        """Submit ``argv`` as a job; a future of its exit code, set when the job ends."""
        job = self._executor.submit(execute, argv, str(log), threads)
        self._jobs.append(job)
        future: Future[int] = Future()

        def follow() -> None:
            try:
                future.set_result(job.result())
            except Exception as exc:  # the job itself failed (killed, timed out)
                future.set_exception(exc)

        threading.Thread(target=follow, daemon=True).start()
        return future

    def stop(self) -> None:
        """Cancel the jobs still going (SLURM sends them SIGTERM: they save a checkpoint)."""
        for job in self._jobs:
            if not job.done():
                job.cancel(check=False)

    def close(self) -> None:
        """Nothing to release: submitted jobs run on."""


@dataclass
class BenchResult:
    """What a bench did: the pairs complete before, trained now, failed, and stopped midway.

    ``stopped_by`` names the signal (SIGINT or SIGTERM) that stopped the bench, if one did.
    """

    skipped: list[Pair] = field(default_factory=list)
    trained: list[Pair] = field(default_factory=list)
    failed: list[Pair] = field(default_factory=list)
    stopped: list[Pair] = field(default_factory=list)
    stopped_by: str | None = None


def run_bench(
    recipes: Sequence[str],
    seeds: Sequence[int],
    root: Path,
    settings: Settings,
    report_to: ReportTo = None,
) -> BenchResult:
    """Train and evaluate every (recipe, seed) pair of the bench that is not complete.

    The bench folder is locked meanwhile: a second bench into it is refused, and so is a
    bench whose protocol or overrides differ from those of the runs already there.
    """
    if settings.jobs < 1:
        raise UsageError(f"--jobs {settings.jobs}: need at least 1")
    pairs, shared = plan(recipes, seeds, root, settings.overrides)
    make_folder(root / STATE, "the bench folder")
    lock = WriterLock.try_acquire(root / STATE / "lock")
    if lock is None:
        holder = WriterLock.holder(root / STATE / "lock")
        who = f" (pid {holder['pid']})" if "pid" in holder else ""
        raise UsageError(f"{root} is in use by another ganzoo bench{who}; wait for it to end")
    with lock:
        _record_grid(root, pairs, settings, shared)
        result = BenchResult(skipped=[p for p in pairs if p.complete])
        todo = [p for p in pairs if not p.complete]
        recipes_in = _count(len({p.recipe for p in pairs}), "recipe")
        intro = (
            f"bench: {_count(len(pairs), 'run')} ({recipes_in} x {_count(len(seeds), 'seed')})"
            f" in {root}; {len(result.skipped)} complete, "
            f"{sum(p.started for p in todo)} to resume, {sum(not p.started for p in todo)} to "
            f"start; {settings.jobs} at a time, {_count(settings.threads_per_job(), 'thread')} each"
        )
        if not todo and report_to is not None:
            report_to(intro)
        if todo:
            _execute(todo, settings, result, report_to, intro)
    return result


def _count(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _record_grid(root: Path, pairs: list[Pair], settings: Settings, shared: dict[str, Any]) -> None:
    """Write ``bench.json``: the pairs (with those of earlier benches into the folder).

    Raises:
        UsageError: the folder's earlier bench had other overrides or another protocol.

    """
    path = root / BENCH_FILE
    old = json.loads(path.read_text()) if path.is_file() else {}
    for key, now in (("overrides", list(settings.overrides)), ("protocol", shared)):
        if key in old and old[key] != now:
            raise UsageError(
                f"{root} holds a bench with other {key} ({json.dumps(old[key])}; now "
                f"{json.dumps(now)}): its runs and these could not share one table; use "
                "another --out"
            )
    known = {(p["recipe"], p["seed"]): p for p in old.get("pairs", [])}
    for p in pairs:
        known[(p.recipe, p.seed)] = {"recipe": p.recipe, "source": p.source, "seed": p.seed}
    data = {
        "pairs": sorted(known.values(), key=lambda p: (p["recipe"], p["seed"])),
        "overrides": list(settings.overrides),
        "protocol": shared,
    }
    write_text(path, json.dumps(data, indent=2) + "\n")


def _execute(
    todo: list[Pair],
    settings: Settings,
    result: BenchResult,
    report_to: ReportTo,
    intro: str,
) -> None:
    """Run the pairs of ``todo`` on the chosen executor, showing the grid's progress."""
    executor: _Local | _Submitit = (
        _Local(settings.jobs) if settings.executor == "local" else _Submitit(todo[0].root, settings)
    )
    threads = settings.threads_per_job()
    running: dict[Future[int], tuple[Pair, float]] = {}
    say = report_to or (lambda _line: None)
    queue = list(todo)

    def status() -> str:
        parts = [f"{len(running)} running", f"{len(queue)} waiting"]
        if result.failed:
            parts.append(f"{len(result.failed)} failed")
        return ", ".join(parts)

    def start(pair: Pair) -> None:
        argv = command(pair, settings)
        verb = "resuming" if pair.started else "starting"
        _write_status(pair, {**pair.status(), "status": "running", "command": argv})
        say(f"bench: {verb} {pair.label} (log: {pair.state_file('.log')})")
        running[executor.submit(argv, pair.state_file(".log"), threads)] = (pair, time.time())

    stop = StopRequest()
    try:
        with stop.installed(), track(report_to, "bench", len(todo), "runs", intro) as task:
            while queue and len(running) < settings.jobs:
                start(queue.pop(0))
            task.advance(0, status())
            while running and stop.signal_name is None:
                finished, _ = wait(list(running), timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in finished:
                    pair, began = running.pop(future)
                    _finish(pair, future, time.time() - began, result, say)
                    if queue and stop.signal_name is None:
                        start(queue.pop(0))
                    task.advance(1, status())
            if stop.signal_name is not None and (running or queue):
                result.stopped_by = stop.signal_name
                _stop(executor, running, result, say)
    finally:
        executor.close()


def _stop(
    executor: _Local | _Submitit,
    running: dict[Future[int], tuple[Pair, float]],
    result: BenchResult,
    say: Callable[[str], None],
) -> None:
    """Stop the running pairs: each saves a checkpoint; record how long each attempt ran."""
    say(
        f"bench: stopped by {result.stopped_by}; asking {_count(len(running), 'run')} to save "
        "a checkpoint and stop"
    )
    executor.stop()
    if isinstance(executor, _Local):  # a cluster's jobs stop in their own time
        wait(list(running))
    for future, (pair, began) in running.items():
        seconds = time.time() - began
        code = future.result() if future.done() and future.exception() is None else None
        if code is not None and code not in STOPPED_CODES:
            _finish(pair, future, seconds, result, say)
            continue
        _record_attempt(pair, seconds, "stopped")
        result.stopped.append(pair)


def _finish(
    pair: Pair, future: Future[int], seconds: float, result: BenchResult, say: Callable[[str], None]
) -> None:
    """Record how a pair's attempt ended."""
    try:
        code: int | None = future.result()
        why = f"exit code {code}"
    except Exception as exc:  # the executor could not run it
        code, why = None, f"{type(exc).__name__}: {exc}"
    if code == 0 and pair.complete:
        result.trained.append(pair)
        _record_attempt(pair, seconds, "complete")
        say(f"bench: {pair.label} done in {seconds:.0f} s")
        return
    result.failed.append(pair)
    _record_attempt(pair, seconds, "failed", why=why)
    say(f"bench: {pair.label} failed ({why}); its output: {pair.state_file('.log')}")


def _record_attempt(pair: Pair, seconds: float, status: str, **more: str) -> None:
    """Write how ``pair``'s attempt ended, its ``seconds`` added to the wall time of the others."""
    old = pair.status()
    wall = round(float(old.get("wall_s", 0.0)) + seconds, 1)
    _write_status(pair, {**old, "status": status, **more, "wall_s": wall})


def _write_status(pair: Pair, status: dict[str, Any]) -> None:
    write_text(pair.state_file(".json"), json.dumps(status, indent=2) + "\n")
