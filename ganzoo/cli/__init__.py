"""The ``ganzoo`` command line: a thin shell that parses, calls the library and prints.

The commands live in :mod:`ganzoo.cli.catalogue` (list, show, plugins),
:mod:`ganzoo.cli.training` (validate, run, sample), :mod:`ganzoo.cli.scoring` (eval, fid,
stats) and :mod:`ganzoo.cli.leaderboard` (bench), all on the one Typer app of
:mod:`ganzoo.cli.app`. Nothing here imports torch.
"""

from __future__ import annotations

import warnings

from ganzoo.cli import catalogue, leaderboard, scoring, training
from ganzoo.cli.app import app, show_warning

__all__ = ["app", "catalogue", "leaderboard", "main", "scoring", "training"]


def main() -> None:
    """Run the ``ganzoo`` command line."""
    warnings.showwarning = show_warning
    app()
