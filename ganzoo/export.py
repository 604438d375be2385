"""Exporting a run's samples as image files: one PNG each, the very samples ``ganzoo eval`` scores.

The samples are :class:`~ganzoo.sources.GeneratorSamples` drawn as the evaluation draws them
(the recipe's ``[eval]`` seed and batch size unless told otherwise, and for a conditional run
its labels), quantised to 8 bits as the evaluation quantises them, so that another tool's FID
of the folder is the evaluation's FID. Files are named by index, ``000000.png`` on.

The folder holds ``export.json``, the manifest (which run, checkpoint, seed, class, batch size
and how many samples), written before any image. An export that was interrupted resumes: a
file that is there is whole (each is written under a temporary name and renamed), batches whose
files are all there are not generated again, and the others are completed. An export may grow
(``n`` 100, then 200 adds files 100 to 199); a call that would draw other samples (another run,
checkpoint, seed, class or batch size) is refused. While an export writes its folder it holds
the folder's lock (``.lock``).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo import __version__
from ganzoo.api import from_model_space
from ganzoo.build import build_dataset
from ganzoo.device import resolve_device
from ganzoo.errors import FolderInUseError, UsageError
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.plots import class_labels
from ganzoo.progress import ReportTo, Task, track
from ganzoo.recipe import Recipe
from ganzoo.runs import RunFolder
from ganzoo.sample import class_index
from ganzoo.sources import GeneratorSamples, conditioning_labels
from ganzoo.writes import (
    TEMPORARY,
    WriterLock,
    make_folder,
    remove,
    write_many,
    write_text,
)

MANIFEST = "export.json"
LABELS = "labels.csv"
LOCK = ".lock"
# manifest fields that decide which samples the files hold: a second call must agree on them
SAME_SAMPLES = ("run", "step", "generator", "seed", "class", "batch_size")


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_samples` did.

    Attributes:
        folder: the folder of the PNG files.
        n: the samples it holds, files ``0`` to ``n - 1``.
        written: the files this call wrote.
        present: the files that were there already, whole, and were kept.
        step: the checkpoint's training step.
        seed: the seed of the latent draw.
        batch_size: the generator's batch size (the samples depend on it).
        label: the one class drawn, or None (an unconditional run, or the evaluation's labels).

    """

    folder: Path
    n: int
    written: int
    present: int
    step: int
    seed: int
    batch_size: int
    label: int | None

    def summary(self) -> str:
        """One line: how many files were written, how many were there, and where."""
        return (
            f"{self.n:,} samples of step {self.step} (seed {self.seed}) in {self.folder}: "
            f"{self.written:,} written, {self.present:,} already there"
        )


def file_names(n: int) -> list[str]:
    """The names of ``n`` exported samples: zero-padded indices, at least 6 digits."""
    width = _digits(n)
    return [f"{i:0{width}d}.png" for i in range(n)]


def _digits(n: int) -> int:
    return max(6, len(str(n - 1)))


def export_samples(
    run_dir: str | Path,
    out_dir: str | Path,
    n: int | None = None,
    *,
    seed: int | None = None,
    checkpoint: str | None = None,
    label: int | str | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    data_dir: str | Path | None = None,
    report: ReportTo = None,
) -> ExportResult:
    """Write ``n`` samples of a run's generator into ``out_dir``, one PNG each, resumably.

    ``n``, ``seed`` and ``batch_size`` default to the recipe's ``[eval]`` ``num_samples``,
    ``seed`` and ``batch_size``: the files are then the samples ``ganzoo eval`` scores. A
    conditional run draws ``label`` only (an index or a class name), or else the evaluation's
    labels (uniform, or as often as in the data with ``train.fake_labels = "data"``, which reads
    the dataset's labels from ``data_dir``), listed in ``labels.csv``. Progress is shown on
    ``report``.

    Raises:
        UsageError: the run's samples are not images, a bad ``n``, ``batch_size`` or class,
            or ``out_dir`` holds other files or another export (the message names the field).
        FolderInUseError: another process is exporting into ``out_dir``.
        DataError: the dataset's labels are needed and cannot be read.
        WriteError: a file cannot be written.

    """
    folder = RunFolder.open(run_dir)
    torch_device = resolve_device(device)
    trained = folder.load_generator(checkpoint, torch_device)
    generator, spec, recipe = trained.generator, trained.spec, trained.recipe
    if not spec.is_image or spec.channels not in (1, 3):
        raise UsageError(
            f"{folder.root}: its samples have shape {spec.shape}, not grey or RGB images; "
            "--export writes image files (ganzoo sample draws a scatter plot of points)"
        )
    config = recipe.shell.eval
    n = config.num_samples if n is None else n
    seed = config.seed if seed is None else seed
    batch_size = config.batch_size if batch_size is None else batch_size
    if n <= 0 or batch_size <= 0:
        raise UsageError(f"--n {n}, --batch-size {batch_size}: both must be positive")
    index = None if label is None else class_index(label, spec, generator.num_classes > 0)
    labels, drawn = None, None
    if generator.num_classes and index is not None:
        labels, drawn = torch.full((n,), index), f"class {index}"
    elif generator.num_classes:
        labels = _evaluation_labels(recipe, n, generator.num_classes, seed, data_dir)
        drawn = f"{recipe.train.fake_labels} over {generator.num_classes} classes, seed {seed} + 1"
    manifest = {
        "run": str(folder.root.resolve()),
        "checkpoint": folder.checkpoint(checkpoint).name,
        "step": trained.step,
        "generator": "ema" if trained.ema else "generator",
        "seed": seed,
        "class": index,
        "labels": drawn,
        "batch_size": batch_size,
        "n": n,
        "format": "PNG, 8 bits a channel: round((x + 1) * 127.5) of samples x in [-1, 1]",
        "ganzoo": __version__,
    }
    out = make_folder(Path(out_dir), "the export folder")
    lock = WriterLock.try_acquire(out / LOCK)
    if lock is None:
        holder = WriterLock.holder(out / LOCK)
        who = f" (pid {holder['pid']}: {holder.get('command', '')})" if "pid" in holder else ""
        raise FolderInUseError(f"{out} is in use by another export{who}; wait for it to end")
    with lock:
        _prepare(out, manifest)
        names = file_names(n)
        if labels is not None and index is None:
            _write_labels(out / LABELS, names, labels, class_labels(spec))
        samples = GeneratorSamples(generator, n, seed, torch_device, spec, labels)
        intro = f"exporting {n:,} samples of step {trained.step} to {out}"
        with track(report, "exporting samples", n, "images", intro) as task:
            written = _write_images(out, names, samples, batch_size, task)
            task.finish(f"{written:,} written, {n - written:,} already there")
    return ExportResult(out, n, written, n - written, trained.step, seed, batch_size, index)


def _evaluation_labels(
    recipe: Recipe, n: int, num_classes: int, seed: int, data_dir: str | Path | None
) -> Tensor:
    """The labels the evaluation gives a conditional generator's ``n`` samples."""
    counts = None
    if recipe.train.fake_labels == "data":
        data_labels = build_dataset(recipe, resolve_data_dir(_path(data_dir))).labels()
        if data_labels is not None:
            counts = torch.bincount(data_labels, minlength=num_classes)
    return conditioning_labels(n, num_classes, seed, counts)


def _path(value: str | Path | None) -> Path | None:
    return Path(value).expanduser() if value is not None else None


def _prepare(out: Path, manifest: dict[str, Any]) -> None:
    """Check ``out`` against its manifest, drop what the new export replaces, write the manifest.

    A grown export draws its last batch anew when the earlier export's last batch was short
    (a short batch's latents depend on its length), so that batch's files are removed first.
    """
    path = out / MANIFEST
    if not path.is_file():
        if any(p.name != LOCK and TEMPORARY not in p.name for p in out.iterdir()):
            raise UsageError(f"{out} holds files but no {MANIFEST}: export into a new folder")
        _remove_leftovers(out)
        write_text(path, json.dumps(manifest, indent=2) + "\n")
        return
    try:
        there = json.loads(path.read_text(encoding="utf-8"))
        previous = int(there["n"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"{path}: not an export manifest ({type(exc).__name__}: {exc}); export into a new "
            "folder"
        ) from None
    differ = [
        f"{key} {_shown(there.get(key))} there, {_shown(manifest[key])} asked"
        for key in SAME_SAMPLES
        if there.get(key) != manifest[key]
    ]
    if differ:
        raise UsageError(
            f"{out} holds another export ({'; '.join(differ)}): export into another folder"
        )
    _remove_leftovers(out)
    n, batch_size = manifest["n"], manifest["batch_size"]
    if n < previous:
        raise UsageError(
            f"{out} holds {previous:,} samples, more than --n {n:,}: give --n {previous:,} or "
            "more (an export only grows), or export into another folder"
        )
    if n == previous:
        return
    if _digits(n) != _digits(previous):
        raise UsageError(
            f"{out}: {n:,} samples need longer file names than its {previous:,}: export "
            "into another folder"
        )
    short = previous % batch_size
    for name in file_names(previous)[previous - short :]:
        remove(out / name)
    write_text(path, json.dumps({**there, "n": n}, indent=2) + "\n")


def _remove_leftovers(out: Path) -> None:
    """Delete the files a killed export left in the making (under their temporary names)."""
    for leftover in out.glob(f".*{TEMPORARY}*"):
        remove(leftover)


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def _write_labels(path: Path, names: list[str], labels: Tensor, classes: list[str]) -> None:
    """``labels.csv``: each file's conditioning label and its class name."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["file", "label", "class_name"])
    writer.writerows((name, y, classes[y]) for name, y in zip(names, labels.tolist(), strict=True))
    write_text(path, text.getvalue())


def _png(image: Tensor) -> bytes:
    """One uint8 image (C, H, W) as PNG bytes: mode L for grey, RGB for three channels."""
    from PIL import Image

    array = image.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _write_images(
    out: Path, names: list[str], samples: GeneratorSamples, batch_size: int, task: Task
) -> int:
    """Write the files of ``samples`` that are missing, counted on ``task``; return how many.

    A batch whose files are all there is not generated (its latents are still drawn, to keep
    the stream in step).
    """
    there = {p.name for p in out.iterdir()}
    written = present = 0
    for start, z in samples.latents(batch_size):
        batch = names[start : start + len(z)]
        missing = [i for i, name in enumerate(batch) if name not in there]
        if missing:
            images = from_model_space(samples.generate(start, z))
            write_many([(out / batch[i], _png(images[i])) for i in missing])
        written += len(missing)
        present += len(batch) - len(missing)
        task.advance(len(batch), f"{present:,} already there" if present else None)
    return written
