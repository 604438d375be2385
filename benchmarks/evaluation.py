"""Evaluation benchmarks: ganzoo beside pytorch-fid in one run, plus real-data scores.

    python benchmarks/evaluation.py frechet            # Fréchet distance, 2048-d, vs pytorch-fid
    python benchmarks/evaluation.py extract --images 40 --batch-size 20 --bf16 on
    python benchmarks/evaluation.py real --data-dir ../shared/data
    python benchmarks/evaluation.py runs runs/vanilla_mnist/*    # score trained runs
    python benchmarks/evaluation.py cache RUN --extractor classifier  # first vs cached eval

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


def inception_weights(folder: Path, calibrated: bool = False) -> Path:
    """The real Inception weights when found (no download), else a random state dict.

    The random one (seed 0) is saved in ``folder`` under the official file and key names, so
    that :class:`~ganzoo.metrics.inception.InceptionExtractor` loads it as it would the real
    weights; it computes the same operations at the same speed. ``calibrated`` sets its batch
    norm statistics from one batch of random images and scales the last block down, as the
    tests' fixture does, so that pool3 features are O(1) like real ones and FIDs of them mean
    something (a few seconds more).
    """
    from ganzoo.errors import DataError
    from ganzoo.metrics.fid_inception import build_fid_inception
    from ganzoo.metrics.inception import WEIGHTS_FILE, find_weights

    try:
        return find_weights(download=False)
    except DataError:
        torch.manual_seed(0)
        net = build_fid_inception()
        if calibrated:
            _calibrate(net)
        path = folder / WEIGHTS_FILE
        torch.save(net.state_dict(), path)
        return path


def _calibrate(net: torch.nn.Module) -> None:
    """Batch-norm statistics from 4 random images, the last block's outputs scaled by 0.01."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.rand(4, 3, 299, 299) * 2 - 1)
        for module in net.Mixed_7c.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.mul_(0.01)
                module.bias.mul_(0.01)
    net.eval()


def _image_set(n: int, channels: int, size: int, seed: int, brightness: float) -> torch.Tensor:
    """``n`` quantised model-space images of smooth random blobs (as ganzoo's samples are)."""
    from ganzoo.api import from_model_space, to_model_space

    rng = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 4, 4, generator=rng) * brightness * 2 - 1
    smooth = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    return to_model_space(from_model_space(smooth))


def _extract_variants(weights: Path, device: str, bf16: bool) -> dict[str, Any]:
    """The extractors compared by ``extract``: name -> fn(model-space batch) -> pool3 (N, 2048).

    pytorch-fid's InceptionV3 gets what its ``fid_score`` feeds it (RGB in [0, 1], under
    ``no_grad``); ganzoo's run under ``inference_mode``, as its evaluation does.
    """
    import pytorch_fid.inception as reference

    from ganzoo.metrics.inception import InceptionExtractor

    reference.load_state_dict_from_url = lambda *a, **k: torch.load(weights, weights_only=True)
    theirs = reference.InceptionV3([3]).eval().to(device)

    def pytorch_fid(batch: torch.Tensor) -> torch.Tensor:
        rgb = batch.add(1).div(2).expand(-1, 3, -1, -1)
        with torch.no_grad():
            return theirs(rgb)[0].flatten(1)

    def ganzoo(extractor: InceptionExtractor) -> Any:
        def run(batch: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                return extractor(batch)[0]

        return run

    variants = {
        "pytorch-fid": pytorch_fid,
        "ganzoo before": ganzoo(InceptionExtractor(weights, fast=False).to(device)),
        "ganzoo fp32": ganzoo(InceptionExtractor(weights).to(device)),
    }
    if bf16:
        variants["ganzoo bf16"] = ganzoo(
            InceptionExtractor(weights, precision="bfloat16").to(device)
        )
    variants["ganzoo clean"] = ganzoo(InceptionExtractor(weights, resize="clean").to(device))
    return variants


def bench_extract(
    images: int,
    batch_size: int,
    size: int,
    channels: int,
    device: str,
    bf16: str = "auto",
    profile: bool = False,
) -> dict[str, Any]:
    """Inception feature extraction, images/s: pytorch-fid and ganzoo's ways, one run.

    Every extractor reads the same ``images`` quantised random images (set A), one warm-up
    batch first: pytorch-fid's InceptionV3, ganzoo before the fast path (``fast=False``: no
    batch-norm folding, NCHW), ganzoo's float32 fast path, its bf16 autocast (``bf16``: auto
    where native, i.e. CUDA or an AMX/AVX512-BF16 CPU; on forces it, emulated on other CPUs)
    and its clean-fid resize. Wall-clock and CPU-time rates are both given: the CPU time of
    all threads is less disturbed by other work on a shared machine. Then FID(A, B) against a
    second set B from pytorch-fid's, ganzoo fp32's and bf16's features (one Fréchet function
    for all, so differences are the features'), and the resize's share of ganzoo's time.
    """
    from ganzoo.device import autocast_device
    from ganzoo.metrics.frechet import frechet_distance, statistics
    from ganzoo.metrics.resize import bilinear_input, clean_input

    torch_device = torch.device(device)
    native_bf16 = autocast_device(torch_device) is not None
    with_bf16 = bf16 == "on" or (bf16 == "auto" and native_bf16)
    with tempfile.TemporaryDirectory() as tmp:
        weights = inception_weights(Path(tmp), calibrated=True)
        random_weights = weights.parent == Path(tmp)
        variants = _extract_variants(weights, device, with_bf16)
    set_a = _image_set(images, channels, size, seed=1, brightness=1.0)
    set_b = _image_set(images, channels, size, seed=2, brightness=0.8)

    def features(fn: Any, data: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        wall, cpu = time.perf_counter(), time.process_time()
        pools = [fn(batch.to(device)).float().cpu() for batch in data.split(batch_size)]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu, torch.cat(pools)

    threads = torch.get_num_threads()
    print(
        f"Inception features of {images} images {channels}x{size}x{size}, batch {batch_size}, "
        f"{device}, {threads} threads, {'random' if random_weights else 'real'} weights"
    )
    rows: dict[str, dict[str, Any]] = {}
    pools: dict[str, dict[str, torch.Tensor]] = {}
    for name, fn in variants.items():
        fn(set_a[:2].to(device))  # warm-up
        wall, cpu, pool_a = features(fn, set_a)
        rows[name] = {"images_per_s": images / wall, "images_per_cpu_s": images / cpu}
        pools[name] = {"a": pool_a}
        if name in ("pytorch-fid", "ganzoo fp32", "ganzoo bf16"):
            pools[name]["b"] = features(fn, set_b)[2]
        print(f"  {name}: {wall:.1f} s", flush=True)
    base = rows["pytorch-fid"]["images_per_s"]
    print(f"{'extractor':<24}{'images/s':>10}{'vs pytorch-fid':>16}{'images/CPU-s':>14}")
    for name, row in rows.items():
        row["ratio"] = row["images_per_s"] / base
        label = f"{name} (emulated)" if name == "ganzoo bf16" and not native_bf16 else name
        print(
            f"{label:<24}{row['images_per_s']:>10.2f}{row['ratio']:>15.2f}x"
            f"{row['images_per_cpu_s']:>14.2f}"
        )
    fids = {}
    for name, sets in pools.items():
        if "b" in sets:
            mu_a, sigma_a = statistics(sets["a"].double().numpy())
            mu_b, sigma_b = statistics(sets["b"].double().numpy())
            fids[name] = frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    print(f"FID(A, B), {images} images each:")
    for name, value in fids.items():
        print(f"  {name:<14}{value:>14.6f}")
    fp32 = fids["ganzoo fp32"]
    comparisons = {"ganzoo fp32 - pytorch-fid": fp32 - fids["pytorch-fid"]}
    if "ganzoo bf16" in fids:
        comparisons["ganzoo bf16 - ganzoo fp32"] = fids["ganzoo bf16"] - fp32
    for what, diff in comparisons.items():
        print(f"  {what:<26}{diff:>+12.2e} ({abs(diff) / abs(fp32):.1e} relative)")
    feature_diff = (pools["ganzoo fp32"]["a"] - pools["pytorch-fid"]["a"]).abs().max().item()
    print(f"  max |pool3 ganzoo fp32 - pytorch-fid| on A: {feature_diff:.2e}")
    shares = {}
    for name, resize in (("ganzoo fp32", bilinear_input), ("ganzoo clean", clean_input)):
        started = time.perf_counter()
        for batch in set_a.split(batch_size):
            resize(batch.to(device))
        seconds = time.perf_counter() - started
        shares[name] = seconds * rows[name]["images_per_s"] / images
        print(f"  resize share of {name}: {100 * shares[name]:.1f}% ({seconds:.2f} s)")
    if profile:
        _profile_batch(variants, set_a[:batch_size].to(device))
    return {
        "images": images, "batch_size": batch_size, "size": size, "channels": channels,
        "device": device, "threads": threads, "random_weights": random_weights, "rows": rows,
        "fid": fids, "fid_differences": comparisons, "max_pool3_difference": feature_diff,
        "resize_share": shares,
    }  # fmt: skip


def _profile_batch(variants: dict[str, Any], batch: torch.Tensor) -> None:
    """Where one batch's time goes in pytorch-fid's and ganzoo's fp32 networks, by operator."""
    from torch.profiler import ProfilerActivity, profile

    for name in ("pytorch-fid", "ganzoo fp32"):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            variants[name](batch)
        print(f"{name}, one batch of {len(batch)}:")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))


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


def bench_cache(run_dir: str, eval_args: list[str]) -> list[dict[str, Any]]:
    """Wall time of ``ganzoo eval RUN``: first (extract and store), cached, and ``--no-cache``.

    Each in a fresh process, against a feature cache of its own (the user's trained classifiers
    are linked in, so that none is trained again); the scores of the three must be equal.
    """
    import os
    import shutil

    from ganzoo.paths import cache_dir

    ganzoo = shutil.which("ganzoo") or str(Path(sys.executable).parent / "ganzoo")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        classifiers = cache_dir() / "classifiers"
        if classifiers.is_dir():
            (Path(tmp) / "classifiers").symlink_to(classifiers)
        env = {**os.environ, "GANZOO_CACHE_DIR": tmp, "NO_COLOR": "1"}
        for label, extra in (("first", []), ("cached", []), ("no cache", ["--no-cache"])):
            started = time.perf_counter()
            done = subprocess.run(
                [ganzoo, "eval", run_dir, "--json", *eval_args, *extra],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            (report,) = json.loads(done.stdout)
            origin = report.get("reference_features", {}).get("cache", "off")
            rows.append({"eval": label, "seconds": seconds, "reference_features": origin,
                         "scores": report["scores"],
                         "num_reference": report["protocol"].get("num_reference")})  # fmt: skip
    assert all(r["scores"] == rows[0]["scores"] for r in rows), "the scores differ"
    print(f"{'eval':<10}{'seconds':>9}  {'reference features':<20}scores")
    for r in rows:
        scores = ", ".join(f"{k} {v:.4f}" for k, v in r["scores"].items() if v is not None)
        print(f"{r['eval']:<10}{r['seconds']:>9.1f}  {r['reference_features']:<20}{scores}")
    print(f"cached / first: {rows[1]['seconds'] / rows[0]['seconds']:.2f} "
          f"({rows[0]['num_reference']:,} reference images)")  # fmt: skip
    return rows


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
    extract.add_argument("--images", type=int, default=40)
    extract.add_argument("--batch-size", type=int, default=20)
    extract.add_argument("--size", type=int, default=28)
    extract.add_argument("--channels", type=int, default=1, choices=[1, 3])
    extract.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    extract.add_argument(
        "--bf16", choices=["auto", "on", "off"], default="auto",
        help="The bf16 row: auto where native (CUDA, AMX/AVX512-BF16), on forces it (emulated).",
    )  # fmt: skip
    extract.add_argument("--profile", action="store_true", help="Operator times of one batch.")
    real = sub.add_parser("real")
    real.add_argument("--data-dir", type=Path)
    real.add_argument("--device", default="cpu")
    real.add_argument("--datasets", default="mnist,fashion-mnist", help="Comma-separated.")
    runs = sub.add_parser("runs")
    runs.add_argument("run_dirs", nargs="+")
    runs.add_argument("--data-dir", type=Path)
    runs.add_argument("--device", default="auto")
    cache = sub.add_parser("cache")
    cache.add_argument("run_dir")
    cache.add_argument(
        "eval_args", nargs=argparse.REMAINDER,
        help="Options for ganzoo eval (--extractor, --metrics, --num-samples, ...).",
    )  # fmt: skip
    for p in (frechet, extract, real, runs, cache):
        p.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args()
    if args.section == "time-frechet":
        print(json.dumps(time_frechet(args.which, args.stats, args.calls)))
        return
    if args.section == "frechet":
        result: Any = bench_frechet(args.dims, args.samples, args.repeats)
    elif args.section == "extract":
        result = bench_extract(
            args.images, args.batch_size, args.size, args.channels, args.device, args.bf16,
            args.profile,
        )  # fmt: skip
    elif args.section == "real":
        from ganzoo.paths import data_dir

        result = bench_real(data_dir(args.data_dir), args.device, args.datasets.split(","))
    elif args.section == "cache":
        result = bench_cache(args.run_dir, args.eval_args)
    else:
        result = bench_runs(args.run_dirs, args.data_dir, args.device)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
