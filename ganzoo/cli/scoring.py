"""Commands that score: ``eval`` (trained runs), ``fid`` (folders, statistics), ``stats``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from ganzoo.cli.app import (
    EXTRACTOR_HELP,
    CacheOption,
    DataDirOption,
    DeviceOption,
    ExtractorOption,
    JsonOption,
    PrecisionOption,
    ResizeOption,
    WeightsOption,
    add_row,
    app,
    complete_dataset,
    console,
    console_err,
    extractor_params,
    handled,
    print_json,
    report,
)
from ganzoo.errors import UsageError
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
    resize: ResizeOption = None,
    precision: PrecisionOption = None,
    cache: CacheOption = True,
    as_json: JsonOption = False,
) -> None:
    """Score trained runs (writes eval.json into each) and print the scores with their protocol.

    The reference set's features come from the feature cache when an earlier evaluation with
    the same protocol stored them (eval.json's ``reference_features`` says which file).
    """
    names = _metric_names(metrics)
    options = EvalOptions(
        metrics=names, extractor=extractor, num_samples=num_samples,
        reference_split=reference_split, seed=seed, checkpoint=checkpoint,
        batch_size=batch_size, device=device, data_dir=data_dir,  # type: ignore[arg-type]
        inception_weights=inception_weights,  # type: ignore[arg-type]
        extractor_params=extractor_params(resize, precision), cache=cache,
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


def _metric_names(metrics: str | None) -> tuple[str, ...] | None:
    return tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None


SourceHelp = (
    "An image folder, a .npz of statistics, or a dataset name (with --split and --data-option)."
)
SplitOption = Annotated[
    str | None, typer.Option("--split", help="The split of a dataset side: train or test.")
]
DataOption = Annotated[
    list[str] | None,
    typer.Option(
        "--data-option",
        help="A parameter of a dataset side, KEY=VALUE in TOML (repeatable).",
        metavar="KEY=VALUE",
    ),
]


def _data_options(items: list[str] | None) -> dict[str, Any]:
    import tomllib

    options: dict[str, Any] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--data-option {item}: give KEY=VALUE")
        try:
            options[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            options[key.strip()] = value
    return options


def _is_dataset(text: str) -> bool:
    """Whether a side names a dataset rather than a file or folder."""
    return not Path(text).expanduser().exists()


@app.command()
@handled
def fid(
    path1: Annotated[str, typer.Argument(help="The samples: " + SourceHelp)],
    path2: Annotated[str, typer.Argument(help="The reference: " + SourceHelp)],
    metrics: Annotated[
        str,
        typer.Option(
            "--metrics",
            help="Comma-separated metrics (fid, kid, precision-recall, density-coverage...); "
            "a .npz side allows fid only.",
        ),
    ] = "fid",
    extractor: Annotated[str, typer.Option("--extractor", help=EXTRACTOR_HELP)] = "inception-v3",
    split: SplitOption = None,
    data_option: DataOption = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 50,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    resize: ResizeOption = None,
    precision: PrecisionOption = None,
    cache: CacheOption = True,
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
    """FID (and other metrics) between two folders, datasets or .npz statistics.

    Like pytorch-fid's ``dir1 dir2``: ``ganzoo fid samples/ mnist --split test``. Rounding
    noise below zero is printed as 0; ``--json`` gives the raw value as ``fid_raw``.
    """
    from ganzoo.compare import compare, open_side
    from ganzoo.extractors import check_extractor

    check_extractor(extractor)
    options = _data_options(data_option)
    sides = [
        open_side(
            text, split=split if _is_dataset(text) else None,
            data_options=options if _is_dataset(text) else None, data_dir=data_dir,
            skip_unreadable=skip_unreadable,
        )
        for text in (path1, path2)
    ]  # fmt: skip
    if (split is not None or options) and not any(s.dataset is not None for s in sides):
        raise UsageError("--split and --data-option apply to a dataset side; neither side is one")
    result = compare(
        sides, _metric_names(metrics) or ("fid",), extractor=extractor,
        extractor_params=extractor_params(resize, precision), device=device,
        batch_size=batch_size, data_dir=data_dir, inception_weights=inception_weights,
        cache=cache, report=report,
    )  # fmt: skip
    if as_json:
        fid_raw = result.metrics.get("fid", {}).get("fid_raw")
        data: dict[str, Any] = {**result.scores, "scores": result.scores, "metrics": result.metrics,
                                "protocols": result.protocols}  # fmt: skip
        if "fid" in result.metrics:
            data["fid_raw"] = fid_raw
        print_json(data)
        return
    for key, value in result.scores.items():
        label = "FID" if key == "fid" else key
        console.print(f"{label}: {value:.6f}", markup=False)
    for text, protocol in zip((path1, path2), result.protocols, strict=True):
        console.print(f"{text}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)


@app.command()
@handled
def stats(
    source: Annotated[
        str | None,
        typer.Argument(help="A dataset name or an image folder.", autocompletion=complete_dataset),
    ] = None,
    out: Annotated[str | None, typer.Option("--out", "-o", help="The .npz to write.")] = None,
    split: SplitOption = None,
    data_option: DataOption = None,
    extractor: Annotated[str, typer.Option("--extractor", help=EXTRACTOR_HELP)] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 250,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    resize: ResizeOption = None,
    precision: PrecisionOption = None,
    cache: CacheOption = True,
    list_cache: Annotated[
        bool, typer.Option("--list", help="List the feature cache's files and exit.")
    ] = False,
    clear_cache: Annotated[
        bool, typer.Option("--clear", help="Delete the feature cache's files and exit.")
    ] = False,
) -> None:
    """Feature statistics (mu, sigma) of a dataset or image folder into a pytorch-fid .npz.

    ``--list`` and ``--clear`` manage the cache of reference features that ``ganzoo eval``,
    ``fid`` and ``stats`` share (under $GANZOO_CACHE_DIR/features).
    """
    from ganzoo.refcache import FeatureCache

    if list_cache or clear_cache:
        if source is not None or out is not None:
            raise UsageError("--list and --clear take no SOURCE or --out")
        feature_cache = FeatureCache()
        if clear_cache:
            count = feature_cache.clear()
            console.print(f"removed {count} cached feature files from {feature_cache.root}")
            return
        _print_cache(feature_cache)
        return
    if source is None or out is None:
        raise UsageError("give a dataset or folder and --out FILE.npz (or --list / --clear)")
    from ganzoo.compare import open_side, side_statistics
    from ganzoo.extractors import check_extractor

    check_extractor(extractor)
    side = open_side(
        source, split=split, data_options=_data_options(data_option), data_dir=data_dir
    )
    protocol = side_statistics(
        side, out, extractor=extractor, extractor_params=extractor_params(resize, precision),
        device=device, batch_size=batch_size, data_dir=data_dir,
        inception_weights=inception_weights, cache=cache, report=report,
    )  # fmt: skip
    console.print(f"{out}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)


def _print_cache(feature_cache: Any) -> None:
    entries = feature_cache.entries()
    if not entries:
        console.print(f"the feature cache is empty ({feature_cache.root})")
        return
    table = Table(title=f"cached reference features in {feature_cache.root}",
                  title_justify="left", title_style="bold")  # fmt: skip
    for column in ("file", "reference and extractor", "samples", "MiB", "created"):
        table.add_column(column, justify="right" if column in ("samples", "MiB") else "left")
    for entry in entries:
        if isinstance(entry, Path):
            add_row(table, entry.name, "unreadable (recomputed when next needed)", "-", "-", "-")
            continue
        add_row(table, entry.path.name, entry.describe(), f"{entry.num_samples:,}",
                f"{entry.size_bytes / 2**20:.1f}", entry.created)  # fmt: skip
    console.print(table)
