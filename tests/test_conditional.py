"""Class-conditional GANs: labels through the pipeline, cGAN / projection / ACGAN, sampling, metrics."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, own_cache, run_cli
from PIL import Image
from pydantic import ValidationError
from test_train import (
    assert_mnist_run_resumes_identically,
    sets,
    write_idx_mnist,
)

import ganzoo
from ganzoo.api import DataSpec, Discriminator, LabelledDiscriminator, Params, judge
from ganzoo.checkpoint import load_checkpoint
from ganzoo.errors import ComponentConfigError
from ganzoo.zoo.dcgan import DCGANDiscriminator, DCGANGenerator
from ganzoo.zoo.losses import ACGANLoss
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

SPEC = DataSpec((1, 28, 28), num_classes=10)
# the conditional MLP GAN of vanilla_mnist, small and without batch statistics or dropout
CGAN = [
    "generator.hidden=[32]", "generator.latent_dim=8", "generator.conditional=true",
    "discriminator.hidden=[32]", "discriminator.dropout=0.0", "discriminator.conditional=true",
    "train.ema=0.0", "train.batch_size=32", "train.steps=12",
    "train.log_every=4", "train.sample_every=12", "train.checkpoint_every=6",
    "train.num_samples=20", "eval.metrics=[]",
]  # fmt: skip


@pytest.fixture
def mnist_dir(tmp_path) -> Path:
    write_idx_mnist(tmp_path / "data")
    return tmp_path / "data"


def run_cgan(
    out: Path, data: Path, *extra: str, recipe: str | Path = "vanilla_mnist"
) -> ganzoo.RunResult:
    return ganzoo.run(recipe, overrides=[*CGAN, *extra], out=out, data_dir=data, progress="none")


def without_loss_params(tmp_path: Path, name: str) -> Path:
    """A copy of a recipe whose [loss] names the loss only, so that --set loss.name swaps it."""
    text = (REPO / "recipes" / f"{name}.toml").read_text()
    path = tmp_path / f"{name}.toml"
    lines = [line for line in text.splitlines() if not line.startswith("r1_gamma")]
    path.write_text("\n".join(lines) + "\n")
    return path


# --- networks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("G", "D", "d_params"),
    [
        (MLPGenerator, MLPDiscriminator, {"conditional": True, "label_embedding": 6}),
        (DCGANGenerator, DCGANDiscriminator, {"conditional": True}),
    ],
)
def test_conditional_pairs_use_their_labels(G, D, d_params, seed_zero):
    g = G(G.Params(conditional=True), SPEC)
    d = D(D.Params(**d_params), SPEC)
    assert g.num_classes == d.num_classes == 10
    z, y = g.sample_latent(6), torch.tensor([0, 1, 2, 3, 4, 5])
    x = g(z, y)
    assert x.shape == (6, 1, 28, 28) and d(x, y).shape == (6,)
    g.eval(), d.eval()
    assert not torch.allclose(g(z, y), g(z, y.flip(0)))
    assert not torch.allclose(d(x, y), d(x, y.flip(0)))
    with pytest.raises(ComponentConfigError, match="conditional on 10 classes: give y"):
        g(z)
    g.train(), d.train()
    d(g(z, y), y).sum().backward()
    label_weights = [
        p for n, p in g.named_parameters() if "scale" in n or "shift" in n or "label" in n
    ]
    label_weights += [p for n, p in d.named_parameters() if "projection" in n or "label" in n]
    assert label_weights and all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in label_weights
    )


def test_projection_term_by_hand(seed_zero):
    d = DCGANDiscriminator(DCGANDiscriminator.Params(base_channels=4, conditional=True), SPEC)
    d.eval()
    with torch.no_grad():
        d.projection.weight.zero_()
        d.projection.weight[1] = 1.0
        d.projection.weight[2, :49] = 3.0  # the first channel's 7x7 map
        x = torch.rand(2, 1, 28, 28) * 2 - 1
        features = d.net[:-1](x)  # (2, 8, 7, 7): the feature map the logit's convolution reads
        zero = d(x, torch.tensor([0, 0]))
        one = d(x, torch.tensor([1, 1]))
        two = d(x, torch.tensor([2, 2]))
    # class 0 projects to 0; class 1 adds the sum of all features; class 2 three times channel 0's
    torch.testing.assert_close(zero, d.net[-1](features).view(-1))
    torch.testing.assert_close(one - zero, features.sum((1, 2, 3)))
    torch.testing.assert_close(two - zero, 3 * features[:, 0].sum((1, 2)))


def test_projection_and_class_head_share_the_features(seed_zero):
    params = DCGANDiscriminator.Params(base_channels=4, conditional=True, classifier=True)
    d = DCGANDiscriminator(params, SPEC).eval()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    y = torch.tensor([0, 4, 9])
    with torch.no_grad():
        features = d.net[:-1](x)
        logits, classes = d(x, y), d.classify(x)
        expected = d.net[-1](features).view(-1) + (d.projection(y) * features.flatten(1)).sum(1)
    torch.testing.assert_close(logits, expected)
    assert classes.shape == (3, 10)
    torch.testing.assert_close(classes, d.classes(features).flatten(1))


class FirstColumn(Discriminator):
    """A discriminator whose logit is a sample's first value and class logits the next three."""

    class Params(Params):
        """None."""

    classifies = True

    def forward(self, x):
        return x[:, 0]

    def classify(self, x):
        return x[:, 1:4]


def softplus(t: float) -> float:
    return math.log1p(math.exp(t))


def ce(logits: list[float], label: int) -> float:
    """Cross-entropy of ``logits`` at ``label``, by hand."""
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def test_acgan_loss_by_hand():
    real = torch.tensor([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    fake = torch.tensor([[-1.0, 0.0, 0.0, 3.0], [1.0, 1.0, 2.0, 1.0]])
    real_y, fake_y = torch.tensor([0, 1]), torch.tensor([2, 0])
    D = LabelledDiscriminator(
        FirstColumn(FirstColumn.Params(), DataSpec((4,))), real_y, fake, fake_y
    )
    loss = ACGANLoss(ACGANLoss.Params(class_weight=0.5, fake_class_weight=2.0))

    adversarial = (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(1)) / 2
    real_ce = (ce([1, 0, 0], 0) + ce([0, 2, 0], 1)) / 2
    fake_ce = (ce([0, 0, 3], 2) + ce([1, 2, 1], 0)) / 2
    out = loss.discriminator_loss(D, real, fake)
    assert out.value.item() == pytest.approx(adversarial + 0.5 * (real_ce + 2.0 * fake_ce))
    assert out.logs["d_class"].item() == pytest.approx(real_ce)
    assert out.logs["d_class_accuracy"].item() == 1.0
    g = loss.generator_loss(D, real, fake)
    assert g.value.item() == pytest.approx((softplus(1) + softplus(-1)) / 2 + 0.5 * fake_ce)
    assert g.logs["g_class_accuracy"].item() == 0.5  # [0, 0, 3] -> 2 is right, [1, 2, 1] -> 1 not
    with pytest.raises(ComponentConfigError, match="needs labelled batches"):
        loss.discriminator_loss(FirstColumn(FirstColumn.Params(), DataSpec((4,))), real, fake)


def test_acgan_without_the_real_class_term_is_infogan_and_reads_no_real_label():
    real = torch.tensor([[2.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]])
    fake = torch.tensor([[-1.0, 0.0, 0.0, 3.0], [1.0, 1.0, 2.0, 1.0]])
    fake_y = torch.tensor([2, 0])
    loss = ACGANLoss(ACGANLoss.Params(class_weight=0.5, real_class_weight=0.0))
    outs = []
    for real_y in (torch.tensor([0, 1]), torch.tensor([2, 2])):
        D = LabelledDiscriminator(
            FirstColumn(FirstColumn.Params(), DataSpec((4,))), real_y, fake, fake_y
        )
        outs.append((loss.discriminator_loss(D, real, fake), loss.generator_loss(D, real, fake)))

    adversarial = (softplus(-2) + softplus(0)) / 2 + (softplus(-1) + softplus(1)) / 2
    fake_ce = (ce([0, 0, 3], 2) + ce([1, 2, 1], 0)) / 2
    (d, g), (d_other, g_other) = outs
    # D's head is InfoGAN's Q: trained on the fakes' codes alone, whatever the real labels
    assert d.value.item() == pytest.approx(adversarial + 0.5 * fake_ce)
    assert "d_class" not in d.logs and d.logs["d_class_fake"].item() == pytest.approx(fake_ce)
    assert d_other.value.item() == d.value.item()
    assert g_other.value.item() == g.value.item()
    assert g.value.item() == pytest.approx((softplus(1) + softplus(-1)) / 2 + 0.5 * fake_ce)
    with pytest.raises(ValidationError, match="nothing trains the class head"):
        ACGANLoss.Params(real_class_weight=0.0, fake_class_weight=0.0)


def test_a_bound_discriminator_labels_every_batch_a_loss_makes():
    real, fake = torch.zeros(3, 2), torch.ones(3, 2)
    real_y, fake_y = torch.tensor([0, 1, 2]), torch.tensor([5, 6, 7])
    D = LabelledDiscriminator(
        FirstColumn(FirstColumn.Params(), DataSpec((2,))), real_y, fake, fake_y
    )
    assert torch.equal(D.labels_for(fake.detach()), fake_y)
    assert torch.equal(D.labels_for(real), real_y)
    assert torch.equal(D.labels_for(0.3 * real + 0.7 * fake), real_y)  # interpolates
    assert torch.equal(D.labels_for(torch.cat([real, fake])), torch.cat([real_y, fake_y]))
    with pytest.raises(ComponentConfigError, match="a batch of 4 samples whose labels are unknown"):
        D.labels_for(torch.zeros(4, 2))
    # a conditional per-sample discriminator scores both batches in one call through judge
    mlp = MLPDiscriminator(
        MLPDiscriminator.Params(hidden=[8], dropout=0.0, conditional=True),
        DataSpec((2,), num_classes=8),
    )
    bound = LabelledDiscriminator(mlp, real_y, fake, fake_y)
    joined = judge(bound, real, fake)
    torch.testing.assert_close(joined[0], mlp(real, real_y))
    torch.testing.assert_close(joined[1], mlp(fake, fake_y))


# --- recipes ------------------------------------------------------------------------------


def test_conditional_networks_need_labelled_data(tmp_path):
    done = run_cli("validate", "quickstart", *sets("generator.conditional=true"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "generator.conditional needs labelled data" in lines[0]
    assert lines[0].startswith(f"{REPO / 'recipes' / 'quickstart.toml'}: generator: mlp:")
    ring = without_loss_params(tmp_path, "ring")
    acgan = run_cli("validate", str(ring), *sets("loss.name=acgan"))
    assert acgan.returncode == 2
    assert "loss: acgan reads class labels, and the dataset 'ring' has none" in acgan.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            ["discriminator.conditional=true"],
            "discriminator: mlp is conditional, but generator mlp is not",
        ),
        (
            ["generator.conditional=true"],
            "generator: mlp is conditional, but neither the discriminator",
        ),
        (
            ["generator.conditional=true", "loss.name=acgan"],
            "loss: acgan: the discriminator has no classifier head",
        ),
        (
            [
                "discriminator.conditional=true",
                "discriminator.classifier=true",
                "generator.conditional=true",
            ],
            "classifier = true needs pack = 1 and conditional = false",
        ),
    ],
)
def test_conditional_recipes_that_cannot_work_are_refused(settings, message, tmp_path):
    recipe = without_loss_params(tmp_path, "vanilla_mnist")
    done = run_cli("validate", str(recipe), *sets(*settings))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_class_count_mismatch_is_refused(plugin_site, tmp_path):
    plugin_site(
        "ganzoo-fiveclass", "0.1", {"ganzoo.generators": {"five": "five_class:FiveClasses"}},
        {"five_class": '''
            from ganzoo.zoo.mlp import MLPGenerator


            class FiveClasses(MLPGenerator):
                """An MLP generator that believes in five classes."""

                def __init__(self, params, spec):
                    super().__init__(params, spec)
                    self.num_classes = 5
        '''},
    )  # fmt: skip
    done = run_cli(
        "validate", "vanilla_mnist", *sets("generator.name=five", "discriminator.conditional=true")
    )
    assert done.returncode == 2
    assert "generator: five is conditional on 5 classes, the dataset 'mnist' has 10" in done.stderr
    folder = tmp_path / "folders"
    for name in ("cats", "dogs"):
        (folder / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(folder / name / "a.png")
    bad = run_cli(
        "run", "dcgan_image_folder", "--out", str(tmp_path / "r"),
        *sets(f"data.path='{folder}'", "data.num_classes=3"),
    )  # fmt: skip
    assert bad.returncode == 2
    assert "data.num_classes = 3, but the folder has 2 class sub-folders (cats, dogs)" in bad.stderr


# --- training -----------------------------------------------------------------------------


def test_a_conditional_run_trains_and_draws_one_row_per_class(tmp_path, mnist_dir):
    result = run_cgan(tmp_path / "run", mnist_dir)
    assert result.step == 12
    with Image.open(result.run_dir / "samples" / "step_00000012.png") as grid:
        # 10 rows of 2 (num_samples 20), 30 px a tile plus the label margin
        assert grid.height == 10 * 30 + 2 and grid.width > 2 * 30 + 2
    state = load_checkpoint(result.checkpoint)
    assert "label_code.embedding.weight" not in state["generator"]  # one-hot labels
    done = run_cli(
        "sample", str(result.run_dir), "--class", "7", "--n", "9", "--out", str(tmp_path / "s.png")
    )
    assert done.returncode == 0, done.stderr
    with Image.open(tmp_path / "s.png") as image:
        assert image.size == (3 * 30 + 2, 3 * 30 + 2)
    wrong = run_cli("sample", str(result.run_dir), "--class", "10")
    assert wrong.returncode == 2 and "--class 10: choose a class from 0 to 9" in wrong.stderr
    rows = run_cli("sample", str(result.run_dir), "--interpolate", "--n", "3", "--class", "2")
    assert rows.returncode == 0, rows.stderr


def test_class_on_an_unconditional_run_is_refused(tmp_path, mnist_dir):
    result = run_cgan(
        tmp_path / "run",
        mnist_dir,
        "generator.conditional=false",
        "discriminator.conditional=false",
    )
    done = run_cli("sample", str(result.run_dir), "--class", "3")
    assert done.returncode == 2
    assert "--class 3: this run's generator is not class-conditional" in done.stderr


def test_fake_labels_follow_the_data_when_asked(tmp_path):
    write_idx_mnist(tmp_path / "data", n=256)
    from ganzoo.trainer import Trainer

    drawn = {}
    original = Trainer._fake_labels

    def spy(self):
        labels = original(self)
        drawn.setdefault(self.recipe.train.fake_labels, []).append(labels)
        return labels

    Trainer._fake_labels = spy
    try:
        for mode in ("uniform", "data"):
            run_cgan(
                tmp_path / f"run-{mode}",
                tmp_path / "data",
                f"train.fake_labels={mode}",
                "train.steps=4",
            )
    finally:
        Trainer._fake_labels = original
    assert all(len(labels) == 32 for labels in drawn["uniform"] + drawn["data"])
    assert set(torch.cat(drawn["data"]).tolist()) <= set(range(10))


def test_a_stopped_conditional_run_resumes_bit_identically(tmp_path, mnist_dir, slow_plugin):
    overrides = [*CGAN, "loss.name=slow-ns", "train.steps=60", "train.checkpoint_every=20"]
    assert_mnist_run_resumes_identically(tmp_path, mnist_dir, overrides)


ACGAN = ["discriminator.conditional=false", "discriminator.classifier=true", "loss.name=acgan"]


@pytest.mark.parametrize("extra", [[], ACGAN], ids=["cgan", "acgan"])
def test_conditional_data_parallel_matches_one_process(tmp_path, mnist_dir, extra):
    recipe = without_loss_params(tmp_path, "vanilla_mnist")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
        "-m", "ganzoo", "run", str(recipe), "--out", str(tmp_path / "ddp"),
        "--data-dir", str(mnist_dir), "--progress", "none", *sets(*CGAN, *extra),
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = run_cgan(tmp_path / "one", mnist_dir, *extra, recipe=recipe)
    a = load_checkpoint(single.checkpoint)
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    for net in ("generator", "discriminator"):
        for name, tensor in a[net].items():
            torch.testing.assert_close(b[net][name], tensor, atol=1e-5, rtol=0)


def test_a_plugin_loss_that_knows_no_labels_trains_a_conditional_pair(tmp_path, mnist_dir):
    pytest.importorskip("ganzoo_wgan")
    result = run_cgan(
        tmp_path / "run", mnist_dir, "loss.name=wgan-gp", "train.d_steps=2",
        recipe=without_loss_params(tmp_path, "vanilla_mnist"),
    )  # fmt: skip
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").open()]
    assert all(math.isfinite(r["gp"]) and r["gp"] > 0 for r in records)


def test_acgan_trains_with_the_class_head(tmp_path, mnist_dir):
    result = run_cgan(
        tmp_path / "run", mnist_dir, "discriminator.conditional=false",
        "discriminator.classifier=true", "loss.name=acgan", "loss.adversarial=hinge",
        recipe=without_loss_params(tmp_path, "vanilla_mnist"),
    )  # fmt: skip
    record = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"d_class", "d_class_fake", "g_class", "d_class_accuracy"} <= record.keys()
    assert "classes.weight" in load_checkpoint(result.checkpoint)["discriminator"]


def test_acgan_checks_its_adversarial_loss(tmp_path):
    recipe = str(without_loss_params(tmp_path, "vanilla_mnist"))
    done = run_cli("validate", recipe, *sets("loss.name=acgan", "loss.adversarial=mmd"))
    assert done.returncode == 2 and "adversarial: 'mmd' is no plain adversarial loss" in done.stderr
    done = run_cli(
        "validate", recipe,
        *sets("loss.name=acgan", "loss.adversarial=non-saturating", "loss.adversarial_params.r1=1"),
    )  # fmt: skip
    assert (
        done.returncode == 2
        and "adversarial_params.r1: Extra inputs are not permitted" in done.stderr
    )


# --- evaluation ---------------------------------------------------------------------------


def test_conditional_metrics_are_recorded_with_their_protocol(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("GANZOO_CACHE_DIR", str(own_cache(tmp_path / "cache")))
    result = run_cgan(
        tmp_path / "run", mnist_dir,
        "eval.metrics=['fid', 'class-accuracy', 'intra-fid']", "eval.num_samples=400",
        "eval.extractor='classifier'",
    )  # fmt: skip
    saved = json.loads((result.run_dir / "eval.json").read_text())
    scores = saved["scores"]
    per_class = [scores[f"class_accuracy[{d}]"] for d in range(10)]
    counts = saved["metrics"]["class-accuracy"]["protocol"]["per_class"]
    overall = sum(a * counts[str(d)] for d, a in enumerate(per_class)) / sum(counts.values())
    assert scores["class_accuracy"] == pytest.approx(overall)
    intra = [scores[f"intra_fid[{d}]"] for d in range(10)]
    assert scores["intra_fid"] == pytest.approx(sum(intra) / 10) and all(v > 0 for v in intra)
    raw = saved["metrics"]["intra-fid"]["protocol"]["intra_fid_raw"]
    assert raw == {str(d): scores[f"intra_fid[{d}]"] for d in range(10)}
    assert saved["metrics"]["fid"]["protocol"]["fid_raw"] == scores["fid"]
    assert "fid" in scores and saved["protocol"]["labels"] == "uniform over 10 classes, seed 0 + 1"
    again = run_cli(
        "eval", str(result.run_dir), "--data-dir", str(mnist_dir), "--json",
        env={"GANZOO_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)[0]["scores"] == scores


FLAT = """
from ganzoo.api import Extractor


class Flat(Extractor):
    \"\"\"The flattened samples as features, their first 3 values as logits.\"\"\"

    name = "flat"

    @classmethod
    def build(cls, params, request):
        return cls()

    def protocol(self):
        return {"extractor": "flat"}

    def __call__(self, images):
        flat = images.flatten(1)[:, :16]
        return flat, flat[:, :3]
"""


def test_conditional_metrics_refuse_what_they_cannot_score(tmp_path, mnist_dir, plugin_site):
    plugin_site("ganzoo-flat", "0.1", {"ganzoo.extractors": {"flat": "flat_extractor:Flat"}},
                {"flat_extractor": FLAT})  # fmt: skip
    result = run_cgan(tmp_path / "run", mnist_dir)
    done = run_cli(
        "eval", str(result.run_dir), "--metrics", "class-accuracy", "--extractor", "flat",
        "--num-samples", "50", "--data-dir", str(mnist_dir),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert (
        "class-accuracy needs an extractor whose logits are the dataset's 10 classes" in done.stderr
    )
    ring = ganzoo.run(
        "quickstart", overrides=["train.steps=20"], out=tmp_path / "ring", progress="none"
    )
    done = run_cli("eval", str(ring.run_dir), "--metrics", "intra-fid", "--extractor", "flat")
    assert done.returncode == 2
    assert "the reference samples have no labels" in done.stderr and "Traceback" not in done.stderr


# --- image folders with class sub-folders ---------------------------------------------------


def test_an_image_folder_with_class_subfolders_is_labelled(tmp_path):
    folder = tmp_path / "pets"
    for index, name in enumerate(("cat", "dog", "emu")):
        (folder / name).mkdir(parents=True)
        for i in range(3 + index):
            Image.new("RGB", (12, 12), (40 * i, 80 * index, 0)).save(folder / name / f"{i}.png")
    from ganzoo.zoo.folders import ImageFolder

    dataset = ImageFolder(ImageFolder.Params(path=str(folder), size=8, num_classes=3), tmp_path)
    assert dataset.spec.class_names == ("cat", "dog", "emu") and dataset.spec.num_classes == 3
    assert dataset.labels().tolist() == [0] * 3 + [1] * 4 + [2] * 5
    assert [p.parent.name for p in dataset.files] == ["cat"] * 3 + ["dog"] * 4 + ["emu"] * 5


def test_a_conditional_run_on_class_subfolders(tmp_path):
    folder = tmp_path / "pets"
    for index, name in enumerate(("cat", "dog")):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.new("RGB", (40, 40), (60 * i, 120 * index, 30)).save(folder / name / f"{i}.png")
    done = run_cli(
        "run", "dcgan_image_folder", "--out", str(tmp_path / "run"),
        *sets(f"data.path='{folder}'", "data.num_classes=2", "data.size=32",
              "generator.conditional=true", "discriminator.conditional=true",
              "generator.base_channels=4", "discriminator.base_channels=4",
              "train.batch_size=4", "train.steps=2", "train.num_samples=4",
              "train.num_workers=0", "eval.metrics=[]"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sampled = run_cli("sample", str(tmp_path / "run"), "--class", "dog", "--n", "2")
    assert sampled.returncode == 0, sampled.stderr
    assert sampled.stdout.strip().endswith("samples_class1_step2_seed0.png")


LEVEL = """
import torch
from ganzoo.api import Extractor


class Level(Extractor):
    \"\"\"Five classes read off an image's mean grey level (40 + 40 k out of 255 is class k).\"\"\"

    name = "level"

    @classmethod
    def build(cls, params, request):
        return cls()

    def protocol(self):
        return {"extractor": "level"}

    def __call__(self, images):
        level = ((images.mean(dim=(1, 2, 3)) + 1) * 127.5 - 40) / 40
        return images.flatten(1)[:, :16], -(torch.arange(5) - level[:, None]).square()
"""


def write_levels(folder: Path, counts: list[int]) -> None:
    """Grey 28x28 PNGs, ``counts[k]`` of them at level 40 + 40 k (class k of ``Level``)."""
    folder.mkdir(parents=True)
    for k, count in enumerate(counts):
        for i in range(count):
            Image.new("L", (28, 28), 40 + 40 * k).save(folder / f"{k}_{i:03d}.png")


def test_class_coverage_counts_the_classes_a_generator_draws(tmp_path, plugin_site):
    plugin_site("ganzoo-level", "0.1", {"ganzoo.extractors": {"level": "level_extractor:Level"}},
                {"level_extractor": LEVEL})  # fmt: skip
    write_levels(tmp_path / "real", [20, 20, 20, 20, 20])
    write_levels(tmp_path / "fake", [40, 30, 30, 0, 1])
    done = run_cli(
        "fid", str(tmp_path / "fake"), str(tmp_path / "real"), "--metrics", "class-coverage",
        "--extractor", "level", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # class 4 holds 1/101 of the samples against 1/5 of the reference: under a tenth of it
    assert result["classes_covered"] == 3
    shares = [40 / 101, 30 / 101, 30 / 101, 0, 1 / 101]
    assert [result[f"class_share[{k}]"] for k in range(5)] == pytest.approx(shares)
    kl = sum(q * math.log(q / 0.2) for q in shares if q > 0)
    assert result["class_kl"] == pytest.approx(kl) and kl > 0.3
    protocol = result["metrics"]["class-coverage"]
    assert protocol["generated_count"] == {"0": 40, "1": 30, "2": 30, "3": 0, "4": 1}
    assert protocol["reference_share"] == {str(k): pytest.approx(0.2) for k in range(5)}
    assert protocol["num_generated"] == 101 and protocol["num_reference"] == 100

    same = run_cli(
        "fid", str(tmp_path / "real"), str(tmp_path / "real"), "--metrics", "class-coverage",
        "--extractor", "level", "--json",
    )  # fmt: skip
    assert json.loads(same.stdout)["classes_covered"] == 5
    assert json.loads(same.stdout)["class_kl"] == 0.0


def test_class_coverage_refuses_logits_that_are_not_the_datasets_classes(tmp_path, plugin_site):
    plugin_site("ganzoo-level", "0.1", {"ganzoo.extractors": {"level": "level_extractor:Level"}},
                {"level_extractor": LEVEL})  # fmt: skip
    write_idx_mnist(tmp_path / "data")
    write_levels(tmp_path / "fake", [2, 2, 2, 2, 2])
    done = run_cli(
        "fid", str(tmp_path / "fake"), "mnist", "--split", "train", "--data-dir",
        str(tmp_path / "data"), "--metrics", "class-coverage", "--extractor", "level",
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        "class-coverage needs an extractor whose logits are the dataset's 10 classes "
        "(--extractor classifier); this one gives 5" in done.stderr
    )
