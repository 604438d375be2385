"""``ganzoo bench``: recipes x seeds as run folders, a resumable grid, and its leaderboard."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path

import pytest
from conftest import GANZOO, REPO, run_cli, stop_at_checkpoint

from ganzoo.bench import parse_seeds
from ganzoo.bench.board import Leaderboard, Row, summarise
from ganzoo.bench.grid import differences
from ganzoo.checkpoint import latest_checkpoint, load_checkpoint
from ganzoo.errors import UsageError
from ganzoo.writes import WriterLock

QUICKSTART = (REPO / "recipes" / "quickstart.toml").read_text()
# small steps and a checkpoint every EVERY: a run to stop reaches its first checkpoint in seconds
EVERY = 50
FREQUENT = ["--set", "train.batch_size=32", "--set", f"train.checkpoint_every={EVERY}"]
# quickstart-sized: seconds a run, most of it the process's start
TINY = ["--set", "train.steps=200", *FREQUENT, "--set", "eval.num_samples=1000"]


def recipe(folder: Path, name: str, loss: str = "non-saturating", extra: str = "") -> Path:
    """The quickstart under another name (and loss), written into ``folder``."""
    text = QUICKSTART.replace('name = "quickstart"', f'name = "{name}"')
    text = text.replace('name = "non-saturating"\nr1_gamma = 0.01', f'name = "{loss}"')
    path = folder / f"{name}.toml"
    path.write_text(text + extra)
    return path


def bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_cli("bench", *args, "--progress", "plain", timeout=timeout)


def pair_files(root: Path) -> dict[str, float]:
    """Every file of every run folder of the bench, with its modification time."""
    return {
        str(p.relative_to(root)): p.stat().st_mtime_ns
        for p in root.glob("*/seed-*/**/*")
        if p.is_file() and p.name != ".lock"
    }


def wait_until_unlocked(folders: list[Path], timeout: float = 60) -> None:
    """Wait until no process holds the lock of any of the run ``folders`` (each has exited)."""
    deadline = time.monotonic() + timeout
    for folder in folders:
        while (folder / ".lock").exists():
            lock = WriterLock.try_acquire(folder / ".lock")
            if lock is not None:
                lock.release()
                break
            assert time.monotonic() < deadline, WriterLock.holder(folder / ".lock")
            time.sleep(0.05)


def test_seeds_parse_and_bad_ones_are_refused():
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("3,0,7") == [0, 3, 7]
    assert parse_seeds("0-2,9,1") == [0, 1, 2, 9]
    for bad in ("", "a", "4-2", "1,,2", "-1"):
        with pytest.raises(UsageError, match="--seeds"):
            parse_seeds(bad)


def test_summaries_are_the_mean_and_sample_std_of_the_finite_values():
    s = summarise([1.0, 2.0, 4.0, math.nan])
    assert s is not None
    assert (s.mean, s.n) == (pytest.approx(7 / 3), 3)
    squares = sum((v - 7 / 3) ** 2 for v in (1.0, 2.0, 4.0))
    assert s.std == pytest.approx(math.sqrt(squares / 2))
    one = summarise([5.0])
    assert one is not None and one.std is None and one.text(2) == "5.00"
    assert summarise([math.inf, math.nan]) is None
    assert differences({"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}) == ["y: a 2, b 3"]


def test_speed_and_wall_time_count_the_complete_runs_as_the_scores_do(tmp_path):
    rows = [
        Row("r", 0, tmp_path, "complete", {"modes": 8.0}, images_per_s=1000.0, wall_s=60.0),
        Row("r", 1, tmp_path, "complete", {"modes": 7.0}, images_per_s=3000.0, wall_s=180.0),
        Row("r", 2, tmp_path, "unfinished", images_per_s=9000.0),
        Row("r", 3, tmp_path, "failed", images_per_s=50.0, wall_s=5.0),
    ]
    board = Leaderboard(tmp_path, rows, {}, ["modes"], {"modes": "higher"})
    speed, wall = board.timing("r")
    assert (speed.mean, speed.n, wall.mean, wall.n) == (2000.0, 2, 120.0, 2)
    (line,) = [x for x in board.markdown().splitlines() if x.startswith("| r ")]
    assert line.endswith(
        "| 2/4 (seed 2 unfinished, seed 3 failed) | **7.5 ± 0.7** | 2,000 | 0:02:00 |"
    )
    (entry,) = board.to_json()["recipes"]
    assert entry["images_per_s"]["n"] == 2 and entry["wall_s"]["mean"] == 120.0
    assert [r["images_per_s"] for r in entry["runs"]] == [1000.0, 3000.0, 9000.0, 50.0]


def test_a_killed_bench_continues_where_it_stopped_and_tabulates_every_seed(tmp_path):
    a = recipe(tmp_path, "qs_a")
    b = recipe(tmp_path, "qs_b", loss="hinge")
    out = tmp_path / "bench"
    args = [GANZOO, "bench", str(a), str(b), "--seeds", "0-1", "--jobs", "2", "--out", str(out),
            *TINY, "--set", "train.steps=1000", "--progress", "plain"]  # fmt: skip
    process = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    folders = [out / name / f"seed-{seed}" for name in ("qs_a", "qs_b") for seed in (0, 1)]

    def early(folder: Path) -> bool:
        """Checkpointed at most 2 x EVERY steps in: 800 or more steps short of its end."""
        steps = [int(p.stem.removeprefix("step_")) for p in folder.glob("checkpoints/step_*.pt")]
        return bool(steps) and max(steps) <= 2 * EVERY

    deadline = time.monotonic() + 240
    while True:  # kill it once a pair is complete and another is early in its training
        complete = [f for f in folders if (f / "eval.json").is_file()]
        if complete and any(early(f) for f in folders):
            break
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    wait_until_unlocked(folders)  # the killed bench's runs got SIGTERM: they save and exit

    def bench_log(folder: Path) -> str:
        """The bench's log of the run in ``folder`` ("" before the bench started it)."""
        log = out / ".bench" / f"{folder.parent.name}-{folder.name}.log"
        return log.read_text() if log.is_file() else ""

    def commands(log: str) -> list[str]:
        """The commands a bench log records, one per attempt."""
        return [line for line in log.splitlines() if line.startswith("$ ")]

    # a run may have been started and stopped before it wrote a file: an attempt all the same
    attempts = {f: len(commands(bench_log(f))) for f in folders}
    before = pair_files(out)
    was_complete = {f for f in folders if (f / "eval.json").is_file()}
    was_started = {f for f in folders if (f / "resolved.toml").is_file()} - was_complete
    # a run stopped before its first checkpoint (SIGTERM during its start) resumes from step 0
    saved = {f: load_checkpoint(latest_checkpoint(f / "checkpoints"))["step"]
             for f in was_started if list(f.glob("checkpoints/step_*.pt"))}  # fmt: skip
    assert was_complete and saved

    again = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=300,
                           env={**os.environ, "NO_COLOR": "1"})  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"{len(was_complete)} complete, {len(was_started)} to resume" in again.stderr
    for folder in folders:
        assert (folder / "eval.json").is_file()
        log = bench_log(folder)
        ran = commands(log)
        if folder in was_complete:  # not run again: no command, no file written
            assert len(ran) == attempts[folder] == 1
            mine = [k for k in before if k.startswith(f"{folder.parent.name}/{folder.name}/")]
            assert mine and all(before[k] == (out / k).stat().st_mtime_ns for k in mine)
            continue
        assert len(ran) == attempts[folder] + 1
        if folder in was_started:  # continued from its checkpoint
            assert "--resume" in ran[-1]
            if folder in saved:
                assert f"from step {saved[folder]:,}" in log
            else:
                assert "from step" not in log
        else:  # nothing written yet: started afresh
            assert "--resume" not in ran[-1]

    # the leaderboard, recomputed from the runs' own eval.json
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["columns"] == ["modes", "high_quality", "reverse_kl", "spread"]
    md = (out / "leaderboard.md").read_text()
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [(r["recipe"], r["seed"], r["status"]) for r in rows] == [
        ("qs_a", "0", "complete"), ("qs_a", "1", "complete"),
        ("qs_b", "0", "complete"), ("qs_b", "1", "complete"),
    ]  # fmt: skip
    for entry in board["recipes"]:
        folder = out / entry["recipe"]
        scores = [json.loads((folder / f"seed-{s}" / "eval.json").read_text())["scores"]
                  for s in (0, 1)]  # fmt: skip
        for column in ("high_quality", "modes"):
            values = [s[column] for s in scores]
            summary = entry["summary"][column]
            assert summary["mean"] == pytest.approx(statistics.fmean(values))
            assert summary["std"] == pytest.approx(statistics.stdev(values))
            assert summary["n"] == 2
        mean = entry["summary"]["high_quality"]
        text = f"{mean['mean']:.4f} ± {mean['std']:.4f}"
        line = next(row for row in md.splitlines() if row.startswith(f"| {entry['recipe']} |"))
        assert text in line and "| 2/2 |" in line
    best = max(board["recipes"], key=lambda e: e["summary"]["high_quality"]["mean"])
    assert "high_quality" in best["best"]
    png = (out / "leaderboard.png").read_bytes()
    assert png.startswith(b"\x89PNG")

    report = run_cli("bench", "--report", str(out))
    assert report.returncode == 0, report.stderr
    assert report.stdout == md.split("\n\n", 1)[1]


def test_a_stopped_bench_waits_for_its_runs_to_save_and_counts_every_attempt(tmp_path):
    a = recipe(tmp_path, "qs_a")
    out = tmp_path / "bench"
    args = ["bench", str(a), "--seeds", "0", "--out", str(out), "--progress", "plain",
            "--set", "train.steps=1000000", *FREQUENT]  # fmt: skip
    folder = out / "qs_a" / "seed-0"
    log = out / ".bench" / "qs_a-seed-0.log"
    walls, step = [0.0], 0
    for sig, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        began = time.monotonic()  # stopped once it has made a checkpoint past where it began
        after = folder / "checkpoints" / f"step_{(step // EVERY + 1) * EVERY:08d}.pt"
        ended = stop_at_checkpoint(args, after, sig)
        elapsed = time.monotonic() - began
        name = signal.Signals(sig).name
        assert ended.returncode == code, ended.stderr
        assert f"bench: stopped by {name}" in ended.stderr
        assert "asking 1 run to save a checkpoint and stop" in ended.stderr
        # the run got SIGTERM, saved where it stopped, and had exited when the bench did
        text = log.read_text()
        stopped = re.findall(r"stopped by SIGTERM at step (\d+)/1000000", text)
        commands = [line for line in text.splitlines() if line.startswith("$ ")]
        assert len(stopped) == len(commands) == len(walls)
        assert ("--resume" in commands[-1]) == (step > 0) and int(stopped[-1]) > step
        step = int(stopped[-1])
        assert (folder / "checkpoints" / f"step_{step:08d}.pt").is_file()
        assert not (folder / ".lock").exists()
        status = json.loads((out / ".bench" / "qs_a-seed-0.json").read_text())
        assert status["status"] == "stopped"
        attempt = status["wall_s"] - walls[-1]  # this attempt's time, added to the last one's
        assert 0.5 < attempt <= elapsed + 0.1
        walls.append(status["wall_s"])
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    assert [(r["recipe"], r["status"]) for r in rows] == [("qs_a", "unfinished")]


def test_recipes_that_would_be_scored_differently_are_refused(tmp_path):
    a = recipe(tmp_path, "qs_a")
    b = recipe(tmp_path, "qs_b", extra='\n[eval]\nmetrics = ["modes"]\nnum_samples = 500\n')
    done = bench(str(a), str(b), "--out", str(tmp_path / "bench"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "evaluated differently" in lines[0] and "num_samples: qs_a 10000, qs_b 500" in lines[0]
    assert not (tmp_path / "bench").exists()


def test_a_failed_run_is_marked_and_the_others_still_count(tmp_path):
    good = recipe(tmp_path, "qs_good")
    broken = recipe(tmp_path, "qs_broken")  # learning rates that make the losses infinite
    text = broken.read_text().replace("lr = 5e-4", "lr = 1e30").replace("lr = 1e-3", "lr = 1e30")
    broken.write_text(text)
    out = tmp_path / "bench"
    done = bench(str(good), str(broken), "--out", str(out), "--jobs", "2", *TINY)
    assert done.returncode == 1
    assert "1 run(s) failed: qs_broken seed 0" in done.stderr
    report = run_cli("bench", "--report", str(out))
    assert report.returncode == 0, report.stderr
    lines = {line.split(" | ")[0]: line for line in report.stdout.splitlines()[2:]}
    assert "| 0/1 (seed 0 failed) | — |" in lines["| qs_broken"]
    assert "| 1/1 |" in lines["| qs_good"]
    rows = {r["recipe"]: r for r in csv.DictReader((out / "leaderboard.csv").open())}
    assert rows["qs_broken"]["status"] == "failed" and rows["qs_broken"]["modes"] == ""
    good_scores = json.loads((out / "qs_good" / "seed-0" / "eval.json").read_text())["scores"]
    assert float(rows["qs_good"]["high_quality"]) == pytest.approx(good_scores["high_quality"])
    status = json.loads((out / ".bench" / "qs_broken-seed-0.json").read_text())
    assert status["status"] == "failed" and status["why"] == "exit code 1"
    assert "NaN or infinite" in (out / ".bench" / "qs_broken-seed-0.log").read_text()


def test_the_submitit_executor_runs_a_pair_through_its_local_backend(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install submitit)")
    out = tmp_path / "bench"
    done = bench(str(recipe(tmp_path, "qs_a")), "--out", str(out), "--executor", "submitit",
                 "--cluster", "local", *TINY)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (out / "qs_a" / "seed-0" / "eval.json").is_file()
    assert list((out / ".bench" / "submitit").glob("*_result.pkl"))  # submitit ran it
    assert re.search(r"^\| qs_a \| 1/1 \|", done.stdout, re.MULTILINE)


def test_a_stopped_submitit_bench_cancels_its_job_and_the_run_saves(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install submitit)")
    out = tmp_path / "bench"
    args = ["bench", str(recipe(tmp_path, "qs_a")), "--out", str(out), "--progress", "plain",
            "--executor", "submitit", "--cluster", "local",
            "--set", "train.steps=1000000", *FREQUENT]  # fmt: skip
    folder = out / "qs_a" / "seed-0"
    ended = stop_at_checkpoint(
        args, folder / "checkpoints" / f"step_{EVERY:08d}.pt", signal.SIGTERM
    )
    assert ended.returncode == 143, ended.stderr
    assert "asking 1 run to save a checkpoint and stop" in ended.stderr
    wait_until_unlocked([folder])  # the cancelled job's run saves in its own time
    stopped = re.findall(r"stopped by SIGTERM at step (\d+)/1000000",
                         (out / ".bench" / "qs_a-seed-0.log").read_text())  # fmt: skip
    assert len(stopped) == 1 and int(stopped[0]) >= EVERY
    assert (folder / "checkpoints" / f"step_{int(stopped[0]):08d}.pt").is_file()
    status = json.loads((out / ".bench" / "qs_a-seed-0.json").read_text())
    assert status["status"] == "stopped" and status["wall_s"] > 0.5
