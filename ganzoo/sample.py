"""Sampling from a trained run: grids of samples and latent-space interpolations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo.device import resolve_device
from ganzoo.errors import UsageError
from ganzoo.options import SampleOptions, with_settings
from ganzoo.plots import save_image_grid, save_samples
from ganzoo.runs import RunFolder


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` (K,)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]
    t = t[None, :, None]
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin


@torch.no_grad()
def sample_run(run_dir: str | Path, options: SampleOptions | None = None, **settings: Any) -> Path:
    """Save a grid of ``n`` samples (or ``n`` interpolation rows of ``steps``) as a PNG.

    ``options`` (or its fields as keywords) say how many, from which seed and checkpoint, and
    where to; returns the PNG's path.
    """
    options = with_settings(SampleOptions, options, settings)
    folder = RunFolder.open(run_dir)
    trained = folder.load_generator(options.checkpoint, resolve_device(options.device))
    generator, spec, step = trained.generator, trained.spec, trained.step
    rng = torch.Generator().manual_seed(options.seed)
    dev = next(generator.parameters()).device
    kind = "interpolation" if options.interpolate else "samples"
    path = options.out or folder.sample_file(kind, step, options.seed)
    if not options.interpolate:
        z = generator.sample_latent(options.n, generator=rng).to(dev)
        save_samples(generator(z).float().cpu(), spec, path)
        return path
    if not spec.is_image:
        raise UsageError("interpolation grids need image data")
    n, steps = options.n, options.steps
    ends = generator.sample_latent(2 * n, generator=rng)
    flat = ends.reshape(2 * n, -1)
    path_z = slerp(flat[:n], flat[n:], torch.linspace(0, 1, steps))
    path_z = path_z.reshape(n * steps, *ends.shape[1:])
    save_image_grid(generator(path_z.to(dev)).float().cpu(), path, nrow=steps)
    return path
