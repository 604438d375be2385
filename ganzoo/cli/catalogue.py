"""Commands that describe what is installed: ``list``, ``show`` and ``plugins``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ganzoo.cli.app import (
    JsonOption,
    add_row,
    app,
    complete_kind,
    complete_name,
    console,
    handled,
    print_json,
)


@app.command("list")
@handled
def list_components(
    kind: Annotated[
        str | None,
        typer.Argument(
            help="generators, discriminators, losses, datasets, metrics, extractors, "
            "augmentations or recipes; all if unset.",
            autocompletion=complete_kind,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List installed components, extractors and recipes with the distribution providing each."""
    from ganzoo.describe import entry_info
    from ganzoo.registry import KINDS, kind_of, registry

    kinds = [kind_of(kind).plural] if kind else list(KINDS)
    rows = {k: [entry_info(e) for e in registry(k)] for k in kinds}
    if as_json:
        print_json(rows if kind is None else rows[kinds[0]])
        return
    for k, entries in rows.items():
        table = Table(title=k, title_justify="left", title_style="bold")
        for column in ("name", "summary", "provided by"):
            table.add_column(column)
        for e in entries:
            add_row(table, e["name"], e["summary"], f"{e['dist']} {e['version']}")
        if not entries:
            add_row(table, "(none installed)", "", "")
        console.print(table)


@app.command()
@handled
def show(
    kind: Annotated[
        str, typer.Argument(help="The kind: loss, generator...", autocompletion=complete_kind)
    ],
    name: Annotated[str, typer.Argument(help="The component.", autocompletion=complete_name)],
    as_json: JsonOption = False,
) -> None:
    """Show a component's documentation and parameters (types, defaults, descriptions)."""
    from ganzoo.describe import component_info

    info = component_info(kind, name)
    if as_json:
        print_json(info)
        return
    console.print(f"[bold]{info['kind']} {info['name']}[/bold]  ({info['dist']} {info['version']})")
    console.print(info["doc"], markup=False)
    console.print()
    if "path" in info:
        console.print(f"file: {info['path']}", markup=False, soft_wrap=True)
        return
    table = Table(title="parameters", title_justify="left", title_style="bold")
    for column in ("name", "type", "default", "description"):
        table.add_column(column)
    for p in info["params"]:
        default = "(required)" if p["required"] else json.dumps(p["default"])
        add_row(table, p["name"], p["type"], default, p["description"])
    if not info["params"]:
        add_row(table, "(none)", "", "", "")
    console.print(table)
    if "sizes" in info:
        sizes = Table(title="sizes (default parameters)", title_justify="left", title_style="bold")
        for column in ("data shape", "output shape", "parameters"):
            sizes.add_column(column, justify="right" if column == "parameters" else "left")
        for row in info["sizes"]:
            add_row(
                sizes,
                "x".join(map(str, row["data_shape"])),
                "(" + ", ".join(map(str, row["output_shape"])) + ")",
                f"{row['parameters']:,}",
            )
        console.print(sizes)
    if "uses_discriminator" in info:
        uses = "yes" if info["uses_discriminator"] else "no"
        labels = "; reads class labels" if info["uses_labels"] else ""
        console.print(
            f"uses a discriminator: {uses}; "
            f"discriminator steps per generator step: {info['default_d_steps']}{labels}"
        )
    if info.get("argument"):
        console.print(f"usage: --extractor {info['name']}[:{info['argument']}]", markup=False)


@app.command()
@handled
def plugins(as_json: JsonOption = False) -> None:
    """Show the distributions that provide entries (components, recipes...) and load errors."""
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
        print_json(rows)
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
            add_row(table, e["kind"], e["name"], e["value"], status, style=style)
        console.print(table)
    if not rows:
        console.print("no plugins installed")
