"""Discriminator overfitting on small data: D's view of its training, held-out and fake images.

The view of Karras et al. 2020 (ADA, fig. 1): as D overfits a small training set, its outputs on
real images it has never seen drift away from those on its training images, towards those on
generated ones. For a run trained on ``data.subset``, each checkpoint's D judges the subset, as
many images of the same split from outside it, and as many samples of the checkpoint's G (the
network D was trained against, not its moving average); the table gives the mean logit and the
share judged real (logit > 0) of each. D sees the images without augmentation, in training
mode (batch norm on batch statistics, batches of the run's size), as in its updates.

    python benchmarks/overfitting.py runs/dcgan_fashion_mnist_10pct
    python benchmarks/overfitting.py RUN --checkpoints step_00020000.pt step_00060000.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ganzoo.build import build_dataset, build_networks
from ganzoo.checkpoint import list_checkpoints, load_checkpoint
from ganzoo.errors import GanzooError
from ganzoo.paths import data_dir
from ganzoo.runs import RunFolder
from ganzoo.sources import DatasetSamples, GeneratorSamples
from ganzoo.subset import SubsetDataset, training_set

SETS = ("train", "held-out", "generated")


def held_out_indices(n: int, subset: Tensor, count: int, seed: int = 0) -> Tensor:
    """``count`` indices of ``range(n)`` outside ``subset``, drawn with ``seed`` (all if fewer)."""
    outside = torch.ones(n, dtype=torch.bool)
    outside[subset] = False
    rest = torch.nonzero(outside).flatten()
    order = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed))
    return rest[order[:count]].sort().values


@torch.no_grad()
def judge(discriminator: nn.Module, batches: Iterable[Tensor]) -> dict[str, float]:
    """D's mean logit and share judged real over model-space ``batches``, one call each."""
    logits = torch.cat([discriminator(x).flatten().float() for x in batches])
    return {"logit": logits.mean().item(), "real": (logits > 0).float().mean().item()}


def overfitting(
    folder: RunFolder, checkpoints: list[str], data: Path | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """One row per checkpoint: D's mean logit and share judged real on each of SETS."""
    recipe = folder.recipe()
    full = build_dataset(recipe, data_dir(data))
    subset = training_set(full, recipe)
    if not isinstance(subset, SubsetDataset):
        raise SystemExit(f"{folder.root}: the run trains on all of its data (no data.subset)")
    size = recipe.shell.train.batch_size
    train = DatasetSamples(subset)
    held_out = held_out_indices(len(full), subset.indices, len(subset), seed)
    held = DatasetSamples(SubsetDataset(full, held_out))
    device = torch.device("cpu")
    networks = build_networks(recipe, full.spec, device)
    generator, discriminator = networks.generator, networks.discriminator
    if discriminator is None or getattr(discriminator, "num_classes", 0):
        raise SystemExit(f"{folder.root}: needs an unconditional discriminator")
    rows = []
    for name in checkpoints:
        state = load_checkpoint(folder.checkpoint(name))
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        generator.train()
        discriminator.train()
        latents = GeneratorSamples(generator, len(subset), seed, device, full.spec).latents(size)
        fake = (generator(z) for _, z in latents)  # unquantised, as D saw them in training
        scores = {
            s: judge(discriminator, batches)
            for s, batches in zip(
                SETS, (train.batches(size), held.batches(size), fake), strict=True
            )
        }
        rows.append({"checkpoint": name, "step": state["step"], **scores})
    return rows


def main() -> None:
    """Parse arguments, judge every checkpoint asked for, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="A run folder trained with data.subset.")
    parser.add_argument(
        "--checkpoints", nargs="+", help="Checkpoint names (default: every numbered one)."
    )
    parser.add_argument("--data-dir", type=Path, help="Data folder (default: as ganzoo run).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the held-out draw and z.")
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    try:
        folder = RunFolder.open(args.run)
        names = args.checkpoints or [p.name for p in list_checkpoints(folder.checkpoints)]
        if not names:
            sys.exit(f"{folder.root}: no checkpoints")
        rows = overfitting(folder, names, args.data_dir, args.seed)
    except GanzooError as exc:
        sys.exit(f"error: {exc}")
    header = f"{'step':>8}" + "".join(f" {s + ' logit':>16} {s + ' real':>15}" for s in SETS)
    print(header)
    print("-" * len(header))
    for row in rows:
        cells = "".join(f" {row[s]['logit']:>16.2f} {100 * row[s]['real']:>14.1f}%" for s in SETS)
        print(f"{row['step']:>8,}{cells}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
