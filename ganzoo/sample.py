"""Sampling from a trained run: grids of samples and latent-space interpolations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ganzoo.api import DataSpec, Generator
from ganzoo.build import build_networks, data_spec
from ganzoo.checkpoint import latest_checkpoint, load_checkpoint
from ganzoo.errors import UsageError
from ganzoo.plots import save_image_grid, save_samples
from ganzoo.recipe import Recipe, load_recipe
from ganzoo.train import resolve_device


@dataclass(frozen=True)
class TrainedGenerator:
    """A run's generator rebuilt from a checkpoint, in eval mode, with what it came from."""

    generator: Generator
    recipe: Recipe
    spec: DataSpec
    step: int
    ema: bool


def load_generator(
    run_dir: str | Path, checkpoint: str | None = None, device: str = "auto"
) -> TrainedGenerator:
    """Rebuild a run's generator (its moving average when it has one) from a checkpoint.

    Needs no data files: the spec comes from the recipe's dataset parameters.
    """
    root = Path(run_dir)
    if not (root / "resolved.toml").is_file():
        raise UsageError(f"{root}: not a run folder (no resolved.toml)")
    recipe = load_recipe(root / "resolved.toml")
    torch_device = resolve_device(device)
    path = (
        root / "checkpoints" / checkpoint if checkpoint else latest_checkpoint(root / "checkpoints")
    )
    if path is None:
        raise UsageError(f"{root}: the run has no checkpoint yet")
    state = load_checkpoint(path, torch_device)
    spec = data_spec(recipe)
    generator = build_networks(recipe, spec, torch_device).generator
    ema = state.get("ema") is not None
    generator.load_state_dict(state["ema"] if ema else state["generator"])
    return TrainedGenerator(generator.eval(), recipe, spec, int(state["step"]), ema)


def slerp(a: Tensor, b: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between rows of ``a`` and ``b`` at fractions ``t`` (K,)."""
    a_n, b_n = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((a_n * b_n).sum(1).clamp(-1 + 1e-7, 1 - 1e-7))[:, None, None]
    t = t[None, :, None]
    sin = torch.sin(omega)
    return (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin


@torch.no_grad()
def sample_run(
    run_dir: str | Path,
    *,
    n: int = 64,
    seed: int = 0,
    out: str | Path | None = None,
    checkpoint: str | None = None,
    interpolate: bool = False,
    steps: int = 10,
    device: str = "auto",
) -> Path:
    """Save a grid of ``n`` samples (or ``n`` interpolation rows of ``steps``) as a PNG."""
    if n <= 0 or steps < 2:
        raise UsageError("--n must be positive and --steps at least 2")
    trained = load_generator(run_dir, checkpoint, device)
    generator, spec, step = trained.generator, trained.spec, trained.step
    rng = torch.Generator().manual_seed(seed)
    dev = next(generator.parameters()).device
    kind = "interpolation" if interpolate else "samples"
    path = Path(out) if out else Path(run_dir) / "samples" / f"{kind}_step{step}_seed{seed}.png"
    if not interpolate:
        z = generator.sample_latent(n, generator=rng).to(dev)
        save_samples(generator(z).float().cpu(), spec, path)
        return path
    if not spec.is_image:
        raise UsageError("interpolation grids need image data")
    ends = generator.sample_latent(2 * n, generator=rng)
    flat = ends.reshape(2 * n, -1)
    path_z = slerp(flat[:n], flat[n:], torch.linspace(0, 1, steps))
    path_z = path_z.reshape(n * steps, *ends.shape[1:])
    save_image_grid(generator(path_z.to(dev)).float().cpu(), path, nrow=steps)
    return path
