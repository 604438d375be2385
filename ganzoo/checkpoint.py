"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint holds everything a run needs to continue bit for bit: the networks, the
optimisers, the generator's moving average, the step, every random-number state and the
data position. ``checkpoints/step_XXXXXXXX.pt`` files are written to a temporary name and
renamed into place; ``checkpoints/last.pt`` is then replaced by a hard link to the newest.
"""

from __future__ import annotations

import os
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from ganzoo.errors import CheckpointError

FORMAT = 1
LAST = "last.pt"


def _write_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(folder: Path, state: dict[str, Any], step: int, keep: int) -> Path:
    """Write ``state`` as ``step_<step>.pt`` and make ``last.pt`` point at it; prune old ones.

    Returns the path of the numbered checkpoint.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{step:08d}.pt"
    _write_atomically(path, lambda tmp: torch.save(state, tmp))

    def link(tmp: Path) -> None:
        try:
            os.link(path, tmp)
        except OSError:  # file systems without hard links get a copy
            shutil.copy2(path, tmp)

    _write_atomically(folder / LAST, link)
    for old in sorted(folder.glob("step_*.pt"))[:-keep]:
        old.unlink()
    return path


def remove_partial_writes(folder: Path) -> None:
    """Delete temporary files that a write cut short (by SIGKILL) left behind."""
    for stale in folder.glob(".*.tmp-*"):
        stale.unlink()


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
        CheckpointError: the file is missing, truncated, corrupt, or not a ganzoo checkpoint.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError,
            zipfile.BadZipFile) as exc:  # fmt: skip
        others = [p.name for p in list_checkpoints(path.parent) if p.resolve() != path.resolve()]
        hint = f" Other checkpoints there: {', '.join(others)}." if others else ""
        raise CheckpointError(
            f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}).{hint}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a ganzoo checkpoint (format {FORMAT})")
    return state


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
