"""Evaluation benchmarks: ganzoo beside pytorch-fid in one process, plus real-data scores.

    python benchmarks/evaluation.py frechet            # Fréchet distance, 2048-d, vs pytorch-fid
    python benchmarks/evaluation.py extract --images 64 --batch-size 32
    python benchmarks/evaluation.py real --data-dir ../shared/data
    python benchmarks/evaluation.py runs runs/vanilla_mnist/*    # score trained runs

``frechet`` and ``extract`` need pytorch-fid (a test dependency); ``extract`` uses a random
Inception state dict under the official key names when the real weights are absent, which
changes nothing about speed. Every section prints a table and can write JSON (``--json``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _timed(fn: Any, repeats: int) -> tuple[float, Any]:
    """Best wall time of ``repeats`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench_frechet(dims: int, samples: int, repeats: int) -> dict[str, Any]:
    """Fréchet distance of two 2048-d statistics: ganzoo vs pytorch-fid, alternating."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from ganzoo.metrics.frechet import frechet_distance, statistics

    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((dims, dims)) / np.sqrt(dims)
    a = np.maximum(rng.standard_normal((samples, dims)) @ mixing, 0)
    b = np.maximum(rng.standard_normal((samples, dims)) @ mixing + 0.05, 0)
    mu1, s1 = statistics(a)
    mu2, s2 = statistics(b)
    ours_s, theirs_s, ours, theirs = [], [], 0.0, 0.0
    for _ in range(repeats):  # alternate so that machine drift hits both alike
        t, ours = _timed(lambda: frechet_distance(mu1, s1, mu2, s2), 1)
        ours_s.append(t)
        t, theirs = _timed(lambda: calculate_frechet_distance(mu1, s1, mu2, s2), 1)
        theirs_s.append(t)
    row = {
        "dims": dims,
        "samples": samples,
        "ganzoo_s": min(ours_s),
        "pytorch_fid_s": min(theirs_s),
        "speedup": min(theirs_s) / min(ours_s),
        "ganzoo_fid": ours,
        "pytorch_fid_fid": float(theirs),
        "relative_difference": abs(ours - theirs) / abs(theirs),
    }
    print(f"{'':<14}{'seconds':>10}{'FID':>16}")
    print(f"{'ganzoo':<14}{row['ganzoo_s']:>10.3f}{ours:>16.6f}")
    print(f"{'pytorch-fid':<14}{row['pytorch_fid_s']:>10.3f}{float(theirs):>16.6f}")
    print(f"speed-up {row['speedup']:.1f}x, relative difference {row['relative_difference']:.2e}")
    return row


def _inception_weights(folder: Path) -> Path:
    from ganzoo.errors import DataError
    from ganzoo.metrics.inception import WEIGHTS_FILE, build_fid_inception, find_weights

    try:
        return find_weights(download=False)
    except DataError:
        torch.manual_seed(0)
        path = folder / WEIGHTS_FILE
        torch.save(build_fid_inception().state_dict(), path)
        return path


def bench_extract(images: int, batch_size: int, size: int, device: str) -> dict[str, Any]:
    """Inception feature extraction, images/s: ganzoo vs pytorch-fid on the same batches."""
    import pytorch_fid.inception as reference

    from ganzoo.metrics.inception import InceptionExtractor

    with tempfile.TemporaryDirectory() as tmp:
        weights = _inception_weights(Path(tmp))
        reference.load_state_dict_from_url = lambda *a, **k: torch.load(weights, weights_only=True)
        theirs_net = reference.InceptionV3([3]).eval().to(device)
        ours_net = InceptionExtractor(weights).eval().to(device)
    data = torch.rand(images, 3, size, size, generator=torch.Generator().manual_seed(0))

    def run(net: Any, scale: bool) -> None:
        with torch.inference_mode():
            for batch in data.split(batch_size):
                batch = batch.to(device)
                net(batch * 2 - 1 if scale else batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    run(ours_net, True)  # warm-up
    ours_s, theirs_s = [], []
    for _ in range(2):
        ours_s.append(_timed(lambda: run(ours_net, True), 1)[0])
        theirs_s.append(_timed(lambda: run(theirs_net, False), 1)[0])
    row = {
        "images": images, "batch_size": batch_size, "size": size, "device": device,
        "ganzoo_images_per_s": images / min(ours_s),
        "pytorch_fid_images_per_s": images / min(theirs_s),
    }  # fmt: skip
    row["ratio"] = row["ganzoo_images_per_s"] / row["pytorch_fid_images_per_s"]
    print(
        f"{'':<14}{'images/s':>10}   ({images} images {size}x{size}, batch {batch_size}, {device})"
    )
    print(f"{'ganzoo':<14}{row['ganzoo_images_per_s']:>10.1f}")
    print(f"{'pytorch-fid':<14}{row['pytorch_fid_images_per_s']:>10.1f}")
    print(f"ratio {row['ratio']:.2f}")
    return row


def bench_real(data_dir: Path | None, device: str, datasets: list[str]) -> dict[str, Any]:
    """Classifier accuracy, IS of real test images and FID between test halves."""
    from ganzoo.api import EvalContext
    from ganzoo.evaluate import DatasetSamples, make_extractor
    from ganzoo.metrics.frechet import frechet_distance, statistics
    from ganzoo.metrics.scores import inception_score
    from ganzoo.registry import registry

    rows = {}
    print(f"{'dataset':<15}{'trained on':<22}{'accuracy':>9}{'IS held-out':>12}{'IS all':>8}"
          f"{'FID halves':>11}")  # fmt: skip
    for name in datasets:
        torch_device = torch.device(device)
        extractor = make_extractor(
            f"classifier:{name}", torch_device, data_dir=data_dir, report=print
        )
        cls = registry("datasets").load(name)
        test = cls(cls.Params(split="test"), data_dir)
        context = EvalContext(torch_device, 0, f"{name} test", extractor, 500)
        features = context.features(DatasetSamples(test))
        meta = extractor.protocol()
        held_out = meta["tested_on"]
        start = int(held_out.split("[")[1].split(":")[0]) if "[" in held_out else 0
        half = len(features.pool) // 2
        mu1, s1 = statistics(features.pool[:half].numpy())
        mu2, s2 = statistics(features.pool[half:].numpy())
        row = {
            "trained_on": meta["trained_on"],
            "tested_on": held_out,
            "accuracy": meta["test_accuracy"],
            "is_held_out": inception_score(features.logits[start:])[0],
            "is_all_test": inception_score(features.logits)[0],
            "fid_test_halves": frechet_distance(mu1, s1, mu2, s2),
        }
        rows[name] = row
        print(f"{name:<15}{row['trained_on']:<22}{row['accuracy']:>9.4f}"
              f"{row['is_held_out']:>12.3f}{row['is_all_test']:>8.3f}"
              f"{row['fid_test_halves']:>11.4f}")  # fmt: skip
    return rows


def bench_runs(run_dirs: list[str], data_dir: Path | None, device: str) -> list[dict[str, Any]]:
    """Score trained runs with their recipes' metrics (classifier features when no Inception)."""
    from ganzoo.evaluate import evaluate_run, protocol_differences

    reports = [
        evaluate_run(d, device=device, data_dir=data_dir, metrics=None, report=print)
        for d in run_dirs
    ]
    keys = list(dict.fromkeys(k for r in reports for k in r.scores))
    print(f"{'run':<48}" + "".join(f"{k:>12}" for k in keys))
    for run_dir, r in zip(run_dirs, reports, strict=True):
        print(f"{run_dir:<48}" + "".join(f"{r.scores.get(k, float('nan')):>12.4f}" for k in keys))
    for key, values in protocol_differences(reports).items():
        print(f"protocols differ in {key}: {values}")
    return [r.to_json() for r in reports]


def main() -> None:
    """Run the chosen benchmark section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="section", required=True)
    frechet = sub.add_parser("frechet")
    frechet.add_argument("--dims", type=int, default=2048)
    frechet.add_argument("--samples", type=int, default=4096)
    frechet.add_argument("--repeats", type=int, default=3)
    extract = sub.add_parser("extract")
    extract.add_argument("--images", type=int, default=64)
    extract.add_argument("--batch-size", type=int, default=32)
    extract.add_argument("--size", type=int, default=28)
    extract.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    real = sub.add_parser("real")
    real.add_argument("--data-dir", type=Path)
    real.add_argument("--device", default="cpu")
    real.add_argument("--datasets", default="mnist,fashion-mnist", help="Comma-separated.")
    runs = sub.add_parser("runs")
    runs.add_argument("run_dirs", nargs="+")
    runs.add_argument("--data-dir", type=Path)
    runs.add_argument("--device", default="auto")
    for p in (frechet, extract, real, runs):
        p.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if args.section == "frechet":
        result: Any = bench_frechet(args.dims, args.samples, args.repeats)
    elif args.section == "extract":
        result = bench_extract(args.images, args.batch_size, args.size, args.device)
    elif args.section == "real":
        from ganzoo.paths import data_dir

        result = bench_real(data_dir(args.data_dir), args.device, args.datasets.split(","))
    else:
        result = bench_runs(args.run_dirs, args.data_dir, args.device)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
