"""``ganzoo bench``: recipes x seeds trained, evaluated and tabulated as a leaderboard."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ganzoo.cli.app import (
    DataDirOption,
    ExtractorOption,
    SetOption,
    app,
    complete_recipe,
    console_err,
    handled,
)
from ganzoo.errors import UsageError
from ganzoo.progress import Reporter, progress_mode


@app.command()
@handled
def bench(
    recipes: Annotated[
        list[str] | None,
        typer.Argument(
            help="Recipe files or installed recipes' names.", autocompletion=complete_recipe
        ),
    ] = None,
    seeds: Annotated[
        str, typer.Option("--seeds", help="Seeds of each recipe: 0-4, 0,3,7 or 0-2,9.")
    ] = "0",
    overrides: SetOption = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="The bench folder (one run folder a pair).")
    ] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Runs at a time.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="CPU threads of each run (default: the cores / --jobs)."),
    ] = None,
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="Metrics of every run, comma-separated (eval.metrics)."),
    ] = None,
    extractor: ExtractorOption = None,
    executor: Annotated[
        str, typer.Option("--executor", help="local (processes here) or submitit (SLURM jobs).")
    ] = "local",
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster", help="submitit's cluster: slurm, local or debug (default: detected)."
        ),
    ] = None,
    partition: Annotated[
        str | None, typer.Option("--partition", help="submitit: the SLURM partition.")
    ] = None,
    gpus_per_job: Annotated[
        int, typer.Option("--gpus-per-job", help="submitit: GPUs of each job.")
    ] = 0,
    timeout: Annotated[
        int, typer.Option("--timeout", help="submitit: minutes a job may run.")
    ] = 240,
    device: Annotated[
        str | None, typer.Option("--device", help="Device of every run (default: auto).")
    ] = None,
    data_dir: DataDirOption = None,
    report_dir: Annotated[
        str | None,
        typer.Option("--report", help="Only rebuild the leaderboard files of this bench folder."),
    ] = None,
    progress: Annotated[str, typer.Option("--progress", help="auto, bar, plain or none.")] = "auto",
) -> None:
    """Train and score recipes x seeds under one protocol (OUT/RECIPE/seed-K); a leaderboard."""
    from ganzoo.bench import Settings, eval_overrides, parse_seeds, run_bench

    if report_dir is not None:
        if recipes or out is not None:
            raise UsageError("--report DIR rebuilds a bench's files: it takes no recipes or --out")
        _write_report(Path(report_dir))
        return
    if out is None:
        raise UsageError("give the bench folder: --out DIR")
    if executor not in ("local", "submitit"):
        raise UsageError(f"--executor {executor}: choose local or submitit")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads {threads}: need at least 1")
    settings = Settings(
        overrides=(*(overrides or ()), *eval_overrides(metrics, extractor)),
        jobs=jobs, threads=threads, device=device, data_dir=data_dir,
        executor=executor,  # type: ignore[arg-type]  (checked above)
        cluster=cluster, partition=partition, gpus_per_job=gpus_per_job, timeout_min=timeout,
    )  # fmt: skip
    reporter = Reporter(progress_mode(progress))
    result = run_bench(recipes or [], parse_seeds(seeds), Path(out), settings, reporter)
    _write_report(Path(out))
    if result.failed:
        names = ", ".join(p.label for p in result.failed)
        console_err.print(
            f"error: {len(result.failed)} run(s) failed: {names}; their output is in "
            f"{Path(out) / '.bench'}; run the same command again to retry them",
            style="red", markup=False, soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(1)
    if result.stopped_by is not None:
        console_err.print(
            f"bench: stopped by {result.stopped_by}; the runs it stopped saved their "
            "checkpoints: run the same command again to continue",
            style="yellow", markup=False, soft_wrap=True,
        )  # fmt: skip
        raise typer.Exit(130 if result.stopped_by == "SIGINT" else 143)


def _write_report(root: Path) -> None:
    """Write the leaderboard files of ``root``, print the table, name the files."""
    from ganzoo.bench import report

    board, paths = report(root)
    sys.stdout.write(board.markdown())
    console_err.print(
        "leaderboard: " + ", ".join(str(p) for p in paths), markup=False, soft_wrap=True
    )
