"""Training speed: ganzoo against the reference training loops, side by side, alternating.

Each measurement runs in a fresh worker process (so that each side's peak RSS is its own),
and the two sides alternate round by round, so that drift of the machine hits both alike.
ganzoo trains the reference's own architectures, registered as a plugin through a temporary
entry point, on the same MNIST test images (10,000, available offline).

    python benchmarks/training_speed.py                       # every case, 3 rounds
    python benchmarks/training_speed.py --cases mlp64 --steps 300 --rounds 2
    python benchmarks/training_speed.py --smoke               # a few steps (CI)

ganzoo runs the conv nets channels-last (``train.channels_last``), and ``dcgan32-bf16`` also
under bf16 autocast (``train.amp``, which the CPU runs where it has AMX or AVX512-BF16); the
reference runs fp32 as published.

Columns: images/s and ms per training step (one generator and one discriminator update of a
batch) in the steady state after a warm-up, peak RSS of the worker, and ganzoo / reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONV = {"channels_last": True}
BF16 = CONV | {"amp": True}
CASES = {
    # name: (reference loop, batch size, ganzoo generator, discriminator, loss, data, ganzoo's
    # [train] switches); the reference always runs fp32 in the default memory layout
    "mlp64": ("mlp", 64, "ptgan-mlp", "ptgan-mlp", "non-saturating", "mnist", {}),
    "mlp256": ("mlp", 256, "ptgan-mlp", "ptgan-mlp", "non-saturating", "mnist", {}),
    "dcgan32": ("dcgan", 64, "ptgan-conv", "ptgan-conv", "non-saturating", "mnist-32", CONV),
    "dcgan32-bf16": ("dcgan", 64, "ptgan-conv", "ptgan-conv", "non-saturating", "mnist-32", BF16),
    "gmmn256": ("gmmn", 256, "ptgan-mlp", None, "mmd", "mnist", {}),
}
ENTRY_POINTS = """\
[ganzoo.generators]
ptgan-mlp = reference_gan:PTGANMLPGenerator
ptgan-conv = reference_gan:PTGANConvGenerator

[ganzoo.discriminators]
ptgan-mlp = reference_gan:PTGANMLPDiscriminator
ptgan-conv = reference_gan:PTGANConvDiscriminator

[ganzoo.datasets]
mnist-32 = reference_gan:MNIST32
"""


def register_reference_plugin(site: Path) -> None:
    """Make the reference architectures ganzoo components, the way pip installs a plugin."""
    info = site / "ganzoo_reference_benchmark-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ganzoo-reference-benchmark\nVersion: 0.0.0\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path[:0] = [str(site), str(HERE)]


def speed_recipe(
    name: str,
    batch: int,
    generator: str,
    discriminator: str | None,
    loss: str,
    data: str,
    switches: dict[str, Any],
    steps: int,
    warmup: int,
) -> dict[str, Any]:
    """A recipe of ``warmup + steps`` steps, logged every ``warmup`` steps, writing nothing else.

    Logging splits the run into a warm-up window and timed windows; samples, checkpoints and
    TensorBoard stay out of the way. ``switches`` are further ``[train]`` settings.
    """
    recipe: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "generator": {"name": generator},
        "loss": {"name": loss},
        "data": {"name": data},
        "train": {
            "steps": warmup + steps,
            "batch_size": batch,
            "log_every": warmup,
            "sample_every": 10**9,
            "checkpoint_every": 10**9,
            "tensorboard": False,
            **switches,
        },
    }
    if discriminator:
        recipe["discriminator"] = {"name": discriminator}
    return recipe


def ganzoo_recipe(case: str, steps: int, warmup: int) -> dict[str, Any]:
    """The ganzoo recipe of a case (:func:`speed_recipe` on the case's networks and data)."""
    _, batch, generator, discriminator, loss, data, switches = CASES[case]
    recipe = speed_recipe(
        f"speed-{case}", batch, generator, discriminator, loss, data, switches, steps, warmup
    )
    if data == "mnist":
        recipe["data"]["split"] = "test"
    if loss == "mmd":
        recipe["loss"]["sigmas"] = [4.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    return recipe


def worker(side: str, case: str, steps: int, warmup: int) -> dict[str, Any]:
    """Measure one side of one case in this process; return its figures."""
    from ganzoo.paths import data_dir

    batch = CASES[case][1]
    if side == "reference":
        sys.path.insert(0, str(HERE))
        from reference_gan import reference_loop

        seconds = reference_loop(CASES[case][0], data_dir(), batch, steps, warmup)
        images_per_s = steps * batch / seconds
    else:
        import ganzoo
        from ganzoo.recipe import recipe_from_dict
        from ganzoo.runs import RunFolder

        with tempfile.TemporaryDirectory() as tmp:
            register_reference_plugin(Path(tmp) / "site")
            recipe = recipe_from_dict(ganzoo_recipe(case, steps, warmup), f"<{case}>")
            result = ganzoo.run(recipe, out=Path(tmp) / "run", device="cpu", progress="none")
            records = RunFolder(result.run_dir).records()
        # the first window holds the warm-up; later windows are steady state
        timed = [r for r in records if r["step"] > warmup]
        images_per_s = statistics.mean(r["images_per_s"] for r in timed)
    return {
        "side": side,
        "case": case,
        "images_per_s": images_per_s,
        "ms_per_step": 1000 * batch / images_per_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(side: str, case: str, steps: int, warmup: int) -> dict[str, Any]:
    """Run :func:`worker` in a fresh process."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", side, case, str(steps), str(warmup)],
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{side} {case} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Alternate ganzoo and the reference over the cases; print the table."""
    import torch

    from ganzoo.device import cpu_has_native_bf16

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--steps", type=int, default=0, help="Timed steps (default per case).")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="A few steps, one round.")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--worker", nargs=4, metavar=("SIDE", "CASE", "STEPS", "WARMUP"))
    args = parser.parse_args()
    if args.worker:
        side, case, steps, warmup = args.worker
        print(json.dumps(worker(side, case, int(steps), int(warmup))))
        return
    default_steps = {"mlp64": 600, "mlp256": 300, "dcgan32": 60, "dcgan32-bf16": 120,
                     "gmmn256": 150}  # fmt: skip
    rows = []
    header = (f"{'case':<14}{'side':<11}{'images/s':>10}{'ms/step':>9}{'peak RSS MB':>13}"
              f"{'ratio':>7}")  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16 on this CPU: "
          f"{cpu_has_native_bf16()}")  # fmt: skip
    print(header)
    print("-" * len(header))
    for case in args.cases.split(","):
        steps = 2 if args.smoke else (args.steps or default_steps[case])
        warmup = 1 if args.smoke else max(10, steps // 5)
        runs: dict[str, list[dict[str, Any]]] = {"reference": [], "ganzoo": []}
        for _ in range(1 if args.smoke else args.rounds):
            for side in ("reference", "ganzoo"):
                runs[side].append(measure(side, case, steps, warmup))
        summary = {}
        for side, results in runs.items():
            summary[side] = {
                "images_per_s": statistics.median(r["images_per_s"] for r in results),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            }
        ratio = summary["ganzoo"]["images_per_s"] / summary["reference"]["images_per_s"]
        batch = CASES[case][1]
        for side in ("reference", "ganzoo"):
            s = summary[side]
            print(f"{case:<14}{side:<11}{s['images_per_s']:>10.0f}"
                  f"{1000 * batch / s['images_per_s']:>9.2f}{s['peak_rss_mb']:>13.0f}"
                  f"{ratio if side == 'ganzoo' else 1.0:>7.2f}", flush=True)  # fmt: skip
        rows.append({"case": case, "batch_size": batch, "steps": steps, **summary, "ratio": ratio,
                     "rounds": runs})  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
