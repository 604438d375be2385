"""``ganzoo bench``: recipes x seeds, each an ordinary run, scored under one protocol.

A bench folder holds one run folder per (recipe, seed) pair, ``<recipe name>/seed-<k>/``,
and ``.bench/`` with each pair's log and status. A pair whose run folder has an ``eval.json``
is complete and skipped; one with a run folder but no ``eval.json`` (killed, failed) is
resumed with ``ganzoo run --resume``; the others start. Every run is evaluated by its own
end-of-run evaluation, under the one protocol the bench checks before anything trains: the
recipes' ``[eval]`` sections (with ``--metrics`` / ``--extractor`` set once for all) and their
reference sets must agree. The reference features come from the feature cache after the first
run has stored them.

:func:`report` turns the finished runs into ``leaderboard.csv`` (a row per run),
``leaderboard.json`` (the protocol, every run and each recipe's mean and standard deviation),
``leaderboard.md`` (mean ± std per score, the best marked) and ``leaderboard.png``.
"""

from ganzoo.bench.board import Leaderboard, leaderboard, report
from ganzoo.bench.grid import Pair, Settings, eval_overrides, parse_seeds, plan
from ganzoo.bench.runner import BenchResult, run_bench

__all__ = [
    "BenchResult",
    "Leaderboard",
    "Pair",
    "Settings",
    "eval_overrides",
    "leaderboard",
    "parse_seeds",
    "plan",
    "report",
    "run_bench",
]
