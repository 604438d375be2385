"""Evaluation: parity with pytorch-fid and torch-fidelity, known answers, commands, protocol."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import own_cache, run_cli
from PIL import Image

import ganzoo
from ganzoo.compare import fid_between
from ganzoo.errors import UsageError
from ganzoo.metrics.fid_inception import build_fid_inception
from ganzoo.metrics.frechet import (
    frechet_distance,
    load_statistics,
    save_statistics,
    statistics,
)
from ganzoo.metrics.inception import InceptionExtractor
from ganzoo.metrics.scores import (
    density_coverage,
    inception_score,
    kernel_inception_distance,
    precision_recall,
)

pytorch_fid = pytest.importorskip("pytorch_fid")
torch_fidelity = pytest.importorskip("torch_fidelity")


@pytest.fixture(scope="session")
def random_inception(tmp_path_factory) -> Path:
    """A random state dict for the FID InceptionV3 under the official key names.

    Batch-norm statistics are set from one batch of random images, and the last block's
    outputs are scaled down, so that pool3 features are O(1), as real ones are.
    """
    torch.manual_seed(0)
    net = build_fid_inception()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.rand(6, 3, 299, 299) * 2 - 1)
        for module in net.Mixed_7c.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.mul_(0.01)
                module.bias.mul_(0.01)
    path = tmp_path_factory.mktemp("weights") / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture
def patched_pytorch_fid(random_inception, monkeypatch):
    """pytorch-fid's own InceptionV3, loading the random weights instead of downloading."""
    import pytorch_fid.inception as reference

    monkeypatch.setattr(
        reference,
        "load_state_dict_from_url",
        lambda *args, **kwargs: torch.load(random_inception, weights_only=True),
    )
    return reference


def write_images(folder: Path, seed: int, n: int, size: int = 32) -> torch.Tensor:
    """PNG images of smooth random blobs; returns them as floats in [0, 1] (N, 3, H, W)."""
    folder.mkdir(parents=True)
    rng = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=rng)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear")
    pixels = (images * 255).round().to(torch.uint8)
    for i, image in enumerate(pixels):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:03d}.png")
    return pixels.float() / 255


def test_pool3_features_equal_pytorch_fid(random_inception, patched_pytorch_fid):
    reference = patched_pytorch_fid.InceptionV3([3]).eval()
    ours = InceptionExtractor(random_inception).eval()
    images = torch.rand(4, 3, 28, 28)
    with torch.no_grad():
        expected = reference(images)[0].flatten(1)
        pool, logits = ours(images * 2 - 1)
    assert expected.abs().mean() > 0.1  # features of a useful size, not all zero
    torch.testing.assert_close(pool, expected, atol=1e-5, rtol=0)
    state = torch.load(random_inception, weights_only=True)
    torch.testing.assert_close(logits, pool @ state["fc.weight"].T)
    assert logits.shape == (4, 1008)


def test_weights_load_strictly_under_official_names(random_inception, tmp_path):
    state = torch.load(random_inception, weights_only=True)
    assert "Mixed_7c.branch_pool.conv.weight" in state and "fc.weight" in state
    del state["fc.bias"]
    broken = tmp_path / "broken.pth"
    torch.save(state, broken)
    with pytest.raises(RuntimeError, match=r"fc\.bias"):
        InceptionExtractor(broken)


def test_fid_between_folders_equals_pytorch_fid(random_inception, patched_pytorch_fid, tmp_path):
    from pytorch_fid.fid_score import get_activations

    write_images(tmp_path / "a", seed=1, n=10)
    write_images(tmp_path / "b", seed=2, n=10)
    reference = patched_pytorch_fid.InceptionV3([3]).eval()
    files = [sorted(str(p) for p in (tmp_path / side).iterdir()) for side in ("a", "b")]
    a, b = (get_activations(f, reference, 5, 2048, "cpu", num_workers=0) for f in files)
    # pytorch-fid's loading, resizing and features; its distance exactly, without scipy's
    # 2048-d sqrtm (most of a minute on one core): with n samples, the nonzero eigenvalues of
    # sigma_a sigma_b are the squared singular values of Xa Xb^T / (n - 1), X centred
    xa, xb = a - a.mean(0), b - b.mean(0)
    trace_sqrt = np.linalg.svd(xa @ xb.T, compute_uv=False).sum() / (len(a) - 1)
    expected = (
        ((a.mean(0) - b.mean(0)) ** 2).sum()
        + ((xa**2).sum() + (xb**2).sum()) / (len(a) - 1)
        - 2 * trace_sqrt
    )
    ours, protocols = fid_between(
        tmp_path / "a", tmp_path / "b", device="cpu", batch_size=5,
        inception_weights=random_inception,
    )  # fmt: skip
    assert expected > 1.0
    assert ours == pytest.approx(expected, abs=1e-3)
    assert protocols[0]["extractor"] == "inception-v3"
    assert protocols[0]["weights_sha256"] == protocols[1]["weights_sha256"]


def test_frechet_distance_equals_pytorch_fid():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    # full rank (sizes that recurse through the blocked products, odd splits among them),
    # and fewer samples than dimensions
    for n, d in ((600, 64), (1500, 600), (1500, 517), (50, 3), (40, 64)):
        a = rng.standard_normal((n, d))
        b = rng.standard_normal((n, d)) @ rng.standard_normal((d, d)) * 0.3 + 0.5
        mu1, s1 = statistics(a)
        mu2, s2 = statistics(b)
        expected = calculate_frechet_distance(mu1, s1, mu2, s2)
        assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_accepts_read_only_float32_statistics():
    rng = np.random.default_rng(2)
    mu1, s1 = statistics(rng.standard_normal((300, 16)))
    mu2, s2 = statistics(rng.standard_normal((300, 16)) + 0.1)
    expected = frechet_distance(mu1, s1, mu2, s2)
    frozen = [x.astype(np.float32) for x in (mu1, s1, mu2, s2)]
    for x in frozen:
        x.setflags(write=False)  # as np.load gives them
    assert frechet_distance(*frozen) == pytest.approx(expected, rel=1e-5)
    assert not frozen[1].flags.writeable


def test_frechet_distance_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(1).standard_normal((500, 32))
    mu, sigma = statistics(features)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_inception_score_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(1000, 1008, generator=torch.Generator().manual_seed(0)) * 3
    expected = isc_features_to_metric(logits, splits=10, shuffle=False)
    mean, std = inception_score(logits, splits=10)
    assert mean == pytest.approx(expected["inception_score_mean"], rel=1e-4)
    assert std == pytest.approx(expected["inception_score_std"], rel=1e-4)
    perfect = torch.full((1000, 10), -30.0)
    perfect[torch.arange(1000), torch.arange(1000) % 10] = 30.0
    assert inception_score(perfect)[0] == pytest.approx(10.0, rel=1e-6)


def test_kid_equals_torch_fidelity_and_is_zero_for_one_distribution():
    from torch_fidelity.metric_kid import kid_features_to_metric

    rng = torch.Generator().manual_seed(0)
    real = torch.randn(600, 16, generator=rng)
    fake = torch.randn(600, 16, generator=rng) * 1.5 + 0.3
    expected = kid_features_to_metric(
        fake.double(), real.double(), kid_subsets=20, kid_subset_size=200, kid_kernel="poly",
        kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1,
        rng_seed=7, verbose=False,
    )  # fmt: skip
    mean, std = kernel_inception_distance(real.numpy(), fake.numpy(), 20, 200, seed=7)
    assert mean == pytest.approx(expected["kernel_inception_distance_mean"], rel=1e-6)
    assert std == pytest.approx(expected["kernel_inception_distance_std"], rel=1e-6)
    same = torch.randn(600, 16, generator=rng)
    mean_same, std_same = kernel_inception_distance(real.numpy(), same.numpy(), 20, 200, seed=7)
    assert abs(mean_same) < 2 * std_same
    assert mean > 5 * std


def test_precision_recall_equals_torch_fidelity():
    from torch_fidelity.metric_prc import calculate_precision_recall_full

    rng = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=rng)
    fake = torch.randn(300, 8, generator=rng) * 0.5 + 1.0
    expected = calculate_precision_recall_full(fake, real, neighborhood=3)
    assert precision_recall(real, fake, k=3) == pytest.approx(expected, abs=1e-9)
    assert precision_recall(real, real.clone(), k=3) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("num_real", "num_fake", "dim", "k", "dtype"),
    [(300, 250, 64, 5, torch.float32), (200, 310, 16, 3, torch.float32),
     (150, 150, 2048, 7, torch.float32), (300, 250, 64, 5, torch.float64)],
)  # fmt: skip
def test_density_coverage_equals_prdc(num_real, num_fake, dim, k, dtype):
    prdc = pytest.importorskip("prdc")
    rng = torch.Generator().manual_seed(k)
    real = torch.randn(num_real, dim, generator=rng, dtype=dtype)
    fake = torch.randn(num_fake, dim, generator=rng, dtype=dtype) * 0.9 + 0.1
    expected = prdc.compute_prdc(real.numpy(), fake.numpy(), nearest_k=k)
    density, coverage = density_coverage(real, fake, k=k, batch=64)
    assert density == pytest.approx(expected["density"], abs=1e-6)
    assert coverage == pytest.approx(expected["coverage"], abs=1e-6)


def test_density_coverage_of_identical_and_of_distant_sets():
    real = torch.randn(400, 16, generator=torch.Generator().manual_seed(0))
    # each reference sample's ball holds itself and its k - 1 nearest others: k per ball
    assert density_coverage(real, real.clone(), k=5) == (1.0, 1.0)
    assert density_coverage(real, real + 100.0, k=5) == (0.0, 0.0)
    with pytest.raises(UsageError, match="more than 5 reference samples"):
        density_coverage(real[:5], real, k=5)


@pytest.mark.parametrize("name", ["ring", "grid"])
def test_mode_statistics_of_the_mixture_itself(name):
    from ganzoo.metrics.modes import mode_statistics
    from ganzoo.registry import registry

    dataset_class = registry("datasets").load(name)
    dataset = dataset_class(dataset_class.Params(num_samples=40_000), Path("."))
    stats = mode_statistics(dataset.tensor(), dataset.spec.mixture)
    assert stats["modes"] == len(dataset.spec.mixture.means)
    # 2-D Gaussian within 3 std: 1 - exp(-4.5) = 0.9889; RMS offset of that part: 0.9744 std
    assert stats["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.002)
    assert stats["spread"] == pytest.approx(0.9744, abs=0.01)
    assert stats["reverse_kl"] < 0.002
    # half as wide: every sample high-quality, spread halved; one mode only: reverse KL log K
    mixture = dataset.spec.mixture
    narrow = torch.tensor(mixture.means[0]) + 0.5 * mixture.std * torch.randn(5000, 2)
    one = mode_statistics(narrow, mixture)
    assert one["modes"] == 1 and one["high_quality"] == 1.0
    assert one["spread"] == pytest.approx(0.5, abs=0.02)
    assert one["reverse_kl"] == pytest.approx(math.log(len(mixture.means)))


def test_eval_on_a_quickstart_run_reports_modes(tmp_path):
    run = ganzoo.run(
        "quickstart",
        overrides=["train.steps=200", "train.log_every=100", "eval.num_samples=500"],
        out=tmp_path / "run",
        progress="none",
    )
    done = run_cli("eval", str(run.run_dir), "--json")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert set(report["scores"]) == {"modes", "high_quality", "reverse_kl", "spread"}
    assert 0 <= report["scores"]["modes"] <= 8
    assert report["protocol"]["num_generated"] == 500
    assert report["protocol"]["reference"] == "ring"
    assert report["metrics"]["modes"]["protocol"]["num_modes"] == 8
    assert json.loads((run.run_dir / "eval.json").read_text()) == report


def test_recipe_eval_section_runs_after_training(tmp_path):
    run = ganzoo.run(
        "quickstart",
        overrides=[
            "train.steps=100", "eval.metrics=['modes']", "eval.num_samples=300",
            "eval.params.modes.threshold=0.001",
        ],
        out=tmp_path / "run",
        progress="none",
    )  # fmt: skip
    assert run.evaluation is not None
    saved = json.loads((run.run_dir / "eval.json").read_text())
    assert saved["metrics"]["modes"]["params"] == {"threshold": 0.001}
    # with a threshold this tight no sample is high-quality: the KL is undefined, written null
    assert saved["scores"]["high_quality"] == 0.0 and saved["scores"]["reverse_kl"] is None


def test_differing_protocols_are_printed(tmp_path):
    runs = [
        ganzoo.run(
            "quickstart", overrides=["train.steps=50", f"eval.num_samples={n}"],
            out=tmp_path / f"run{n}", progress="none",
        ).run_dir
        for n in (300, 400)
    ]  # fmt: skip
    done = run_cli("eval", *map(str, runs))
    assert done.returncode == 0, done.stderr
    assert "warning: protocols differ in num_generated" in done.stderr
    assert f"{runs[0]}: 300" in done.stderr and f"{runs[1]}: 400" in done.stderr
    assert "warning: protocols differ in run" in done.stderr


def test_inception_weights_missing_offline(tmp_path):
    write_images(tmp_path / "a", seed=1, n=2)
    env = {"TORCH_HOME": str(tmp_path / "torch"), "GANZOO_INCEPTION_WEIGHTS": ""}
    done = run_cli("fid", str(tmp_path / "a"), str(tmp_path / "a"), env=env, timeout=120)
    assert done.returncode == 1
    expected = tmp_path / "torch" / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    assert f"Put pt_inception-2015-12-05-6726825d.pth at {expected}" in done.stderr
    assert "--inception-weights" in done.stderr and "Traceback" not in done.stderr


def test_fid_of_a_folder_with_itself_is_zero(tmp_path, random_inception):
    write_images(tmp_path / "imgs", seed=3, n=6)
    env = {"GANZOO_INCEPTION_WEIGHTS": str(random_inception)}
    done = run_cli("fid", str(tmp_path / "imgs"), str(tmp_path / "imgs"), "--json", env=env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # rounding noise on either side of zero (-2.6e-6 here); the score is clamped at 0
    assert abs(result["fid_raw"]) < 1e-4
    assert result["fid"] == max(result["fid_raw"], 0.0)
    # statistics whose distance to themselves rounds below zero print as 0, not -0.000000
    mu, sigma = np.zeros(4), np.eye(4) * 7.0
    raw = frechet_distance(mu, sigma, mu, sigma)
    save_statistics(tmp_path / "seven.npz", mu, sigma, {"extractor": "test"})
    text = run_cli("fid", str(tmp_path / "seven.npz"), str(tmp_path / "seven.npz"))
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[0] == "FID: 0.000000"
    numbers = run_cli("fid", str(tmp_path / "seven.npz"), str(tmp_path / "seven.npz"), "--json")
    assert json.loads(numbers.stdout)["fid"] == 0.0
    assert json.loads(numbers.stdout)["fid_raw"] == raw


def test_stats_command_writes_pytorch_fid_npz(tmp_path):
    from test_train import write_idx_mnist

    write_idx_mnist(tmp_path / "data")
    cache = {"GANZOO_CACHE_DIR": str(own_cache(tmp_path / "cache"))}
    out = tmp_path / "ref.npz"
    done = run_cli(
        "stats", "mnist", "--split", "train", "--out", str(out), "--extractor",
        "classifier:mnist", "--data-dir", str(tmp_path / "data"), env=cache,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    mu, sigma, protocol = load_statistics(out)
    assert mu.shape == (128,) and sigma.shape == (128, 128)
    assert protocol["extractor"] == "classifier:mnist" and protocol["num_images"] == 256
    with np.load(out) as raw:  # as pytorch-fid reads it
        assert raw["mu"].shape == (128,)
    same = run_cli("fid", str(out), str(out), "--json", env=cache)
    assert same.returncode == 0, same.stderr
    assert abs(json.loads(same.stdout)["fid"]) < 1e-4


def test_classifier_eval_of_an_image_run(tmp_path):
    from test_train import write_idx_mnist

    write_idx_mnist(tmp_path / "data")
    env = {"GANZOO_CACHE_DIR": str(own_cache(tmp_path / "cache"))}
    run = tmp_path / "run"
    done = run_cli(
        "run", "vanilla_mnist", "--out", str(run), "--data-dir", str(tmp_path / "data"),
        "--set", "train.steps=4", "--set", "generator.hidden=[16]",
        "--set", "discriminator.hidden=[16]", env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    evaluated = run_cli(
        "eval", str(run), "--metrics", "fid,is,kid,precision-recall,density-coverage",
        "--num-samples", "200",
        "--extractor", "classifier", "--data-dir", str(tmp_path / "data"), "--json", env=env,
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    (report,) = json.loads(evaluated.stdout)
    assert set(report["scores"]) == {
        "fid", "is", "is_std", "kid", "kid_std", "precision", "recall", "density", "coverage",
    }  # fmt: skip
    protocol = report["protocol"]
    assert protocol["extractor"] == "classifier:mnist"
    assert (
        protocol["trained_on"] == "mnist train[:204]"
        and protocol["tested_on"] == "mnist train[204:]"
    )
    assert len(protocol["weights_sha256"]) == 64
    assert protocol["num_generated"] == 200 and protocol["num_reference"] == 256
    assert protocol["quantized"] is True and protocol["ganzoo"] == ganzoo.__version__
    assert 1.0 <= report["scores"]["is"] <= 10.0
    assert report["metrics"]["fid"]["protocol"]["fid_raw"] == report["scores"]["fid"] > 0
    assert report["metrics"]["density-coverage"]["protocol"] == {
        "num_generated": 200, "num_reference": 256, "k": 5,
    }  # fmt: skip
    assert 0.0 <= report["scores"]["coverage"] <= 1.0 and report["scores"]["density"] >= 0.0
    cached = tmp_path / "cache" / "classifiers" / protocol["weights"]
    assert cached.is_file() and cached.with_suffix(".json").is_file()


def test_stats_of_a_dataset_without_splits_is_a_usage_error(tmp_path):
    done = run_cli("stats", "ring", "--split", "train", "--out", str(tmp_path / "r.npz"))
    assert done.returncode == 2
    assert "--split train: dataset 'ring' has no splits" in done.stderr


def test_fid_of_rgb_folders_with_a_grey_classifier(tmp_path):
    from test_train import write_idx_mnist

    write_idx_mnist(tmp_path / "data")
    write_images(tmp_path / "a", seed=1, n=8, size=28)
    write_images(tmp_path / "b", seed=2, n=8, size=28)
    done = run_cli(
        "fid", str(tmp_path / "a"), str(tmp_path / "b"), "--extractor", "classifier:mnist",
        "--data-dir", str(tmp_path / "data"), "--json",
        env={"GANZOO_CACHE_DIR": str(own_cache(tmp_path / "cache"))},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["fid"] > 0
    assert result["protocols"][0]["extractor"] == "classifier:mnist"
