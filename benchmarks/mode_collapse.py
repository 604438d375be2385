"""The 2-D mode-collapse benchmark: train recipes on several seeds, count modes, print a table.

For each recipe and seed: train with ``ganzoo.run``, draw 2,500 samples from the final
generator (its moving average when the recipe keeps one), and report the modes captured and
the fraction of high-quality samples (within 3 std of the nearest mean), as PacGAN does, plus
the spread of those samples around their mean in units of the mixture's std (0.97 for the
mixture's own samples), which shows a generator that draws its modes too narrow.

    python benchmarks/mode_collapse.py recipes/quickstart.toml recipes/grid.toml --seeds 5
    python benchmarks/mode_collapse.py recipes/grid.toml --set loss.name=hinge --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganzoo.metrics.modes import mode_statistics
from ganzoo.runs import RunFolder
from ganzoo.train import run


def evaluate(recipe: str, seed: int, overrides: list[str], samples: int) -> dict[str, float]:
    """Train ``recipe`` with ``seed`` and score 2,500 samples of its final generator."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = run(
            recipe,
            overrides=[*overrides, f"seed={seed}"],
            out=Path(tmp) / "run",
            device="cpu",
            progress="none",
        )
        seconds = time.perf_counter() - started
        trained = RunFolder(result.run_dir).load_generator(device="cpu")
        generator, spec = trained.generator, trained.spec
        assert spec.mixture is not None, "the mode benchmark needs a ring or grid dataset"
        with torch.no_grad():
            z = generator.sample_latent(samples, generator=torch.Generator().manual_seed(seed))
            points = generator(z)
        stats = mode_statistics(points, spec.mixture)
        return {**stats, "seconds": seconds, "modes_total": len(spec.mixture.means)}


def main() -> None:
    """Parse arguments, run every recipe on every seed, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipes", nargs="+")
    parser.add_argument("--seeds", type=int, default=5, help="How many seeds to train.")
    parser.add_argument("--first-seed", type=int, default=0, help="The first seed.")
    parser.add_argument("--samples", type=int, default=2500)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--json", type=Path, help="Also write the rows as JSON here.")
    args = parser.parse_args()

    rows = []
    header = (
        f"{'recipe':<28} {'seed':>4} {'modes':>7} {'high-quality':>13} {'rev. KL':>8} "
        f"{'spread':>7} {'time':>7}"
    )
    print(header)
    print("-" * len(header))
    for recipe in args.recipes:
        per_seed = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            row = {
                "recipe": recipe,
                "seed": seed,
                **evaluate(recipe, seed, args.overrides, args.samples),
            }
            per_seed.append(row)
            print(
                f"{Path(recipe).stem:<28} {seed:>4} {row['modes']:>3}/{row['modes_total']:<3} "
                f"{100 * row['high_quality']:>12.1f}% {row['reverse_kl']:>8.4f} "
                f"{row['spread']:>7.3f} {row['seconds']:>6.1f}s",
                flush=True,
            )
        rows += per_seed
        print(
            f"{Path(recipe).stem + ' (mean)':<28} {'':>4} "
            f"{statistics.mean(r['modes'] for r in per_seed):>7.1f} "
            f"{100 * statistics.mean(r['high_quality'] for r in per_seed):>12.1f}% "
            f"{statistics.mean(r['reverse_kl'] for r in per_seed):>8.4f} "
            f"{statistics.mean(r['spread'] for r in per_seed):>7.3f} "
            f"{statistics.mean(r['seconds'] for r in per_seed):>6.1f}s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
