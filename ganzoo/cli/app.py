"""The command-line application: the Typer app, error reporting and the shared options.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or recipe, 3 plugin failure. No traceback
is shown unless ``--debug`` (or ``GANZOO_DEBUG=1``). Nothing here imports torch, so that
listing and shell completion stay fast.
"""

from __future__ import annotations

import functools
import json
import sys
import traceback
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ganzoo import __version__
from ganzoo.errors import GanzooError, RecipeError
from ganzoo.progress import Reporter
from ganzoo.registry import installed_names

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


def show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """Print a warning as one yellow line on stderr (``warnings.showwarning``)."""
    console_err.print(f"warning: {message}", style="yellow", markup=False, soft_wrap=True)


def _fail(exc: GanzooError) -> NoReturn:
    """Print ``exc`` (after the traceback being handled, under ``--debug``) and exit."""
    if _DEBUG["on"]:
        traceback.print_exc()
    lines = exc.lines if isinstance(exc, RecipeError) else [f"error: {exc}"]
    for line in lines:
        console_err.print(line, style="red", markup=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code) from None


def _plugin_failure(exc: Exception) -> GanzooError | None:
    """``exc`` as the failure of the plugin component it was raised in, if it was."""
    if "ganzoo.api" not in sys.modules:  # no component was loaded, so none is to blame
        return None
    from ganzoo.contract import blame

    return blame(exc)


def handled(func: F) -> F:
    """Report ganzoo errors as readable lines with their exit codes; hide tracebacks.

    An exception raised inside a plugin's component is reported as that plugin's failure.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GanzooError as exc:
            _fail(exc)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt:
            console_err.print("interrupted", style="red")
            raise typer.Exit(130) from None
        except Exception as exc:
            blamed = _plugin_failure(exc)
            if blamed is not None:
                _fail(blamed)
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


def complete_kind(incomplete: str) -> list[str]:
    """Kind names (plural and singular) that start with ``incomplete``."""
    from ganzoo.registry import KINDS

    names = [*KINDS, *(k.singular for k in KINDS.values())]
    return [n for n in names if n.startswith(incomplete)]


def complete_name(ctx: typer.Context, incomplete: str) -> list[str]:
    """Names of the command's kind that start with ``incomplete``."""
    from ganzoo.registry import registry

    try:
        names = registry(ctx.params.get("kind") or "").names()
    except GanzooError:
        return []
    return [n for n in names if n.startswith(incomplete)]


def complete_dataset(incomplete: str) -> list[str]:
    """Dataset names that start with ``incomplete``."""
    return [n for n in installed_names("datasets") if n.startswith(incomplete)]


def complete_recipe(incomplete: str) -> list[str]:
    """Installed recipe names that start with ``incomplete``."""
    return [n for n in installed_names("recipes") if n.startswith(incomplete)]


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
        help="A recipe file, or the name of an installed recipe (ganzoo list recipes).",
        autocompletion=complete_recipe,
    ),
]


def add_row(table: Table, *cells: str, style: str = "") -> None:
    """Add a row of plain text (no rich markup is read from the cells)."""
    table.add_row(
        *(Text(cell, style=style if i == len(cells) - 1 else "") for i, cell in enumerate(cells))
    )


DeviceOption = Annotated[
    str, typer.Option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")
]


EXTRACTOR_HELP = (
    "auto (Inception when its weights are available, else the dataset's classifier) or an "
    f"installed extractor, NAME[:ARGUMENT]: {', '.join(installed_names('extractors')) or 'none'} "
    "(ganzoo list extractors)."
)
ExtractorOption = Annotated[str | None, typer.Option("--extractor", help=EXTRACTOR_HELP)]
WeightsOption = Annotated[
    str | None,
    typer.Option(
        "--inception-weights",
        envvar="GANZOO_INCEPTION_WEIGHTS",
        help="pt_inception-2015-12-05-6726825d.pth (default: the torch hub cache).",
    ),
]
ResizeOption = Annotated[
    str | None,
    typer.Option(
        "--resize",
        help="Inception's resize to 299x299: bilinear (pytorch-fid's, the default) or clean "
        "(clean-fid's PIL bicubic). Part of the protocol.",
    ),
]
PrecisionOption = Annotated[
    str | None,
    typer.Option(
        "--precision",
        help="Inception's precision: float32 (the default) or bfloat16 (faster where the "
        "device has native bf16; FID moves slightly). Part of the protocol.",
    ),
]
CacheOption = Annotated[
    bool,
    typer.Option(
        "--cache/--no-cache",
        help="Reuse reference-set features from the feature cache, and store them there "
        "(ganzoo stats --list).",
    ),
]


def extractor_params(resize: str | None, precision: str | None) -> dict[str, str]:
    """The extractor parameters that ``--resize`` and ``--precision`` set (those given)."""
    given = {"resize": resize, "precision": precision}
    return {k: v for k, v in given.items() if v is not None}


DataDirOption = Annotated[
    str | None,
    typer.Option(
        "--data-dir", help="Data folder (default $GANZOO_DATA_DIR or ~/.cache/ganzoo/data)."
    ),
]


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


# Says what a long step is doing, on stderr: a bar per step on a terminal, plain lines otherwise.
report = Reporter()
