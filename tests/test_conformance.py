"""The conformance kit: every built-in component passes it, and it names what a broken one breaks.

Datasets that read files get tiny ones written here in their published formats: IDX for
MNIST and Fashion-MNIST, a pickled batch for CIFAR-10, PNGs for an image folder.
"""

from __future__ import annotations

import gzip
import pickle
import re
import struct
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ganzoo.api import Dataset, DataSpec, LossOutput, Metric, Params
from ganzoo.errors import DataError
from ganzoo.registry import registry
from ganzoo.testing import (
    ConformanceError,
    check_augmentation,
    check_component,
    check_dataset,
    check_discriminator,
    check_generator,
    check_loss,
    check_metric,
)
from ganzoo.zoo.diffaugment import DiffAugment
from ganzoo.zoo.losses import HingeLoss, NonSaturatingLoss
from ganzoo.zoo.mixtures import Ring
from ganzoo.zoo.mlp import MLPDiscriminator, MLPGenerator

POINTS = [DataSpec((2,))]


def write_idx(raw: Path, n: int = 6) -> None:
    raw.mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (n, 28, 28), dtype=np.uint8)
    with gzip.open(raw / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with gzip.open(raw / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n)))


def write_cifar_test_batch(root: Path, n: int = 6) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    data = np.random.default_rng(0).integers(0, 256, (n, 3072), dtype=np.uint8)
    batch = {"data": data, "labels": [i % 10 for i in range(n)]}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))


def write_pngs(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def dataset_options(name: str, cls: type, root: Path) -> dict:
    """What check_dataset needs for the built-in dataset ``name``: its params and data."""
    if name in ("mnist", "fashion-mnist"):
        write_idx(root / ("MNIST" if name == "mnist" else "FashionMNIST") / "raw")
        return {"params": cls.Params(split="test"), "data_dir": root}
    if name == "cifar10":
        write_cifar_test_batch(root)
        return {"params": cls.Params(split="test"), "data_dir": root}
    if name == "image-folder":
        write_pngs(root / "pictures")
        return {"params": cls.Params(path="pictures", size=8), "data_dir": root}
    return {}


BUILTINS = [
    (kind, entry.name)
    for kind in ("generators", "discriminators", "losses", "datasets", "metrics", "augmentations")
    for entry in registry(kind) if entry.builtin
]  # fmt: skip


@pytest.mark.parametrize(("kind", "name"), BUILTINS, ids=[f"{k}:{n}" for k, n in BUILTINS])
def test_every_builtin_component_passes(kind, name, tmp_path):
    cls = registry(kind).load(name)
    options = dataset_options(name, cls, tmp_path) if kind == "datasets" else {}
    check_component(cls, **options)


def test_checks_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    check_component(MLPGenerator, specs=POINTS)
    assert torch.equal(torch.get_rng_state(), state)


# --- broken components, and what the kit says about them ---------------------------------------


class ShortGenerator(MLPGenerator):
    """An MLP generator that drops the last value of every sample."""

    def forward(self, z):
        return super().forward(z)[..., :-1]


class LoudGenerator(MLPGenerator):
    """An MLP generator whose images overshoot [-1, 1]."""

    def forward(self, z):
        return 10 * super().forward(z)


class NoInputGradient(MLPDiscriminator):
    """An MLP discriminator that cuts the graph at its input."""

    def forward(self, x):
        return super().forward(x.detach())


class FrozenGenerator(MLPGenerator):
    """An MLP generator with a layer that is never used."""

    def __init__(self, params, spec):
        super().__init__(params, spec)
        self.unused = torch.nn.Linear(2, 2)


class LooseParams(HingeLoss):
    """The hinge loss with parameters that accept any key."""

    class Params(BaseModel):
        """Anything goes."""

        model_config = ConfigDict(extra="allow")


class PlainPydanticParams(HingeLoss):
    """The hinge loss with parameters that forbid unknown keys but skip ganzoo.api.Params."""

    class Params(BaseModel):
        """Strict, but not derived from ganzoo.api.Params."""

        model_config = ConfigDict(extra="forbid")


class Undocumented(HingeLoss):
    pass


class UndescribedParameter(HingeLoss):
    """The hinge loss with a margin nobody explains."""

    class Params(Params):
        """A margin."""

        margin: float = 1.0


class DoublingParameter(HingeLoss):
    """The hinge loss whose margin doubles every time it is read."""

    class Params(Params):
        """A margin that grows."""

        margin: float = Field(1.0, description="The margin, doubled on validation.")

        @field_validator("margin")
        @classmethod
        def _double(cls, value: float) -> float:
            return 2 * value


class DetachedGeneratorLoss(NonSaturatingLoss):
    """The non-saturating loss with the generator cut off."""

    def generator_loss(self, D, real, fake):
        return super().generator_loss(D, real, fake.detach())


class InfiniteLog(HingeLoss):
    """The hinge loss that logs an infinite ratio."""

    def discriminator_loss(self, D, real, fake):
        out = super().discriminator_loss(D, real, fake)
        return LossOutput(out.value, {**out.logs, "ratio": torch.tensor(float("inf"))})


class FiveTimes(HingeLoss):
    """The hinge loss asking for a non-integer number of critic steps."""

    default_d_steps: ClassVar[int] = 5.0


class Unchecked(Dataset):
    """Points read from a file that is never checked for."""

    class Params(Params):
        """No parameters."""

    def __init__(self, params, data_dir, download=False):
        super().__init__(params, data_dir, download)
        self.text = (self.data_dir / "points.txt").read_text()

    @classmethod
    def spec_for(cls, params):
        return DataSpec((2,))


class IntegerPoints(Dataset):
    """Points stored as integers."""

    class Params(Params):
        """No parameters."""

    @classmethod
    def spec_for(cls, params):
        return DataSpec((2,))

    def tensor(self):
        return torch.arange(8).view(4, 2)


class MissingFiles(Ring):
    """The ring, pretending its files are missing."""

    def __init__(self, params, data_dir, download=False):
        raise DataError(f"missing points.npy in {data_dir}")


class DictMetric(Metric):
    """A metric that returns a plain dict."""

    class Params(Params):
        """No parameters."""

    def compute(self, real, fake, context):
        return {"score": 1.0}


class AlwaysOn(DiffAugment):
    """DiffAugment that ignores p."""

    def forward(self, x, p):
        return super().forward(x, torch.ones_like(p))


class Unseeded(DiffAugment):
    """DiffAugment that draws from its own unseeded generator."""

    def forward(self, x, p):
        own = torch.Generator()
        own.seed()  # from the operating system's randomness
        return super().forward(x, p) + p * torch.rand(1, generator=own)


class Cut(DiffAugment):
    """DiffAugment that cuts its output off from its input."""

    def forward(self, x, p):
        return super().forward(x.detach(), p)


BROKEN = [
    (check_generator, ShortGenerator, {"specs": POINTS}, "output shape (4, 1), not (4, 2)"),
    (check_generator, LoudGenerator, {"specs": [DataSpec((1, 28, 28))]},
     "images outside the value range [-1.0, 1.0]"),
    (check_generator, FrozenGenerator, {"specs": POINTS}, "no gradient reaches unused.weight"),
    (check_discriminator, NoInputGradient, {"specs": POINTS},
     "no finite, non-zero gradient reaches the input samples"),
    (check_loss, LooseParams, {}, 'must set extra="forbid"'),
    (check_loss, PlainPydanticParams, {}, "Params must derive from ganzoo.api.Params"),
    (check_loss, Undocumented, {}, "has no docstring"),
    (check_loss, UndescribedParameter, {}, "parameter 'margin' has no description"),
    (check_loss, DoublingParameter, {}, "do not survive a round trip through TOML"),
    (check_loss, DetachedGeneratorLoss, {}, "generator_loss does not depend on the generator"),
    (check_loss, InfiniteLog, {}, "discriminator_loss: log 'ratio' is inf"),
    (check_loss, FiveTimes, {}, "default_d_steps is 5.0, not an int >= 1"),
    (check_dataset, Unchecked, {}, "raises FileNotFoundError"),
    (check_dataset, IntegerPoints, {}, "items are torch.int64"),
    (check_dataset, MissingFiles, {}, "needs data files; pass data_dir="),
    (check_metric, DictMetric, {}, "compute returns dict, not ganzoo.api.MetricResult"),
    (check_augmentation, AlwaysOn, {}, "on (1, 28, 28): p = 0 changes the batch"),
    (check_augmentation, Cut, {}, "on (1, 28, 28): no gradient reaches the input"),
    (check_augmentation, Unseeded, {}, "on (1, 28, 28): two calls under one seed differ"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "cls", "options", "message"), BROKEN, ids=[b[1].__name__ for b in BROKEN]
)
def test_kit_names_the_class_and_the_problem(check, cls, options, message):
    with pytest.raises(ConformanceError, match=re.escape(message)) as caught:
        check(cls, **options)
    assert str(caught.value).startswith(cls.__qualname__)
    with pytest.raises(ConformanceError, match=re.escape(message)):
        check_component(cls, **options)


def test_a_dataset_with_required_parameters_asks_for_them():
    with pytest.raises(ConformanceError, match=r"ImageFolder: Params\(\) fails with the defaults"):
        check_dataset(registry("datasets").load("image-folder"))


def test_a_class_that_is_no_component_is_refused():
    with pytest.raises(ConformanceError, match="dict is not a ganzoo component: derive it from"):
        check_component(dict)
