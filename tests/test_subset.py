"""Training on a seeded subset of the data (``data.subset``)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli, shared_data_dir
from test_train import QUICK, sets

import ganzoo
from ganzoo.build import build_dataset
from ganzoo.recipe import load_recipe
from ganzoo.subset import subset_indices, subset_size, training_set


def test_the_same_seed_draws_the_same_subset():
    labels = torch.arange(1000) % 10
    a = subset_indices(1000, 100, seed=0, labels=labels)
    assert torch.equal(a, subset_indices(1000, 100, seed=0, labels=labels))
    assert not torch.equal(a, subset_indices(1000, 100, seed=1, labels=labels))
    assert len(set(a.tolist())) == 100 and torch.equal(a, a.sort().values)
    unlabelled = subset_indices(1000, 100, seed=0)
    assert torch.equal(unlabelled, subset_indices(1000, 100, seed=0))
    assert len(set(unlabelled.tolist())) == 100


def test_each_class_keeps_its_share():
    balanced = torch.arange(1000) % 10
    picked = subset_indices(1000, 100, seed=0, labels=balanced)
    assert torch.bincount(balanced[picked]).tolist() == [10] * 10
    # 500 / 300 / 200 samples: 7 of them split 3.5 / 2.1 / 1.4 -> 3 / 2 / 1, the remainder
    # going to the largest fraction (class 0's 0.5)
    skewed = torch.tensor([0] * 500 + [1] * 300 + [2] * 200)
    picked = subset_indices(1000, 7, seed=0, labels=skewed)
    assert torch.bincount(skewed[picked], minlength=3).tolist() == [4, 2, 1]


def test_a_fraction_or_a_count():
    assert subset_size(0.1, 60_000) == 6000
    assert subset_size(0.00001, 100) == 1
    assert subset_size(250, 60_000) == 250


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data")
def test_ten_percent_of_fashion_mnist_is_600_of_each_class():
    recipe = load_recipe("dcgan_fashion_mnist", ["data.subset=0.1"])
    full = build_dataset(recipe, shared_data_dir())
    subset = training_set(full, recipe)
    assert len(subset) == 6000 and len(full) == 60_000
    labels = subset.labels()
    assert labels is not None and torch.bincount(labels).tolist() == [600] * 10
    data = subset.tensor()
    assert data is not None and data.shape == (6000, 1, 28, 28)
    indices = subset.indices
    assert torch.equal(data[17], full.tensor()[indices[17]])
    assert torch.equal(subset[17], full[int(indices[17])])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "data.subset: a count of samples must be 1 or more, not 0"),
        ("-5", "data.subset: a count of samples must be 1 or more, not -5"),
        ("1.5", "data.subset: a fraction must lie in (0, 1], not 1.5"),
        ("true", "data.subset: give a count of samples (an integer) or a fraction"),
    ],
)
def test_bad_subsets_are_refused(value, message):
    result = run_cli("validate", "quickstart", "--set", f"data.subset={value}")
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_subset_larger_than_the_data_is_refused_before_any_folder(tmp_path):
    result = run_cli(
        "run", "quickstart", "--out", str(tmp_path / "run"), *sets(*QUICK, "data.subset=200000")
    )
    assert result.returncode == 2, result.stderr
    assert "data.subset: 200000 samples asked, the dataset has 100000" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_on_a_subset_records_it_and_scores_against_all_the_data(tmp_path):
    overrides = [*QUICK, "data.subset=0.05", 'eval.metrics=["modes"]', "eval.num_samples=500"]
    result = ganzoo.run("quickstart", overrides=overrides, out=tmp_path / "run", progress="none")
    assert "subset = 0.05" in (result.run_dir / "resolved.toml").read_text()
    protocol = json.loads((result.run_dir / "eval.json").read_text())["protocol"]
    assert protocol["train_subset"] == (
        "data.subset = 0.05: 5000 of the 100000 reference samples, seed 0"
    )
    assert protocol["num_reference"] == 100_000
    again = run_cli("eval", str(result.run_dir), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["protocol"]["train_subset"] == protocol["train_subset"]
