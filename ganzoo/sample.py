"""Sampling from a trained run: grids of samples and latent-space interpolations.

For a class-conditional run a grid has one row per class (labelled with the class names where
the dataset knows them, the same latent vector down each column), or draws one class only
(``label``); an interpolation keeps each row's class fixed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.api import DataSpec, Generator
from ganzoo.device import resolve_device
from ganzoo.errors import UsageError
from ganzoo.options import SampleOptions, with_settings
from ganzoo.plots import class_labels, save_class_grid, save_image_grid, save_samples
from ganzoo.runs import RunFolder


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` (K,)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]
    t = t[None, :, None]
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin


def class_index(label: int | str, spec: DataSpec, conditional: bool) -> int:
    """The class ``label`` names (an index, or a class name), checked against the spec.

    Raises:
        UsageError: the run is not conditional, or there is no such class.

    """
    if not conditional:
        raise UsageError(f"--class {label}: this run's generator is not class-conditional")
    labels = class_labels(spec)
    text = str(label)
    if text.isdigit() and int(text) < spec.num_classes:
        return int(text)
    if text in labels:
        return labels.index(text)
    names = labels != [str(i) for i in range(spec.num_classes)]
    named = f", or a name: {', '.join(labels)}" if names else ""
    raise UsageError(f"--class {label}: choose a class from 0 to {spec.num_classes - 1}{named}")


def _generate(generator: Generator, z: Tensor, labels: Tensor | None) -> Tensor:
    dev = next(generator.parameters()).device
    out = generator(z.to(dev)) if labels is None else generator(z.to(dev), labels.to(dev))
    return out.float().cpu()


@torch.no_grad()
def sample_run(run_dir: str | Path, options: SampleOptions | None = None, **settings: Any) -> Path:
    """Save a grid of ``n`` samples (or ``n`` interpolation rows of ``steps``) as a PNG.

    ``options`` (or its fields as keywords) say how many, of which class, from which seed and
    checkpoint, and where to; returns the PNG's path.
    """
    options = with_settings(SampleOptions, options, settings)
    folder = RunFolder.open(run_dir)
    trained = folder.load_generator(options.checkpoint, resolve_device(options.device))
    generator, spec, step = trained.generator, trained.spec, trained.step
    classes = generator.num_classes
    label = None if options.label is None else class_index(options.label, spec, classes > 0)
    rng = torch.Generator().manual_seed(options.seed)
    kind = "interpolation" if options.interpolate else "samples"
    if label is not None:
        kind += f"_class{label}"
    path = options.out or folder.sample_file(kind, step, options.seed)
    if options.interpolate:
        _interpolation(generator, spec, options, rng, label, path)
        return path
    n = options.n
    if not classes:
        save_samples(
            _generate(generator, generator.sample_latent(n, generator=rng), None), spec, path
        )
    elif label is not None:
        z = generator.sample_latent(n, generator=rng)
        images = _generate(generator, z, torch.full((n,), label))
        save_samples(images, spec, path)
    else:
        columns = max(1, n // classes)
        z = generator.sample_latent(columns, generator=rng)
        z = z.repeat(classes, *[1] * (z.dim() - 1))
        labels = torch.arange(classes).repeat_interleave(columns)
        save_class_grid(_generate(generator, z, labels), path, columns, class_labels(spec))
    return path


def _interpolation(
    generator: Generator,
    spec: DataSpec,
    options: SampleOptions,
    rng: torch.Generator,
    label: int | None,
    path: Path,
) -> None:
    """Rows of latent interpolations; a conditional row keeps one class (``label``, or cycling)."""
    if not spec.is_image:
        raise UsageError("interpolation grids need image data")
    n, steps = options.n, options.steps
    ends = generator.sample_latent(2 * n, generator=rng)
    flat = ends.reshape(2 * n, -1)
    path_z = slerp(flat[:n], flat[n:], torch.linspace(0, 1, steps))
    path_z = path_z.reshape(n * steps, *ends.shape[1:])
    labels = None
    if generator.num_classes:
        rows = (
            torch.full((n,), label)
            if label is not None
            else torch.arange(n) % generator.num_classes
        )
        labels = rows.repeat_interleave(steps)
    save_image_grid(_generate(generator, path_z, labels), path, nrow=steps)
