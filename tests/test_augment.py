"""Augmentations: DiffAugment's operations, p, ADA's adaptive p, resume, plugins, recipes."""

from __future__ import annotations

import pytest
import torch
from conftest import run_cli
from test_train import (
    assert_mnist_run_resumes_identically,
    assert_same,
    sets,
    write_idx_mnist,
)

import ganzoo
from ganzoo.api import DataSpec, LabelledDiscriminator
from ganzoo.augment import Augmenter
from ganzoo.checkpoint import load_checkpoint
from ganzoo.sections import AugmentSection
from ganzoo.zoo.dcgan import DCGANDiscriminator
from ganzoo.zoo.diffaugment import DiffAugment, color, cutout, translation
from ganzoo.zoo.losses import HingeLoss, NonSaturatingLoss
from ganzoo.zoo.mlp import MLPDiscriminator

SPEC = DataSpec((1, 28, 28))
# vanilla_mnist, small, with DiffAugment under ADA that moves p quickly
ADA = [
    "generator.hidden=[32]", "generator.latent_dim=8", "discriminator.hidden=[32]",
    "discriminator.dropout=0.0", "train.ema=0.0", "train.batch_size=32", "train.steps=12",
    "train.log_every=4", "train.sample_every=12", "train.checkpoint_every=6", "eval.metrics=[]",
    'augment.name="diffaugment"', "augment.p=0.5", "augment.ada_target=0.6",
    "augment.ada_images=2000",
]  # fmt: skip


@pytest.fixture
def mnist_dir(tmp_path):
    write_idx_mnist(tmp_path / "data")
    return tmp_path / "data"


def images(n: int = 16, channels: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1


# --- the operations -------------------------------------------------------------------------


@pytest.mark.parametrize("op", [color, translation, cutout])
def test_each_operation_passes_gradients_to_its_input(op, seed_zero):
    x = images(channels=3).requires_grad_(True)
    op(x).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def shifted(x: torch.Tensor, dx: int, dy: int) -> torch.Tensor:
    """``x`` (C, H, W) moved by ``dx`` rows and ``dy`` columns, zero-filled."""
    out = torch.zeros_like(x)
    h, w = x.shape[1:]
    out[:, max(0, -dx) : h - max(0, dx), max(0, -dy) : w - max(0, dy)] = x[
        :, max(0, dx) : h + min(0, dx) or None, max(0, dy) : w + min(0, dy) or None
    ]
    return out


def test_translation_shifts_each_sample_by_whole_pixels_within_the_ratio(seed_zero):
    x = images(32)
    out = translation(x, 0.125)  # up to round(28 * 0.125) = 4 pixels
    moves = []
    for a, b in zip(x, out, strict=True):
        found = [
            (dx, dy)
            for dx in range(-4, 5)
            for dy in range(-4, 5)
            if torch.equal(shifted(a, dx, dy), b)
        ]
        assert len(found) == 1
        moves.append(found[0])
    assert len(set(moves)) > 10  # a draw per sample


def test_cutout_zeroes_one_square_per_sample(seed_zero):
    x = images(32) * 0.5 + 0.6  # no zeros in the input
    out = cutout(x, 0.5)  # a 14x14 square, clipped at the border
    for a, b in zip(x, out, strict=True):
        zero = b[0] == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        assert 0 < len(rows) <= 14 and 0 < len(cols) <= 14
        box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert box.all() and zero.sum() == box.numel()
        assert torch.equal(b[0][~zero], a[0][~zero])


def test_color_is_an_affine_map_of_each_single_channel_image(seed_zero):
    x = images(8)
    out = color(x)
    for a, b in zip(x, out, strict=True):
        design = torch.stack([a.flatten(), torch.ones(a.numel())], 1).double()
        solution = torch.linalg.lstsq(design, b.flatten().double().unsqueeze(1)).solution
        assert torch.allclose(design @ solution, b.flatten().double().unsqueeze(1), atol=1e-5)
        assert not torch.allclose(a, b)


def test_p_zero_is_the_identity_and_p_draws_per_sample(seed_zero):
    aug = DiffAugment(DiffAugment.Params(policy=["translation"]), SPEC)
    x = images(400)
    assert torch.equal(aug(x, torch.tensor(0.0)), x)
    changed = (aug(x, torch.tensor(0.5)) != x).flatten(1).any(1).sum().item()
    # a shift of (0, 0) leaves a sample as it was: 1/81 of those drawn
    assert 160 <= changed <= 240
    assert (aug(x, torch.tensor(1.0)) != x).flatten(1).any(1).sum().item() >= 380


def test_augmented_discriminator_sees_augmented_batches_and_classifies_them():
    spec = DataSpec((1, 28, 28), num_classes=10)
    aug = DiffAugment(DiffAugment.Params(), spec)
    section = AugmentSection(name="diffaugment")
    D = MLPDiscriminator(MLPDiscriminator.Params(hidden=[8], dropout=0.0), spec).eval()
    x, one = images(4), torch.tensor(1.0)

    def same_draws(a, b):
        torch.manual_seed(3)
        first = a()
        torch.manual_seed(3)
        return torch.equal(first, b())

    wrapped = Augmenter(aug, section, 4, torch.device("cpu")).wrap(D)
    assert same_draws(lambda: wrapped(x), lambda: D(aug(x, one)))
    assert not torch.equal(wrapped(x), D(x))
    # labels pass through, and an ACGAN head reads the augmented batch too
    acgan = DCGANDiscriminator(DCGANDiscriminator.Params(base_channels=4, classifier=True), spec)
    acgan.eval()
    labels = torch.zeros(4, dtype=torch.long)
    bound = LabelledDiscriminator(
        Augmenter(aug, section, 4, torch.device("cpu")).wrap(acgan), labels, x, labels
    )
    assert same_draws(lambda: bound.classify(x), lambda: acgan.classify(aug(x, one)))
    assert same_draws(lambda: bound(x), lambda: acgan(aug(x, one)))


# --- ADA -------------------------------------------------------------------------------------


class Rigged(MLPDiscriminator):
    """A discriminator whose logits have the sign it is told to give."""

    sign = 1.0

    def forward(self, x, y=None):
        return torch.full((x.shape[0],), self.sign) + 0.0 * super().forward(x)


@pytest.mark.parametrize(("sign", "direction"), [(1.0, 1), (-1.0, -1)])
def test_ada_moves_p_towards_the_target(sign, direction, seed_zero):
    D = Rigged(Rigged.Params(hidden=[8], dropout=0.0), SPEC)
    D.sign = sign
    aug = DiffAugment(DiffAugment.Params(), SPEC)
    section = AugmentSection(
        name="diffaugment", p=0.5, ada_target=0.6, ada_interval=4, ada_images=6400
    )
    augmenter = Augmenter(aug, section, 16, torch.device("cpu"))
    step = 16 * 4 / 6400
    for loss in (NonSaturatingLoss(NonSaturatingLoss.Params()), HingeLoss(HingeLoss.Params())):
        before = augmenter.p.item()
        for _ in range(4):
            real, fake = images(16), images(16).flip(0)
            loss.discriminator_loss(augmenter.wrap(D, real), real, fake)
            assert augmenter.p.item() == before  # p moves every 4th update only
            augmenter.discriminator_updated()
        assert augmenter.p.item() == pytest.approx(before + direction * step)
    assert augmenter.r_t.item() == sign
    assert augmenter.p.item() == pytest.approx(0.5 + direction * 2 * step)
    logs = augmenter.logs()
    assert logs["augment_p"].item() == pytest.approx(0.5 + direction * 2 * step)


def test_ada_reads_only_the_real_batch(seed_zero):
    D = Rigged(Rigged.Params(hidden=[8], dropout=0.0), SPEC)
    aug = DiffAugment(DiffAugment.Params(), SPEC)
    section = AugmentSection(name="diffaugment", ada_target=0.6, ada_interval=1)
    augmenter = Augmenter(aug, section, 16, torch.device("cpu"))
    real = images(16)
    wrapped = augmenter.wrap(D, real)
    wrapped(images(16))  # another batch of the real batch's size: not counted
    wrapped(torch.cat([real, images(16)]))  # judge's joined batch: its first half counted
    wrapped(real.detach().requires_grad_(True))  # an R1 penalty's real batch: counted
    assert augmenter._count.item() == 32
    augmenter.wrap(D)(real)  # the generator's update: never counted
    assert augmenter._count.item() == 32


def test_a_stopped_ada_run_resumes_bit_identically(tmp_path, mnist_dir, slow_plugin):
    overrides = [*ADA, "loss.name=slow-ns", "train.steps=60", "train.checkpoint_every=20"]
    reference, resumed = assert_mnist_run_resumes_identically(tmp_path, mnist_dir, overrides)
    saved = load_checkpoint(reference)["augment"]
    assert saved["p"].item() != 0.5 and saved["updates"] == 60
    assert_same(saved, load_checkpoint(resumed)["augment"])


def test_a_run_logs_p_and_records_the_section(tmp_path, mnist_dir):
    result = ganzoo.run(
        "vanilla_mnist", overrides=ADA, out=tmp_path / "run", data_dir=mnist_dir, progress="none"
    )
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    import json

    records = [json.loads(line) for line in lines]
    assert records[0]["augment_p"] > 0 and "ada_rt" in records[0]
    assert records[-1]["augment_p"] != records[0]["augment_p"]
    resolved = (result.run_dir / "resolved.toml").read_text()
    assert '[augment]\nname = "diffaugment"\np = 0.5\nada_target = 0.6\n' in resolved


# --- recipes and plugins ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recipe", "extra", "message"),
    [
        ("gmmn_mnist", [], "augment: an augmentation is applied before the discriminator, and "
         "loss 'mmd' uses none; remove [augment]"),
        ("quickstart", [], "augment: diffaugment: diffaugment augments images (C, H, W); the "
         "data gives samples of shape (2,)"),
        ("vanilla_mnist", ['augment.policy=["colour"]'], "augment.policy[0]: Input should be "
         "'color', 'translation' or 'cutout'"),
        ("vanilla_mnist", ["augment.p=1.5"], "augment.p: Input should be less than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_augment_sections_are_refused(recipe, extra, message):
    result = run_cli("validate", recipe, *sets('augment.name="diffaugment"', *extra))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


FLIP = """
import torch
from ganzoo.api import Augmentation, Params

CALLS = []


class Flip(Augmentation):
    \"\"\"Mirror images left to right, with probability p.\"\"\"

    class Params(Params):
        \"\"\"No parameters.\"\"\"

    def forward(self, x, p):
        CALLS.append(x.shape[0])
        chosen = torch.rand(x.shape[0], 1, 1, 1) < p
        return torch.where(chosen, x.flip(3), x)
"""


def test_a_plugin_augmentation_is_listed_and_used(tmp_path, mnist_dir, plugin_site):
    plugin_site("ganzoo-flip", "0.3", {"ganzoo.augmentations": {"flip": "flip_aug:Flip"}},
                {"flip_aug": FLIP})  # fmt: skip
    listed = run_cli("list", "augmentations")
    assert listed.returncode == 0, listed.stderr
    assert "flip" in listed.stdout and "ganzoo-flip 0.3" in listed.stdout
    assert "diffaugment" in listed.stdout
    overrides = [o for o in ADA if not o.startswith("augment.")] + ['augment.name="flip"']
    ganzoo.run("vanilla_mnist", overrides=overrides, out=tmp_path / "run", data_dir=mnist_dir,
               progress="none")  # fmt: skip
    import flip_aug

    # each of the 12 steps: D on the real (apart, for R1) and the fake batch, then G's fakes;
    # and one batch when the recipe is checked on the meta device
    assert flip_aug.CALLS == [32] * (1 + 12 * 3)
