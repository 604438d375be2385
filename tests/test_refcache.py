"""The reference-feature cache, and scoring folders and datasets against each other."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import own_cache, run_cli
from PIL import Image
from test_train import write_idx_mnist

import ganzoo
from ganzoo.evaluate import evaluate_run
from ganzoo.refcache import FeatureCache, reference_key
from ganzoo.sources import DatasetSamples
from ganzoo.zoo.datasets import MNIST


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory) -> tuple[Path, Path]:
    """A 4-step MLP run on 256 written MNIST-format images: (run folder, data folder)."""
    root = tmp_path_factory.mktemp("refcache")
    write_idx_mnist(root / "data")
    result = ganzoo.run(
        "vanilla_mnist",
        overrides=["train.steps=4", "generator.hidden=[16]", "discriminator.hidden=[16]"],
        out=root / "run", data_dir=root / "data", progress="none",
    )  # fmt: skip
    return result.run_dir, root / "data"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """An empty feature cache of this test's own."""
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(own_cache(tmp_path / "cache")))
    return tmp_path / "cache" / "features"


@pytest.fixture
def reference_passes(monkeypatch) -> list[int]:
    """Counts the passes over a dataset's samples (the extractor reading the reference set)."""
    passes: list[int] = []
    original = DatasetSamples.batches

    def counted(self, batch_size):
        passes.append(len(self))
        yield from original(self, batch_size)

    monkeypatch.setattr(DatasetSamples, "batches", counted)
    return passes


SETTINGS = {"metrics": ("fid", "kid"), "extractor": "classifier", "num_samples": 200}


def _evaluate(run: Path, data: Path, **settings):
    return evaluate_run(run, data_dir=data, **{**SETTINGS, **settings})


def test_second_eval_reads_the_reference_features_from_the_cache(
    mnist_run, cache_dir, reference_passes
):
    run, data = mnist_run
    first = _evaluate(run, data)
    assert reference_passes == [256]
    assert first.reference_features["cache"] == "stored"
    (stored,) = cache_dir.glob("*.npz")
    assert first.reference_features["file"] == str(stored)
    second = _evaluate(run, data)
    assert reference_passes == [256], "the reference set was extracted again"
    assert second.scores == first.scores
    assert second.reference_features == {**first.reference_features, "cache": "hit"}
    saved = json.loads((run / "eval.json").read_text())
    assert saved["reference_features"]["cache"] == "hit"
    assert "reference_features" not in saved["protocol"]
    _evaluate(run, data, cache=False)
    assert reference_passes == [256, 256]


def test_a_changed_protocol_misses_the_cache(mnist_run, cache_dir, reference_passes):
    run, data = mnist_run
    _evaluate(run, data)
    # the same data under another extractor protocol: a miss, a second file
    protocol = {"extractor": "classifier:mnist", "weights_sha256": "0" * 64}
    params = {"split": "train"}
    dataset = MNIST(MNIST.Params(split="train"), data)
    keys = [
        reference_key(protocol, "mnist", params, dataset),
        reference_key({**protocol, "resize": "clean"}, "mnist", params, dataset),
        reference_key(protocol, "mnist", {**params, "split": "test"}, dataset),
        reference_key(protocol, "fashion-mnist", params, dataset),
    ]
    paths = {FeatureCache(cache_dir).path_for(k) for k in keys}
    assert len(paths) == 4
    # changed images under the same names: the data hash misses the cache, so it re-extracts
    other = data.parent / "other"
    write_idx_mnist(other)
    images = other / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    import gzip

    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[-1] ^= 0xFF
    images.write_bytes(gzip.compress(bytes(raw)))
    changed = MNIST(MNIST.Params(split="train"), other)
    assert reference_key(protocol, "mnist", params, changed) != keys[0]


def test_a_truncated_cache_file_is_recomputed_with_a_warning(mnist_run, tmp_path):
    run, data = mnist_run
    env = {"GANZOO_CACHE_DIR": str(own_cache(tmp_path / "cache"))}
    args = ["eval", str(run), "--metrics", "fid", "--extractor", "classifier",
            "--num-samples", "200", "--data-dir", str(data), "--json"]  # fmt: skip
    first = run_cli(*args, env=env)
    assert first.returncode == 0, first.stderr
    (stored,) = (tmp_path / "cache" / "features").glob("*.npz")
    whole = stored.read_bytes()
    stored.write_bytes(whole[: len(whole) // 2])
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    warnings = [line for line in again.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "unreadable" in warnings[0] and str(stored) in warnings[0]
    assert "Traceback" not in again.stderr
    (before,), (after,) = json.loads(first.stdout), json.loads(again.stdout)
    assert after["scores"] == before["scores"]
    assert after["reference_features"]["cache"] == "stored"
    assert stored.read_bytes() != whole[: len(whole) // 2]
    third = run_cli(*args, env=env)
    assert json.loads(third.stdout)[0]["reference_features"]["cache"] == "hit"
    assert "warning" not in third.stderr
    listed = run_cli("stats", "--list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert stored.name in listed.stdout and "mnist [split=train]" in listed.stdout
    assert "classifier:mnist" in listed.stdout and "256" in listed.stdout
    stored.write_bytes(b"not a zip")
    assert "unreadable" in run_cli("stats", "--list", env=env).stdout
    cleared = run_cli("stats", "--clear", env=env)
    assert cleared.returncode == 0 and "removed 1 cached feature files" in cleared.stdout
    assert not list((tmp_path / "cache" / "features").glob("*.npz"))
    assert "empty" in run_cli("stats", "--list", env=env).stdout


def _save_mnist_pngs(data: Path, folder: Path) -> int:
    """The written MNIST training images as grey PNG files; returns how many."""
    folder.mkdir()
    images = MNIST(MNIST.Params(split="train"), data).tensor()
    for i, image in enumerate(images):
        Image.fromarray(image.reshape(28, 28).numpy(), mode="L").save(folder / f"{i:04d}.png")
    return len(images)


def test_fid_between_a_folder_and_a_dataset(mnist_run, tmp_path):
    _, data = mnist_run
    env = {"GANZOO_CACHE_DIR": str(own_cache(tmp_path / "cache"))}
    n = _save_mnist_pngs(data, tmp_path / "same")
    common = ["--extractor", "classifier", "--data-dir", str(data), "--json"]
    done = run_cli(
        "fid", str(tmp_path / "same"), "mnist", "--split", "train",
        "--metrics", "fid,kid,precision-recall", *common, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # the very images the dataset holds, read from PNG files: the same features
    assert abs(result["fid_raw"]) < 1e-3 and result["fid"] == max(result["fid_raw"], 0.0)
    assert result["precision"] == 1.0 and result["recall"] == 1.0
    # KID's unbiased estimate of equal sets lies below zero (the diagonal counts once only)
    assert -0.5 < result["kid"] < 0.0
    folder_side, dataset_side = result["protocols"]
    assert folder_side["num_images"] == n and folder_side["extractor"] == "classifier:mnist"
    assert dataset_side["reference"] == "mnist train"
    assert dataset_side["reference_features"]["cache"] == "stored"
    # statistics of the folder, then the same FID from the .npz (the dataset side now cached)
    stats = run_cli(
        "stats", str(tmp_path / "same"), "--out", str(tmp_path / "same.npz"),
        "--extractor", "classifier:mnist", "--data-dir", str(data), env=env,
    )  # fmt: skip
    assert stats.returncode == 0, stats.stderr
    again = run_cli("fid", str(tmp_path / "same.npz"), "mnist", "--split", "train", *common,
                    env=env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["protocols"][1]["reference_features"]["cache"] == "hit"
    assert abs(json.loads(again.stdout)["fid_raw"] - result["fid_raw"]) < 1e-6


def test_fid_sides_are_checked(mnist_run, tmp_path):
    from ganzoo.compare import compare, open_side
    from ganzoo.errors import UsageError

    _, data = mnist_run
    write = tmp_path / "a"
    write.mkdir()
    Image.fromarray(np.zeros((28, 28), np.uint8), mode="L").save(write / "0.png")
    typo = run_cli("fid", str(write), "mnst", "--extractor", "classifier:mnist")
    assert typo.returncode == 2
    assert "mnst: no such file or folder, and not a dataset" in typo.stderr
    assert "did you mean 'mnist'" in typo.stderr and "Traceback" not in typo.stderr
    with pytest.raises(UsageError, match="apply to datasets, not files"):
        open_side(str(write), split="test")
    with pytest.raises(UsageError, match="dataset 'mnist': split"):
        open_side("mnist", split="valid", data_dir=data)
    with pytest.raises(UsageError, match="dataset 'ring' has no splits"):
        open_side("ring", split="test")
    np.savez(tmp_path / "s.npz", mu=np.zeros(2), sigma=np.eye(2))
    npz = [open_side(str(tmp_path / "s.npz"))] * 2
    with pytest.raises(UsageError, match=r"a \.npz of statistics gives FID only"):
        compare(npz, ["kid"])
    stats = run_cli("stats", "mnist", "--list")
    assert stats.returncode == 2 and "take no SOURCE" in stats.stderr


def test_extractor_params_are_validated_in_recipes_and_options(mnist_run, tmp_path):
    run, data = mnist_run
    recipe = tmp_path / "r.toml"
    text = (Path(ganzoo.__file__).parents[1] / "recipes" / "quickstart.toml").read_text()
    recipe.write_text(text + '\n[eval.extractor_params]\nresize = "nearest"\n')
    done = run_cli("validate", str(recipe))
    assert done.returncode != 0
    assert "eval.extractor_params.resize" in done.stderr and "'clean'" in done.stderr
    # the classifier takes no parameters: refused by name, before any work
    classifier = run_cli(
        "eval", str(run), "--extractor", "classifier", "--resize", "clean",
        "--data-dir", str(data), "--metrics", "fid",
    )  # fmt: skip
    assert classifier.returncode == 2
    assert "--extractor classifier: resize: Extra inputs are not permitted" in classifier.stderr


def test_cache_entries_store_what_was_extracted(tmp_path):
    from ganzoo.api import Features

    cache = FeatureCache(tmp_path)
    key = {"format": 1, "dataset": "x", "params": {}, "extractor": {"extractor": "e"}}
    features = Features(torch.randn(5, 3), torch.randn(5, 2))
    entry = cache.store(key, features)
    assert entry is not None and entry.num_samples == 5
    loaded, again = cache.load(key)
    assert torch.equal(loaded.pool, features.pool) and torch.equal(loaded.logits, features.logits)
    assert again.created == entry.created
    # a file whose content was changed fails its checksum
    with np.load(entry.path) as data:
        arrays = {k: data[k] for k in data.files}
    arrays["pool"][0, 0] += 1
    np.savez(entry.path, **arrays)
    with pytest.warns(UserWarning, match="unreadable .*checksum"):
        assert cache.load(key) is None
