"""Evaluation benchmarks: ganzoo beside pytorch-fid in one run, plus real-data scores.

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
import subprocess
import sys
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


def _frechet_functions() -> dict[str, Any]:
    """The two implementations under test, by name."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    from ganzoo.metrics.frechet import frechet_distance

    return {"ganzoo": frechet_distance, "pytorch-fid": calculate_frechet_distance}


def time_frechet(which: str, stats: Path, calls: int) -> dict[str, Any]:
    """Best of ``calls`` timed calls of one implementation, after one untimed warm-up call."""
    fn = _frechet_functions()[which]
    with np.load(stats) as f:
        args = [f[k] for k in ("mu1", "s1", "mu2", "s2")]
    fn(*args)
    seconds, value = _timed(lambda: fn(*args), calls)
    return {"seconds": seconds, "fid": float(value)}


def _isolated(which: str, stats: Path, calls: int) -> dict[str, Any]:
    """``time_frechet`` in a fresh Python process, so neither library runs after the other."""
    out = subprocess.run(
        [sys.executable, __file__, "time-frechet", which, str(stats), "--calls", str(calls)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def bench_frechet(dims: int, samples: int, repeats: int) -> dict[str, Any]:
    """Fréchet distance of two ``dims``-d statistics, ganzoo vs pytorch-fid, best of ``repeats``.

    Two ways, alternating so that machine drift hits both alike: each implementation in its
    own fresh process (one warm-up call, then three timed calls for ganzoo and one for
    pytorch-fid), and both in this one process, one call each per round.
    """
    from ganzoo.metrics.frechet import statistics

    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((dims, dims)) / np.sqrt(dims)
    a = np.maximum(rng.standard_normal((samples, dims)) @ mixing, 0)
    b = np.maximum(rng.standard_normal((samples, dims)) @ mixing + 0.05, 0)
    mu1, s1 = statistics(a)
    mu2, s2 = statistics(b)
    functions = _frechet_functions()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.npz"
        np.savez(stats, mu1=mu1, s1=s1, mu2=mu2, s2=s2)
        for mode in ("separate processes", "one process"):
            seconds: dict[str, list[float]] = {"ganzoo": [], "pytorch-fid": []}
            values: dict[str, float] = {}
            for _ in range(repeats):
                for which, fn in functions.items():
                    if mode == "one process":
                        t, value = _timed(lambda fn=fn: fn(mu1, s1, mu2, s2), 1)
                        result = {"seconds": t, "fid": float(value)}
                    else:
                        result = _isolated(which, stats, 3 if which == "ganzoo" else 1)
                    seconds[which].append(result["seconds"])
                    values[which] = result["fid"]
            rows.append({
                "mode": mode,
                "ganzoo_s": min(seconds["ganzoo"]),
                "pytorch_fid_s": min(seconds["pytorch-fid"]),
                "speedup": min(seconds["pytorch-fid"]) / min(seconds["ganzoo"]),
                "ganzoo_fid": values["ganzoo"],
                "pytorch_fid_fid": values["pytorch-fid"],
                "relative_difference": abs(values["ganzoo"] - values["pytorch-fid"])
                / abs(values["pytorch-fid"]),
            })  # fmt: skip
    print(f"Fréchet distance, {dims}-d statistics of {samples} samples, best of {repeats}")
    head = ("mode", "ganzoo s", "pytorch-fid s", "speed-up", "FID", "rel. diff")
    print(f"{head[0]:<20}{head[1]:>10}{head[2]:>15}{head[3]:>10}{head[4]:>14}{head[5]:>11}")
    for r in rows:
        print(
            f"{r['mode']:<20}{r['ganzoo_s']:>10.3f}{r['pytorch_fid_s']:>15.3f}"
            f"{r['speedup']:>9.1f}x{r['ganzoo_fid']:>14.6f}{r['relative_difference']:>11.1e}"
        )
    return {"dims": dims, "samples": samples, "repeats": repeats, "rows": rows}


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
    from ganzoo.extractors import make_extractor
    from ganzoo.metrics.frechet import frechet_distance, statistics
    from ganzoo.metrics.scores import inception_score
    from ganzoo.registry import registry
    from ganzoo.sources import DatasetSamples

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
    timing = sub.add_parser("time-frechet", help="One implementation's timing (used by frechet).")
    timing.add_argument("which", choices=["ganzoo", "pytorch-fid"])
    timing.add_argument("stats", type=Path)
    timing.add_argument("--calls", type=int, default=1)
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
    if args.section == "time-frechet":
        print(json.dumps(time_frechet(args.which, args.stats, args.calls)))
        return
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
