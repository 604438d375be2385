"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds everything a run needs to continue bit for bit: the networks, the
optimisers, the generator's moving average, the step, every random-number state and the
data position. ``checkpoints/step_XXXXXXXX.pt`` files are written to a temporary name and
renamed into place; ``checkpoints/last.pt`` is then replaced by a hard link to the newest.
A write that fails (a full disk) leaves neither a partial file nor a moved ``last.pt``.

A checkpoint holds tensors and plain data only. A file that refers to other Python objects
(whose unpickling could run code) is refused without being unpickled, and told apart from
a file that is cut short or damaged.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from ganzoo.errors import CheckpointError
from ganzoo.writes import TEMPORARY, link_or_copy, remove, write_file

FORMAT = 1
LAST = "last.pt"
# opcodes that name a Python object to import (a function to call, a class to build)
_NAMING_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST"}
# what torch.load raises for a file it cannot read (its weights-only unpickler, given bytes
# that are no pickle, fails in many ways)
_UNREADABLE = (
    RuntimeError, EOFError, OSError, ValueError, LookupError, TypeError, AttributeError,
    pickle.UnpicklingError, zipfile.BadZipFile, struct.error,
)  # fmt: skip
# a legacy (non-zip) torch file is a few pickles in a row, then raw tensor data
_LEGACY_PICKLES = 8


def save_checkpoint(folder: Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write ``state`` as ``step_<step>.pt`` and make ``last.pt`` point at it; prune old ones.

    Returns the path of the numbered checkpoint.

    Raises:
        WriteError: a file could not be written; the earlier checkpoints are untouched.

    """
    path = folder / f"step_{step:08d}.pt"
    write_file(path, lambda f: torch.save(state, f))
    link_or_copy(path, folder / LAST)
    for old in list_checkpoints(folder)[:-keep]:
        remove(old)
    return path


def remove_partial_writes(folder: Path) -> None:
    """Delete temporary files that a write cut short (by SIGKILL) left behind."""
    for stale in folder.glob(f".*{TEMPORARY}*"):
        remove(stale)


def list_checkpoints(folder: Path) -> list[Path]:
    """The numbered checkpoints in ``folder``, oldest first."""
    return sorted(folder.glob("step_*.pt"))


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint a resumed run continues from: the newest numbered one, else ``last.pt``.

    A run killed between writing a numbered checkpoint and relinking ``last.pt`` leaves
    ``last.pt`` one checkpoint behind; the numbered file is complete (it was renamed into
    place), so it is the one to take.
    """
    numbered = list_checkpoints(folder)
    if numbered:
        return numbered[-1]
    last = folder / LAST
    return last if last.exists() else None


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only=True``) onto ``device``.

    Raises:
        CheckpointError: the file is missing, truncated, corrupt, refers to Python objects
            beyond tensors and plain data, or is not a ganzoo checkpoint.

    """
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with warnings.catch_warnings():
            # torch warns about a pickle protocol it does not write before it refuses the file
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location=device, weights_only=True)
    except _UNREADABLE as exc:
        if isinstance(exc, pickle.UnpicklingError) and names_python_objects(path):
            raise CheckpointError(
                f"refused to load {path}: it contains executable Python objects; "
                "ganzoo checkpoints never do"
            ) from None
        others = [p.name for p in list_checkpoints(path.parent) if p.resolve() != path.resolve()]
        hint = f" Other checkpoints there: {', '.join(others)}." if others else ""
        detail = f"{type(exc).__name__}: {_detail(exc)}"
        message = f"{path}: truncated or corrupt checkpoint ({detail}).{hint}"
        raise CheckpointError(message) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ganzoo checkpoint (format {FORMAT})")
    return state


def _detail(exc: BaseException) -> str:
    """The first line of a load error, without PyTorch's advice to load with weights_only off.

    torch wraps its weights-only unpickler's own error (kept as the context) in that advice;
    the unpickler's words are what tell a damaged file's story.
    """
    if isinstance(exc, pickle.UnpicklingError) and exc.__context__ is not None:
        exc = exc.__context__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    kept = [line for line in lines if "weights_only" not in line]
    return kept[0].split(" Please use ")[0] if kept else "no detail"


def names_python_objects(path: Path) -> bool:
    """Whether ``path`` holds a whole pickle that names Python objects to import.

    The file is read, never unpickled: :mod:`pickletools` walks the opcodes. A file cut
    short or damaged fails the walk (or, for a torch zip archive, its checksums), so a
    weights-only refusal of a file for which this is true was a refusal of what it holds:
    a checkpoint, which holds tensors and plain data only, is then not what it claims.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if archive.testzip() is not None:
                    return False
                pickles = [archive.read(n) for n in archive.namelist() if n.endswith(".pkl")]
            return any(_names_objects(io.BytesIO(data)) for data in pickles)
        with open(path, "rb") as f:
            return any(_legacy_pickles(f))
    except (OSError, zipfile.BadZipFile, RuntimeError):
        return False


def _legacy_pickles(stream: IO[bytes]) -> Iterator[bool]:
    """For each whole pickle at the start of ``stream``: whether it names Python objects."""
    for _ in range(_LEGACY_PICKLES):
        found = _names_objects(stream)
        if found is None:
            return
        yield found


def _names_objects(stream: IO[bytes]) -> bool | None:
    """Whether the pickle at the stream's position names an object; None if it is not whole."""
    found = False
    try:
        for op, _, _ in pickletools.genops(stream):  # to the end: only a whole pickle counts
            found = found or op.name in _NAMING_OPCODES
    except (ValueError, EOFError, struct.error):
        return None
    return found


def rng_state() -> dict[str, Any]:
    """Every global random-number state that training uses (CPU and CUDA)."""
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
