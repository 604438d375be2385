"""Commands that score: ``eval`` (trained runs), ``fid`` (folders, statistics), ``stats``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ganzoo.cli.app import (
    EXTRACTOR_HELP,
    DataDirOption,
    DeviceOption,
    ExtractorOption,
    JsonOption,
    WeightsOption,
    add_row,
    app,
    complete_dataset,
    console,
    console_err,
    handled,
    print_json,
    report,
)
from ganzoo.options import EvalOptions


@app.command("eval")
@handled
def eval_runs(
    run_dirs: Annotated[list[str], typer.Argument(help="One or more run folders.")],
    metrics: Annotated[
        str | None,
        typer.Option("--metrics", help="Comma-separated metric names (default: the recipe's)."),
    ] = None,
    extractor: ExtractorOption = None,
    num_samples: Annotated[
        int | None, typer.Option("--num-samples", help="Generated samples to score.")
    ] = None,
    reference_split: Annotated[
        str | None, typer.Option("--reference-split", help="Split of the reference data.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the samples.")] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option("--checkpoint", help="A file in checkpoints/ (default the newest)."),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Batch size for sampling and features.")
    ] = None,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score trained runs (writes eval.json into each) and print the scores with their protocol."""
    names = tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None
    options = EvalOptions(
        metrics=names, extractor=extractor, num_samples=num_samples,
        reference_split=reference_split, seed=seed, checkpoint=checkpoint,
        batch_size=batch_size, device=device, data_dir=data_dir,  # type: ignore[arg-type]
        inception_weights=inception_weights,  # type: ignore[arg-type]
    )  # fmt: skip
    from ganzoo.evaluate import evaluate_run, format_score, protocol_differences

    reports = [evaluate_run(run_dir, options, report=report) for run_dir in run_dirs]
    if as_json:
        print_json([r.to_json() for r in reports])
        return
    keys = list(dict.fromkeys(k for r in reports for k in r.scores))
    table = Table(title="scores", title_justify="left", title_style="bold")
    table.add_column("run")
    for key in keys:
        table.add_column(key, justify="right")
    for run_dir, r in zip(run_dirs, reports, strict=True):
        cells = [format_score(r.scores[k]) if k in r.scores else "-" for k in keys]
        add_row(table, run_dir, *cells)
    console.print(table)
    differences = protocol_differences(reports) if len(reports) > 1 else {}
    shown = {k: v for k, v in reports[0].protocol.items() if k not in differences}
    console.print("protocol: " + json.dumps(shown, default=str), markup=False, soft_wrap=True)
    for key, values in differences.items():
        console_err.print(
            f"warning: protocols differ in {key}: "
            + "; ".join(f"{d}: {v}" for d, v in zip(run_dirs, values, strict=True)),
            style="yellow", markup=False, soft_wrap=True,
        )  # fmt: skip


@app.command()
@handled
def fid(
    path1: Annotated[str, typer.Argument(help="A folder of images or a .npz of statistics.")],
    path2: Annotated[str, typer.Argument(help="A folder of images or a .npz of statistics.")],
    extractor: Annotated[str, typer.Option("--extractor", help=EXTRACTOR_HELP)] = "inception-v3",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 50,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    as_json: JsonOption = False,
    skip_unreadable: Annotated[
        bool,
        typer.Option(
            "--skip-unreadable",
            help="Leave out files that are not readable images (counted in a warning) "
            "instead of stopping at the first.",
        ),
    ] = False,
) -> None:
    """FID between two folders of images or .npz statistics, as pytorch-fid computes it.

    Rounding noise below zero is printed as 0; ``--json`` gives the raw value as ``fid_raw``.
    """
    import math

    from ganzoo.evaluate import fid_between
    from ganzoo.metrics.frechet import clamp_distance

    raw, protocols = fid_between(
        path1, path2, extractor=extractor, device=device, batch_size=batch_size,
        data_dir=data_dir, inception_weights=inception_weights, report=report,
        skip_unreadable=skip_unreadable,
    )  # fmt: skip
    value = clamp_distance(raw)
    if as_json:
        finite_raw = raw if math.isfinite(raw) else None
        print_json({"fid": value, "fid_raw": finite_raw, "protocols": protocols})
        return
    console.print(f"FID: {value:.6f}", markup=False)
    for path, protocol in zip((path1, path2), protocols, strict=True):
        console.print(f"{path}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)


@app.command()
@handled
def stats(
    dataset: Annotated[
        str, typer.Argument(help="A dataset name.", autocompletion=complete_dataset)
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="The .npz to write.")],
    split: Annotated[str | None, typer.Option("--split", help="train or test.")] = None,
    extractor: Annotated[str, typer.Option("--extractor", help=EXTRACTOR_HELP)] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 250,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
) -> None:
    """Precompute a dataset's feature statistics (mu, sigma) into a pytorch-fid .npz."""
    from ganzoo.evaluate import dataset_statistics

    protocol = dataset_statistics(
        dataset, out, split=split, extractor=extractor, device=device, batch_size=batch_size,
        data_dir=data_dir, inception_weights=inception_weights, report=report,
    )  # fmt: skip
    console.print(f"{out}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)
