"""Threads: training images/s at 1 thread, at every core and at ``auto``; alone and side by side.

Each case trains a bundled recipe through the ``ganzoo`` CLI in fresh processes (the way a
user runs it, ``OMP_NUM_THREADS`` unset) with ``train.threads`` set to 1, to every core and
to ``auto``; once alone, and once as two identical runs started together. A run's speed is
the mean images/s of its logging windows after the first (the warm-up). ``auto / best`` is
auto's speed over the best fixed setting's in that scenario (side by side: the two runs'
total); the issue asks for at least 0.90. Last, the whole quickstart (``ganzoo run
quickstart``, start to finish, default settings) is timed alone, as the README quotes it.

    python benchmarks/threads.py                 # every case
    python benchmarks/threads.py --cases mlp --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    # name: (recipe, overrides, steps)
    "quickstart": ("quickstart", [], 2000),
    "mlp": ("vanilla_mnist", ["data.split=test"], 600),
    "dcgan": ("dcgan_mnist", ["data.split=test"], 200),
}


def ganzoo() -> str:
    """The ganzoo command beside this Python."""
    return str(Path(sys.executable).with_name("ganzoo"))


def environment() -> dict[str, str]:
    """This environment without thread settings, as a user's shell would be."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return env | {"NO_COLOR": "1"}


def start(case: str, threads: str, out: Path) -> subprocess.Popen[bytes]:
    """Start one training run of ``case`` with ``train.threads = threads`` into ``out``."""
    recipe, overrides, steps = CASES[case]
    value = '"auto"' if threads == "auto" else threads
    sets = [
        *overrides,
        f"train.steps={steps}",
        f"train.log_every={steps // 10}",
        f"train.sample_every={steps}",
        f"train.checkpoint_every={steps}",
        f"train.threads={value}",
        "eval.metrics=[]",
    ]
    args = [ganzoo(), "run", recipe, "--out", str(out), "--progress", "none"]
    for item in sets:
        args += ["--set", item]
    return subprocess.Popen(args, env=environment(), stdout=subprocess.DEVNULL)


def speed(out: Path) -> tuple[float, int]:
    """Steady images/s of a finished run (windows after the first) and its thread count."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    threads = json.loads((out / "env.json").read_text())["threads"]
    return statistics.mean(r["images_per_s"] for r in records[1:]), threads


def measure(case: str, threads: str, together: int, root: Path) -> list[tuple[float, int]]:
    """Speeds (and thread counts) of ``together`` identical runs started at once."""
    outs = [Path(tempfile.mkdtemp(dir=root)) / "run" for _ in range(together)]
    processes = [start(case, threads, out) for out in outs]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"{case} with {threads} threads failed: {process.args}")
    return [speed(out) for out in outs]


def quickstart_seconds() -> float:
    """Wall time of ``ganzoo run quickstart`` with its defaults, start to finish."""
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        subprocess.run(
            [ganzoo(), "run", "quickstart", "--out", f"{root}/run", "--progress", "none"],
            env=environment(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - started


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--rounds", type=int, default=1, help="Repeats; the best round counts.")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    settings = ["1", str(cores), "auto"] if cores and cores > 1 else ["1", "auto"]
    print(f"{cores} cores; images/s per run (side by side: each run, and the total)")
    print(f"{'case':<11} {'scenario':<13} " + " ".join(f"{s + ' thr':>16}" for s in settings)
          + f" {'auto picked':>11} {'auto/best':>9}")  # fmt: skip
    worst = 1.0
    with tempfile.TemporaryDirectory() as root:
        for case in args.cases.split(","):
            for together in (1, 2):
                cells, totals, picked = [], {}, ""
                for setting in settings:
                    rounds = [
                        measure(case, setting, together, Path(root)) for _ in range(args.rounds)
                    ]
                    best = max(rounds, key=lambda r: sum(s for s, _ in r))
                    totals[setting] = sum(s for s, _ in best)
                    if together == 1:
                        cells.append(f"{totals[setting]:>16,.0f}")
                    else:
                        each = "+".join(f"{s:,.0f}" for s, _ in best)
                        cells.append(f"{each:>16}")
                    if setting == "auto":
                        picked = "+".join(str(t) for _, t in best)
                ratio = totals["auto"] / max(v for k, v in totals.items() if k != "auto")
                worst = min(worst, ratio)
                scenario = "alone" if together == 1 else "side by side"
                print(f"{case:<11} {scenario:<13} {' '.join(cells)} {picked:>11} {ratio:>9.2f}")
    print(f"worst auto/best: {worst:.2f} (the bar: 0.90)")
    print(f"ganzoo run quickstart (5,000 steps, defaults), alone: {quickstart_seconds():.1f} s")


if __name__ == "__main__":
    main()
