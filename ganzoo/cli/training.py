"""Commands that make runs: ``validate``, ``run`` and ``sample``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ganzoo.cli.app import (
    DataDirOption,
    DeviceOption,
    RecipeArgument,
    SetOption,
    WeightsOption,
    app,
    complete_recipe,
    console,
    console_err,
    handled,
    report,
)
from ganzoo.options import RunOptions, SampleOptions


@app.command()
@handled
def validate(
    recipe: RecipeArgument,
    overrides: SetOption = None,
    print_resolved: Annotated[
        bool, typer.Option("--print", help="Print the resolved recipe (all defaults filled in).")
    ] = False,
) -> None:
    """Check a recipe: its fields, its components' parameters, and that the networks fit."""
    from ganzoo.recipe import load_recipe

    resolved = load_recipe(recipe, overrides or [])
    from ganzoo.build import check_networks  # torch: only once the recipe reads

    check_networks(resolved)
    if print_resolved:
        sys.stdout.write(resolved.to_toml())
        return
    parts = ", ".join(f"{s} {c.name}" for s, c in resolved.components.items())
    console.print(f"{resolved.source}: ok ({resolved.name}: {parts})", markup=False)


@app.command()
@handled
def run(
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="A recipe file or an installed recipe's name; default: quickstart (or, "
            "with --resume, the run's own recipe).",
            autocompletion=complete_recipe,
        ),
    ] = None,
    overrides: SetOption = None,
    out: Annotated[
        str | None, typer.Option("--out", "-o", help="Run folder (default runs/NAME/TIME).")
    ] = None,
    device: DeviceOption = "auto",
    resume: Annotated[
        str | None, typer.Option("--resume", help="Continue the run in this folder.")
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="With --resume: a file in checkpoints/ (default the newest)."
        ),
    ] = None,
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    download: Annotated[
        bool, typer.Option("--download", help="Let datasets download missing files.")
    ] = False,
    progress: Annotated[str, typer.Option("--progress", help="auto, bar, plain or none.")] = "auto",
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc", help="Train data-parallel in N processes on this machine (via torchrun)."
        ),
    ] = 1,
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads", help="CPU threads: a number, or auto (short for --set train.threads=...)."
        ),
    ] = None,
) -> None:
    """Train a recipe into a run folder (samples, checkpoints, metrics, logs)."""
    from ganzoo.errors import UsageError

    if nproc < 1:
        raise UsageError(f"--nproc {nproc}: need at least 1 process")
    if nproc > 1:
        raise typer.Exit(_torchrun(nproc))
    if threads is not None:
        overrides = [*(overrides or ()), f"train.threads={_thread_value(threads)}"]
    options = RunOptions(
        overrides=tuple(overrides or ()),
        out=out,  # type: ignore[arg-type]  (paths are normalised by RunOptions)
        device=device,
        resume=resume,  # type: ignore[arg-type]
        checkpoint=checkpoint,
        data_dir=data_dir,  # type: ignore[arg-type]
        download=download,
        progress=progress,  # type: ignore[arg-type]
        inception_weights=inception_weights,  # type: ignore[arg-type]
    )
    if recipe is None and resume is None:
        recipe = "quickstart"
    if recipe is not None:
        from ganzoo.recipe import find_recipe

        find_recipe(recipe)  # an unknown name is reported before torch loads
    from ganzoo.distributed import from_environment
    from ganzoo.train import run as run_recipe

    result = run_recipe(recipe, options)
    if not from_environment().is_main:
        return
    if result.interrupted_by is not None:
        console_err.print(
            f"stopped by {result.interrupted_by} at step {result.step}/{result.total_steps}; "
            f"checkpoint saved. Continue with: ganzoo run --resume {result.run_dir}",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        raise typer.Exit(130 if result.interrupted_by == "SIGINT" else 143)
    console_err.print(
        f"done: {result.summary()}; run folder: {result.run_dir}",
        markup=False,
        soft_wrap=True,
    )


def _thread_value(threads: str) -> str:
    """``--threads`` as the TOML value of ``train.threads``."""
    from ganzoo.errors import UsageError

    if threads == "auto":
        return '"auto"'
    if threads.isdigit() and int(threads) > 0:
        return threads
    raise UsageError(f"--threads {threads}: give a number of threads (1 or more) or auto")


def _torchrun(nproc: int) -> int:
    """Run this same ``ganzoo run`` command in ``nproc`` processes under torchrun."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            args.append(arg)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "ganzoo", *args]  # fmt: skip
    return subprocess.run(command, check=False).returncode


@app.command()
@handled
def sample(
    run_dir: Annotated[str, typer.Argument(help="A run folder.")],
    n: Annotated[
        int | None,
        typer.Option(
            "--n",
            help="Samples (or interpolation rows); default 64, with --export the recipe's "
            "eval.num_samples.",
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the latent draw; default 0, with --export the recipe's eval.seed.",
        ),
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="PNG to write.")] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="A file in checkpoints/ (default the newest)."),
    ] = None,
    interpolate: Annotated[
        bool, typer.Option("--interpolate", help="Rows of spherical latent interpolations.")
    ] = False,
    steps: Annotated[int, typer.Option("--steps", help="Images per interpolation row.")] = 10,
    device: DeviceOption = "auto",
    label: Annotated[
        str | None,
        typer.Option(
            "--class",
            help="Conditional runs: the class to draw (index or name); default: one row per class.",
        ),
    ] = None,
    export: Annotated[
        str | None,
        typer.Option(
            "--export",
            help="Write --n PNG files, one a sample, into this folder (the samples ganzoo eval "
            "scores; resumes an interrupted export).",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="With --export: samples a generator batch (default the recipe's "
            "eval.batch_size; the samples depend on it).",
        ),
    ] = None,
    data_dir: DataDirOption = None,
) -> None:
    """Draw samples (a grid, interpolations, or one PNG each) from a trained run's generator."""
    from ganzoo.errors import UsageError

    if export is not None:
        if interpolate or out is not None:
            raise UsageError(
                "--export writes one file a sample: it takes no --interpolate or --out"
            )
        from ganzoo.export import export_samples

        result = export_samples(
            run_dir, export, n, seed=seed, checkpoint=checkpoint, label=label,
            batch_size=batch_size, device=device, data_dir=data_dir, report=report,
        )  # fmt: skip
        sys.stdout.write(f"{result.summary()}\n")
        return
    if batch_size is not None or data_dir is not None:
        raise UsageError("--batch-size and --data-dir go with --export")
    options = SampleOptions(
        n=64 if n is None else n, seed=0 if seed is None else seed,
        out=out, checkpoint=checkpoint,  # type: ignore[arg-type]
        interpolate=interpolate, steps=steps, device=device, label=label,
    )  # fmt: skip
    from ganzoo.sample import sample_run

    sys.stdout.write(f"{sample_run(run_dir, options)}\n")
