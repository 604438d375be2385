"""The ``ganzoo`` command line: a thin shell that parses, calls the library and prints.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or recipe, 3 plugin failure. No traceback
is shown unless ``--debug`` (or ``GANZOO_DEBUG=1``). This module does not import torch, so
that listing and shell completion stay fast.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
import warnings
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ganzoo import __version__
from ganzoo.errors import GanzooError, RecipeError

app = typer.Typer(
    name="ganzoo",
    help="ganzoo: a plugin-based GAN zoo. Recipes in, trained and evaluated GANs out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 4096, highlight=False)


console = _console()
console_err = _console(stderr=True)
_DEBUG = {"on": False}
F = TypeVar("F", bound=Callable[..., Any])


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    console_err.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)


def _handled(func: F) -> F:
    """Report ganzoo errors as readable lines with their exit codes; hide tracebacks."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GanzooError as exc:
            if _DEBUG["on"]:
                traceback.print_exc()
            lines = exc.lines if isinstance(exc, RecipeError) else [f"error: {exc}"]
            for line in lines:
                console_err.print(line, style="red", markup=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            console_err.print("interrupted", style="red")
            raise typer.Exit(130) from None
        except Exception as exc:
            if _DEBUG["on"]:
                raise
            console_err.print(
                f"error: internal error: {type(exc).__name__}: {exc} "
                "(run again with --debug for the traceback)",
                style="red",
                markup=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"ganzoo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="GANZOO_DEBUG", help="Show tracebacks of errors.")
    ] = False,
) -> None:
    """ganzoo: a plugin-based GAN zoo. Recipes in, trained and evaluated GANs out."""
    _DEBUG["on"] = debug


def _complete_kind(incomplete: str) -> list[str]:
    from ganzoo.registry import KINDS

    names = [*KINDS, *(k.singular for k in KINDS.values()), "recipes"]
    return [n for n in names if n.startswith(incomplete)]


def _complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    from ganzoo.registry import registry

    try:
        names = registry(ctx.params.get("kind") or "").names()
    except GanzooError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def _complete_dataset(incomplete: str) -> list[str]:
    from ganzoo.registry import registry

    return [n for n in registry("datasets").names() if n.startswith(incomplete)]


def _complete_recipe(incomplete: str) -> list[str]:
    from ganzoo.recipe import bundled_recipes

    return [n for n in bundled_recipes() if n.startswith(incomplete)]


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a recipe value: KEY.PATH=VALUE, VALUE in TOML (repeatable).",
        metavar="KEY.PATH=VALUE",
    ),
]
RecipeArgument = Annotated[
    str,
    typer.Argument(
        help="A recipe file, or the name of a bundled recipe.", autocompletion=_complete_recipe
    ),
]


def _add_row(table: Table, *cells: str, style: str = "") -> None:
    """Add a row of plain text (no rich markup is read from the cells)."""
    table.add_row(
        *(Text(cell, style=style if i == len(cells) - 1 else "") for i, cell in enumerate(cells))
    )


DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")
]


ExtractorOption = Annotated[
    str | None,
    typer.Option(
        "--extractor",
        help="inception-v3, classifier[:DATASET] or auto (Inception when its weights are "
        "available, else the dataset's classifier).",
    ),
]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--inception-weights",
        envvar="GANZOO_INCEPTION_WEIGHTS",
        help="pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache).",
    ),
]
DataDirOption = Annotated[
    str | None,
    typer.Option(
        "--data-dir", help="Data folder (default $GANZOO_DATA_DIR or ~/.cache/ganzoo/data)."
    ),
]


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command("list")
@_handled
def list_components(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="generators, discriminators, losses, datasets, metrics or recipes; all if unset.",
            autocompletion=_complete_kind,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List installed components (or bundled recipes) with the distribution providing each."""
    from ganzoo.describe import entry_info
    from ganzoo.registry import KINDS, kind_of, registry

    if kind == "recipes":
        _list_recipes(as_json)
        return
    kinds = [kind_of(kind).plural] if kind else list(KINDS)
    rows = {k: [entry_info(e) for e in registry(k)] for k in kinds}
    if as_json:
        _print_json(rows if kind is None else rows[kinds[0]])
        return
    for k, entries in rows.items():
        table = Table(title=k, title_justify="left", title_style="bold")
        for column in ("name", "summary", "provided by"):
            table.add_column(column)
        for e in entries:
            _add_row(table, e["name"], e["summary"], f"{e['dist']} {e['version']}")
        if not entries:
            _add_row(table, "(none installed)", "", "")
        console.print(table)


def _list_recipes(as_json: bool) -> None:
    from ganzoo.recipe import bundled_recipes

    rows = []
    for name, path in bundled_recipes().items():
        first = path.read_text().splitlines()[:1]
        summary = first[0].lstrip("#").strip() if first and first[0].startswith("#") else ""
        rows.append({"name": name, "summary": summary, "path": str(path)})
    if as_json:
        _print_json(rows)
        return
    table = Table(title="bundled recipes", title_justify="left", title_style="bold")
    table.add_column("name")
    table.add_column("summary")
    for row in rows:
        _add_row(table, row["name"], row["summary"])
    console.print(table)


@app.command()
@_handled
def show(
    kind: Annotated[
        str, typer.Argument(help="The kind: loss, generator...", autocompletion=_complete_kind)
    ],
    name: Annotated[str, typer.Argument(help="The component.", autocompletion=_complete_name)],
    as_json: JsonOption = False,
) -> None:
    """Show a component's documentation and parameters (types, defaults, descriptions)."""
    from ganzoo.describe import component_info

    info = component_info(kind, name)
    if as_json:
        _print_json(info)
        return
    console.print(f"[bold]{info['kind']} {info['name']}[/bold]  ({info['dist']} {info['version']})")
    console.print(info["doc"], markup=False)
    console.print()
    table = Table(title="parameters", title_justify="left", title_style="bold")
    for column in ("name", "type", "default", "description"):
        table.add_column(column)
    for p in info["params"]:
        default = "(required)" if p["required"] else json.dumps(p["default"])
        _add_row(table, p["name"], p["type"], default, p["description"])
    if not info["params"]:
        _add_row(table, "(none)", "", "", "")
    console.print(table)
    if "sizes" in info:
        sizes = Table(title="sizes (default parameters)", title_justify="left", title_style="bold")
        for column in ("data shape", "output shape", "parameters"):
            sizes.add_column(column, justify="right" if column == "parameters" else "left")
        for row in info["sizes"]:
            _add_row(
                sizes,
                "x".join(map(str, row["data_shape"])),
                "(" + ", ".join(map(str, row["output_shape"])) + ")",
                f"{row['parameters']:,}",
            )
        console.print(sizes)
    if "uses_discriminator" in info:
        uses = "yes" if info["uses_discriminator"] else "no"
        console.print(
            f"uses a discriminator: {uses}; "
            f"discriminator steps per generator step: {info['default_d_steps']}"
        )


@app.command()
@_handled
def plugins(as_json: JsonOption = False) -> None:
    """Show the distributions that provide components, their entries and load errors."""
    from ganzoo.registry import plugin_distributions

    dists = plugin_distributions(load=True)
    rows = []
    for d in dists:
        entries = []
        for e in d.entries:
            status = "disabled" if d.disabled else ("error" if e.load_error else "ok")
            entries.append(
                {"kind": e.kind.singular, "name": e.name, "value": e.value, "status": status,
                 "error": e.load_error}
            )  # fmt: skip
        for loser, winner in d.shadowed:
            entries.append(
                {"kind": loser.kind.singular, "name": loser.name, "value": loser.value,
                 "status": "shadowed", "error": f"shadowed by {winner.provider}"}
            )  # fmt: skip
        rows.append(
            {"dist": d.name, "version": d.version, "disabled": d.disabled, "entries": entries}
        )
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        title = f"{row['dist']} {row['version']}" + ("  (disabled)" if row["disabled"] else "")
        table = Table(title=title, title_justify="left", title_style="bold")
        for column in ("kind", "name", "entry point", "status"):
            table.add_column(column)
        for e in row["entries"]:
            status = e["status"] + (f": {e['error']}" if e["error"] else "")
            style = {"ok": "green", "disabled": "yellow", "shadowed": "yellow"}.get(
                e["status"], "red"
            )
            _add_row(table, e["kind"], e["name"], e["value"], status, style=style)
        console.print(table)
    if not rows:
        console.print("no plugins installed")


@app.command()
@_handled
def validate(
    recipe: RecipeArgument,
    overrides: SetOption = None,
    print_resolved: Annotated[
        bool, typer.Option("--print", help="Print the resolved recipe (all defaults filled in).")
    ] = False,
) -> None:
    """Check a recipe: its fields, its components' parameters, and that the networks fit."""
    from ganzoo.build import check_networks
    from ganzoo.recipe import load_recipe

    resolved = load_recipe(recipe, overrides or [])
    check_networks(resolved)
    if print_resolved:
        sys.stdout.write(resolved.to_toml())
        return
    parts = ", ".join(f"{s} {c.name}" for s, c in resolved.components.items())
    console.print(f"{resolved.source}: ok ({resolved.name}: {parts})", markup=False)


@app.command()
@_handled
def run(
    recipe: Annotated[
        str | None,
        typer.Argument(
            help="A recipe file or bundled recipe name; default: quickstart (or, with "
            "--resume, the run's own recipe).",
            autocompletion=_complete_recipe,
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
) -> None:
    """Train a recipe into a run folder (samples, checkpoints, metrics, logs)."""
    from ganzoo.errors import UsageError
    from ganzoo.train import run as run_recipe

    if nproc < 1:
        raise UsageError(f"--nproc {nproc}: need at least 1 process")
    if nproc > 1:
        raise typer.Exit(_torchrun(nproc))

    if progress not in ("auto", "bar", "plain", "none"):
        raise UsageError(f"--progress {progress}: choose auto, bar, plain or none")
    if recipe is None and resume is None:
        recipe = "quickstart"
    result = run_recipe(
        recipe,
        overrides=overrides or [],
        out=out,
        device=device,
        resume=resume,
        checkpoint=checkpoint,
        data_dir=data_dir,
        download=download,
        progress=progress,  # type: ignore[arg-type]
        inception_weights=inception_weights,
    )
    from ganzoo.distributed import from_environment

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
        f"done: {result.step} steps in {result.seconds:.1f} s "
        f"({result.images_per_s:,.0f} images/s); run folder: {result.run_dir}",
        markup=False,
        soft_wrap=True,
    )


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
@_handled
def sample(
    run_dir: Annotated[str, typer.Argument(help="A run folder.")],
    n: Annotated[int, typer.Option("--n", help="Samples (or interpolation rows).")] = 64,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the latent draw.")] = 0,
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
) -> None:
    """Draw samples (or a latent interpolation grid) from a trained run's generator."""
    from ganzoo.sample import sample_run

    path = sample_run(
        run_dir,
        n=n,
        seed=seed,
        out=out,
        checkpoint=checkpoint,
        interpolate=interpolate,
        steps=steps,
        device=device,
    )
    sys.stdout.write(f"{path}\n")


def _report(message: str) -> None:
    console_err.print(message, markup=False, soft_wrap=True)


@app.command("eval")
@_handled
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
    from ganzoo.evaluate import evaluate_run, format_score, protocol_differences

    names = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
    reports = [
        evaluate_run(
            run_dir, metrics=names, extractor=extractor, num_samples=num_samples,
            reference_split=reference_split, device=device, seed=seed, checkpoint=checkpoint,
            data_dir=data_dir, inception_weights=inception_weights, batch_size=batch_size,
            report=_report,
        )
        for run_dir in run_dirs
    ]  # fmt: skip
    if as_json:
        _print_json([r.to_json() for r in reports])
        return
    keys = list(dict.fromkeys(k for r in reports for k in r.scores))
    table = Table(title="scores", title_justify="left", title_style="bold")
    table.add_column("run")
    for key in keys:
        table.add_column(key, justify="right")
    for run_dir, r in zip(run_dirs, reports, strict=True):
        cells = [format_score(r.scores[k]) if k in r.scores else "-" for k in keys]
        _add_row(table, run_dir, *cells)
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
@_handled
def fid(
    path1: Annotated[str, typer.Argument(help="A folder of images or a .npz of statistics.")],
    path2: Annotated[str, typer.Argument(help="A folder of images or a .npz of statistics.")],
    extractor: Annotated[
        str,
        typer.Option("--extractor", help="inception-v3 (as pytorch-fid) or classifier:DATASET."),
    ] = "inception-v3",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 50,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
    as_json: JsonOption = False,
) -> None:
    """FID between two folders of images or .npz statistics, as pytorch-fid computes it."""
    from ganzoo.evaluate import fid_between

    value, protocols = fid_between(
        path1, path2, extractor=extractor, device=device, batch_size=batch_size,
        data_dir=data_dir, inception_weights=inception_weights,
    )  # fmt: skip
    if as_json:
        _print_json({"fid": value, "protocols": protocols})
        return
    console.print(f"FID: {value:.6f}", markup=False)
    for path, protocol in zip((path1, path2), protocols, strict=True):
        console.print(f"{path}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)


@app.command()
@_handled
def stats(
    dataset: Annotated[
        str, typer.Argument(help="A dataset name.", autocompletion=_complete_dataset)
    ],
    out: Annotated[str, typer.Option("--out", "-o", help="The .npz to write.")],
    split: Annotated[str | None, typer.Option("--split", help="train or test.")] = None,
    extractor: Annotated[
        str, typer.Option("--extractor", help="auto, inception-v3 or classifier[:DATASET].")
    ] = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 250,
    device: DeviceOption = "auto",
    data_dir: DataDirOption = None,
    inception_weights: WeightsOption = None,
) -> None:
    """Precompute a dataset's feature statistics (mu, sigma) into a pytorch-fid .npz."""
    from ganzoo.evaluate import dataset_statistics

    protocol = dataset_statistics(
        dataset, out, split=split, extractor=extractor, device=device, batch_size=batch_size,
        data_dir=data_dir, inception_weights=inception_weights, report=_report,
    )  # fmt: skip
    console.print(f"{out}: " + json.dumps(protocol, default=str), markup=False, soft_wrap=True)


def main() -> None:
    """Run the ``ganzoo`` command line."""
    warnings.showwarning = _show_warning
    app()
