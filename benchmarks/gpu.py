"""One-shot GPU check: DCGAN training speed, Inception extraction speed, FID CUDA-CPU parity.

    python benchmarks/gpu.py                    # on a CUDA machine: one table, under 8 minutes
    python benchmarks/gpu.py --json gpu.json    # also write the table as JSON
    python benchmarks/gpu.py --smoke            # the same code on the CPU at tiny sizes (CI)

Sections, each timed after a warm-up between ``torch.cuda.synchronize`` calls, with the peak
GPU memory it allocated (``torch.cuda.max_memory_allocated``, reset before each section):

- ``dcgan32-fp32``, ``dcgan32-amp``, ``dcgan32-amp-compile``: training images/s of ganzoo's
  :class:`~ganzoo.trainer.Trainer` on the DCGAN of ``recipes/hinge_cifar10.toml`` (3x32x32,
  latent 128, hinge loss, no EMA) at batch 256, channels-last, fed 50,000 random images held
  on the device (CIFAR-10's size): in fp32, under bf16 autocast (``train.amp``), and under
  bf16 autocast with G and D compiled (``train.compile``). Target: >= 50,000 images/s with AMP
  on an H100-class GPU.
- ``inception``: images/s of :class:`~ganzoo.metrics.inception.InceptionExtractor` through
  ganzoo's evaluation pass (:class:`~ganzoo.api.EvalContext`, batches from the host), batch
  200, random 3x32x32 images; the real weights when found, else a random state dict under the
  official key names (same speed). Target: >= 2,000 images/s.
- ``fid-parity``: the FID of 10,000 vs 10,000 real images (MNIST train vs test; without
  MNIST's training images, Fashion-MNIST train vs test; else MNIST test's halves, 5,000 vs
  5,000) with features computed on CUDA and on the CPU, and the relative difference of the two.
  The features are ganzoo's dataset classifier's (``classifier:DATASET``, trained once on the
  GPU and cached when it is not): Inception on the CPU would take far longer than 8 minutes
  for 20,000 images. Target: <= 1e-3.

``--smoke`` runs every section on the CPU with tiny sizes (batch 8, a few steps, 64 images a
side for FID, against the CPU itself) so that this script keeps working; its figures mean
nothing. Its FID features come from the classifier network with random weights (training it
would take minutes on a CPU), and ``torch.compile`` runs the ``aot_eager`` backend (where
torch has ``torch.compiler.set_default_backend``): inductor would spend minutes building C++
for the CPU, which is not the code it generates for a GPU. Without CUDA and without ``--smoke``
the script exits 2. A section that fails prints its error in the table (traceback on stderr)
and the rest still run; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluation import inception_weights
from training_speed import BF16, speed_recipe

from ganzoo.api import Dataset, DataSpec, EvalContext

DCGAN_TARGET = (">= 50,000 images/s (H100-class)", lambda value: value >= 50_000)
TARGETS: dict[str, tuple[str, Callable[[float], bool]]] = {
    # section: (its target in words, whether a figure meets it)
    "dcgan32-amp": DCGAN_TARGET,
    "dcgan32-amp-compile": DCGAN_TARGET,
    "inception": (">= 2,000 images/s", lambda value: value >= 2_000),
    "fid-parity": ("<= 1e-3 (CUDA vs CPU)", lambda value: value <= 1e-3),
}
DCGAN_CASES = {
    # section: ([train] switches, what they mean)
    "dcgan32-fp32": ({"channels_last": True}, "fp32"),
    "dcgan32-amp": (BF16, "bf16 autocast"),
    "dcgan32-amp-compile": (BF16 | {"compile": True}, "bf16 autocast, torch.compile of G and D"),
}


@dataclass(frozen=True)
class Sizes:
    """How much each section does: the full check, or the CPU smoke test."""

    batch: int
    warmup: int
    steps: int
    dcgan_images: int
    inception_batch: int
    inception_images: int
    fid_images: int
    fid_batch: int


FULL = Sizes(
    batch=256, warmup=30, steps=300, dcgan_images=50_000, inception_batch=200,
    inception_images=4000, fid_images=10_000, fid_batch=500,
)  # fmt: skip
SMOKE = Sizes(
    batch=8, warmup=2, steps=3, dcgan_images=64, inception_batch=2, inception_images=2,
    fid_images=64, fid_batch=32,
)  # fmt: skip


class TensorSamples:
    """Model-space images held in one tensor on the host, as :class:`ganzoo.api.Samples`."""

    def __init__(self, images: Tensor) -> None:
        self.images = images
        self.spec = DataSpec(tuple(images.shape[1:]))

    def __len__(self) -> int:
        """The number of images."""
        return len(self.images)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """The images in batches of ``batch_size``, in order."""
        yield from self.images.split(batch_size)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def compile_backend() -> str:
    """The backend ``torch.compile`` uses when given none (``inductor`` unless changed)."""
    get = getattr(torch.compiler, "get_default_backend", None)
    return "inductor" if get is None else str(get())


def dcgan_section(device: torch.device, sizes: Sizes, section: str) -> dict[str, Any]:
    """Training images/s of ganzoo's Trainer on the DCGAN, with the case's switches."""
    from ganzoo.build import build_networks, data_spec
    from ganzoo.data import DeviceFeeder
    from ganzoo.device import autocast_device
    from ganzoo.recipe import recipe_from_dict
    from ganzoo.trainer import Trainer

    switches, what = DCGAN_CASES[section]
    data = speed_recipe(
        f"gpu-{section}", sizes.batch, "dcgan", "dcgan", "hinge", "cifar10", switches,
        sizes.steps, sizes.warmup,
    )  # fmt: skip
    data["generator"]["latent_dim"] = 128
    recipe = recipe_from_dict(data, f"<{section}>")
    spec = data_spec(recipe)
    torch.manual_seed(recipe.seed)
    nets = build_networks(recipe, spec, device)
    shape = (sizes.dcgan_images, *spec.shape)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    feeder = DeviceFeeder(images, sizes.batch, recipe.seed, device)
    trainer = Trainer(recipe, nets, spec, feeder, device)
    for _ in range(sizes.warmup):
        trainer.train_step()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(sizes.steps):
        trainer.train_step()
    synchronize(device)
    seconds = time.perf_counter() - started
    trainer.check_finite()
    if recipe.train.amp and autocast_device(device) is None:
        what = what.replace("bf16 autocast", "bf16 autocast off (no native bf16 on this CPU)")
    if recipe.train.compile:
        what = what.replace("torch.compile", f"torch.compile ({compile_backend()})")
    images_per_s = sizes.steps * sizes.batch / seconds
    return {
        "value": images_per_s,
        "unit": "images/s",
        "images_per_s": images_per_s,
        "ms_per_step": 1000 * seconds / sizes.steps,
        "details": f"{what}, channels-last, batch {sizes.batch}, {sizes.steps} steps timed "
        f"after {sizes.warmup}",
    }


def inception_section(device: torch.device, sizes: Sizes) -> dict[str, Any]:
    """Images/s of the Inception extractor through ganzoo's evaluation pass."""
    from ganzoo.metrics.inception import InceptionExtractor

    with tempfile.TemporaryDirectory() as tmp:
        weights = inception_weights(Path(tmp))
        random_weights = weights.parent == Path(tmp)
        extractor = InceptionExtractor(weights).to(device)
    rng = torch.Generator().manual_seed(0)
    images = torch.rand(sizes.inception_images, 3, 32, 32, generator=rng) * 2 - 1
    batch = sizes.inception_batch
    warmup = TensorSamples(images[: 2 * batch])
    EvalContext(device, 0, "warm-up", extractor, batch).features(warmup)
    synchronize(device)
    started = time.perf_counter()
    features = EvalContext(device, 0, "random", extractor, batch).features(TensorSamples(images))
    synchronize(device)
    seconds = time.perf_counter() - started
    if not bool(features.pool.isfinite().all()):
        raise FloatingPointError("the Inception features are not all finite")
    images_per_s = len(images) / seconds
    which = "random weights under the official key names" if random_weights else "real weights"
    return {
        "value": images_per_s,
        "unit": "images/s",
        "images_per_s": images_per_s,
        "random_weights": random_weights,
        "details": f"{which}, batch {batch}, {len(images)} images 3x32x32 resized to 299",
    }


def fid_sets(data_dir: Path, n: int) -> tuple[str, str, Dataset, Dataset]:
    """Two sets of up to ``n`` real images: a description, the dataset's name, the sets.

    MNIST train vs test, else Fashion-MNIST train vs test, else MNIST test's two halves.

    Raises:
        DataError: not even MNIST's test split is in ``data_dir``.

    """
    from ganzoo.errors import DataError
    from ganzoo.registry import registry
    from ganzoo.subset import SubsetDataset

    def load(name: str, split: str) -> Dataset | None:
        cls = registry("datasets").load(name)
        try:
            return cls(cls.Params(split=split), data_dir)
        except DataError:
            return None

    for name in ("mnist", "fashion-mnist"):
        train, test = load(name, "train"), load(name, "test")
        if train is not None and test is not None:
            k = min(n, len(train), len(test))
            index = torch.arange(k)
            sets = f"{name} train[:{k}] vs test[:{k}]"
            return sets, name, SubsetDataset(train, index), SubsetDataset(test, index)
    cls = registry("datasets").load("mnist")
    test = cls(cls.Params(split="test"), data_dir)  # raises the DataError naming the files
    k = min(n, len(test) // 2)
    first = SubsetDataset(test, torch.arange(k))
    second = SubsetDataset(test, torch.arange(k, 2 * k))
    return f"mnist test[:{k}] vs test[{k}:{2 * k}]", "mnist", first, second


def fid_section(device: torch.device, sizes: Sizes, folder: Path, smoke: bool) -> dict[str, Any]:
    """FID of two image sets of ``folder`` with features on ``device`` and on the CPU."""
    from ganzoo.extractors import make_extractor
    from ganzoo.metrics.classifier import ClassifierNet
    from ganzoo.metrics.frechet import frechet_distance, statistics
    from ganzoo.sources import DatasetSamples

    sets, dataset, first, second = fid_sets(folder, sizes.fid_images)
    extractor: nn.Module
    if smoke:
        torch.manual_seed(0)
        extractor = ClassifierNet(first.spec.channels, first.spec.num_classes).eval()
        features = "classifier network, random weights (smoke)"
    else:
        extractor = make_extractor(f"classifier:{dataset}", device, data_dir=folder, report=print)
        protocol = extractor.protocol()
        features = f"{protocol['extractor']} features (trained on {protocol['trained_on']})"
    fids, rates = [], []
    for where in (device, torch.device("cpu")):
        net = copy.deepcopy(extractor).to(where)
        context = EvalContext(where, 0, sets, net, sizes.fid_batch)
        started = time.perf_counter()
        pools = [context.features(DatasetSamples(s)).pool.numpy() for s in (first, second)]
        rates.append((len(first) + len(second)) / (time.perf_counter() - started))
        mu1, sigma1 = statistics(pools[0])
        mu2, sigma2 = statistics(pools[1])
        fids.append(frechet_distance(mu1, sigma1, mu2, sigma2))
    gap = abs(fids[0] - fids[1])
    difference = gap / abs(fids[1]) if gap else 0.0
    return {
        "value": difference,
        "unit": "relative difference",
        "fid_device": fids[0],
        "fid_cpu": fids[1],
        "sets": sets,
        "features": features,
        "feature_images_per_s": {"device": rates[0], "cpu": rates[1]},
        "details": f"{sets}; {features}; FID {device.type} {fids[0]:.6g}, cpu {fids[1]:.6g}",
    }


def run_section(
    name: str, device: torch.device, measure: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """Run one section; a failure becomes the row's ``error`` (its traceback goes to stderr)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    row: dict[str, Any] = {"section": name, "value": None, "unit": None, "error": None}
    started = time.perf_counter()
    try:
        row |= measure()
    except Exception as exc:
        traceback.print_exc()
        lines = str(exc).strip().splitlines()
        row["error"] = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    row["seconds"] = time.perf_counter() - started
    row["peak_gpu_mb"] = (
        torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    )
    return row


def with_target(row: dict[str, Any], smoke: bool) -> dict[str, Any]:
    """The row with its target beside it, and whether the figure meets it (not in smoke mode)."""
    value = row["value"]
    target, meets = TARGETS.get(row["section"], (None, None))
    row["target"] = target
    row["meets_target"] = None if smoke or value is None or meets is None else meets(value)
    return row


def print_row(row: dict[str, Any]) -> None:
    """One line of the table."""
    if row["error"] is not None:
        figure, details = "FAILED", row["error"]
    elif row["unit"] == "images/s":
        figure, details = f"{row['value']:,.0f} images/s", row["details"]
    else:
        figure, details = f"{row['value']:.2e} rel. diff", row["details"]
    met = {True: "yes", False: "no", None: "-"}[row["meets_target"]]
    peak = "-" if row["peak_gpu_mb"] is None else f"{row['peak_gpu_mb']:,.0f}"
    print(
        f"{row['section']:<21}{figure:>24}  {row['target'] or '-':<36}{met:<5}{peak:>12}  "
        f"{details}",
        flush=True,
    )


def main() -> int:
    """Run every section, print the table (and write its JSON); return the exit status."""
    from ganzoo.device import environment
    from ganzoo.paths import data_dir
    from ganzoo.writes import write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="The CPU at tiny sizes (CI).")
    parser.add_argument("--json", type=Path, help="Also write the table here as JSON.")
    parser.add_argument(
        "--data-dir", type=Path, help="The folder of MNIST/Fashion-MNIST (else $GANZOO_DATA_DIR)."
    )
    args = parser.parse_args()
    if not args.smoke and not torch.cuda.is_available():
        print(
            "benchmarks/gpu.py needs a CUDA GPU, and torch.cuda.is_available() is False here "
            f"(torch {torch.__version__}, CUDA {torch.version.cuda}); run it with --smoke to "
            "check the same code on the CPU",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    device = torch.device("cpu" if args.smoke else "cuda")
    torch.backends.cudnn.benchmark = True
    sizes = SMOKE if args.smoke else FULL
    if args.smoke and hasattr(torch.compiler, "set_default_backend"):
        # inductor on the CPU generates and builds C++ (minutes when its cache is cold), not
        # the GPU's Triton code; aot_eager still runs Dynamo's capture and AOTAutograd
        torch.compiler.set_default_backend("aot_eager")
    env = environment(device)
    print(
        f"{env['device_name'] or device.type} ({device}), torch {env['torch']}, CUDA "
        f"{env['cuda']}, cuDNN {env['cudnn']}, {env['threads']} CPU threads"
        + (", smoke mode: tiny sizes, the figures mean nothing" if args.smoke else ""),
        flush=True,
    )
    header = f"{'section':<21}{'figure':>24}  {'target':<36}{'met':<5}{'peak GPU MB':>12}  details"
    print(header)
    print("-" * len(header), flush=True)
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        name: lambda name=name: dcgan_section(device, sizes, name) for name in DCGAN_CASES
    }
    sections["inception"] = lambda: inception_section(device, sizes)
    sections["fid-parity"] = lambda: fid_section(device, sizes, data_dir(args.data_dir), args.smoke)
    rows = {}
    for name, measure in sections.items():
        rows[name] = with_target(run_section(name, device, measure), args.smoke)
        print_row(rows[name])
    seconds = time.perf_counter() - started
    failed = [name for name, row in rows.items() if row["error"] is not None]
    print(f"took {seconds:.0f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json:
        table = {"environment": env, "smoke": args.smoke, "seconds": seconds, "sections": rows}
        write_text(args.json, json.dumps(table, indent=2, default=str) + "\n", "the table")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
