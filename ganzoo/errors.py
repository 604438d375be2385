"""The errors ganzoo reports to users, each with the exit code the CLI gives it.

A :class:`GanzooError` carries a message meant to be read as it is: the CLI prints it on
one line (or several, for a list of recipe errors) with no traceback unless ``--debug``.
"""

from __future__ import annotations

import difflib


def did_you_mean(name: str, choices: list[str]) -> str:
    """``"; did you mean 'x'?"`` for the choice closest to ``name``, or ``""`` if none is close."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or [
        c
        for c in choices
        if min(len(c), len(name)) >= 3 and (c.startswith(name) or name.startswith(c))
    ]
    return f"; did you mean {close[0]!r}?" if close else ""


class GanzooError(Exception):
    """Base of every error ganzoo reports to a user; exit code 1 (a runtime failure)."""

    exit_code = 1


class UsageError(GanzooError):
    """A command was called wrongly (bad option value, missing file); exit code 2."""

    exit_code = 2


class RecipeError(UsageError):
    """A recipe failed to parse or validate; holds one readable line per problem."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)


class UnknownComponentError(UsageError):
    """A name that no installed plugin provides."""


class PluginError(GanzooError):
    """A plugin's component could not be loaded or broke the contract; exit code 3."""

    exit_code = 3


class ComponentConfigError(GanzooError):
    """A component refuses its parameters or the data it is given (e.g. an unsupported size).

    Components raise it from ``__init__``; ganzoo reports it against the recipe section.
    """

    exit_code = 2


class DataError(GanzooError):
    """Data files are missing or unreadable; the message says which and where to put them."""


class CheckpointError(GanzooError):
    """A checkpoint is missing, corrupt or does not match the run."""


class DivergenceError(GanzooError):
    """A loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class WriteError(GanzooError):
    """A file could not be written (disk full, quota, read-only, no permission); exit code 1.

    The message names the path and the error in words; during a run it also says what was
    kept (the newest checkpoint and its step).
    """


class FolderInUseError(GanzooError):
    """Another process writes the run folder; exit code 1. The message names that process."""
