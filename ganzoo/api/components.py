"""The component contract: parameters, data specs, networks, losses and datasets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from ganzoo.errors import ComponentConfigError


class Params(BaseModel):
    """Base of every component's parameter model: unknown keys are an error."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture with equal weights and one isotropic std: the 2-D benchmarks."""

    means: tuple[tuple[float, ...], ...]
    std: float


@dataclass(frozen=True)
class DataSpec:
    """What a dataset's samples look like in model space.

    Attributes:
        shape: one sample's shape, ``(C, H, W)`` for images or ``(D,)`` for points.
        value_range: the range model-space samples lie in (``(-1, 1)`` for images).
        num_classes: the number of label classes, 0 when unlabelled.
        class_names: the label names, when known.
        mixture: the generating mixture of a synthetic dataset, used by mode metrics.

    """

    shape: tuple[int, ...]
    value_range: tuple[float, float] = (-1.0, 1.0)
    num_classes: int = 0
    class_names: tuple[str, ...] = ()
    mixture: Mixture | None = None

    @property
    def is_image(self) -> bool:
        """Whether samples are images ``(C, H, W)``."""
        return len(self.shape) == 3

    @property
    def channels(self) -> int:
        """Image channels (1 or 3); raises for point data."""
        self._require_image()
        return self.shape[0]

    @property
    def size(self) -> int:
        """Image side length in pixels for square images; raises for point or non-square data."""
        self._require_image()
        if self.shape[1] != self.shape[2]:
            raise ComponentConfigError(f"images are {self.shape[1]}x{self.shape[2]}, not square")
        return self.shape[1]

    @property
    def numel(self) -> int:
        """The number of values in one sample."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def require_classes(self, feature: str) -> int:
        """The number of classes, for a component's ``feature`` that needs labelled data.

        Raises:
            ComponentConfigError: the data has no class labels.

        """
        if self.num_classes < 1:
            raise ComponentConfigError(
                f"{feature} needs labelled data, and this dataset has no class labels"
            )
        return self.num_classes

    def _require_image(self) -> None:
        if not self.is_image:
            raise ComponentConfigError(f"this component needs images; the data gives {self.shape}")


@dataclass(frozen=True)
class Batch:
    """One batch of model-space samples and, for labelled data, their integer labels ``(N,)``."""

    samples: Tensor
    labels: Tensor | None = None


def to_model_space(batch: Tensor) -> Tensor:
    """Map a raw batch to model space: uint8 images to [-1, 1] floats, floats unchanged."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)
    return batch.float()


def from_model_space(batch: Tensor) -> Tensor:
    """Map model-space images in [-1, 1] back to uint8 in 0..255 (rounded, clamped)."""
    return batch.detach().add(1.0).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


class Component:
    """Mixin of all components: the ``Params`` model and the ``params`` instance."""

    Params: ClassVar[type[Params]] = Params
    params: Params


EXAMPLE_SPECS = (
    DataSpec((1, 28, 28)),
    DataSpec((3, 32, 32)),
    DataSpec((2,), value_range=(-5.0, 5.0)),
)


class Generator(nn.Module, Component):
    """Maps latent vectors ``z`` of shape ``(N, latent_dim)`` to samples ``(N, *spec.shape)``.

    Subclasses call ``super().__init__(params, spec)``, set ``latent_dim`` and implement
    ``forward``. Outputs lie in ``spec.value_range`` (a tanh output for images).
    ``supported_specs`` lists data specs the network builds for with default parameters;
    ``ganzoo show`` states its parameter count for each.

    A class-conditional generator sets ``num_classes`` (usually ``spec.num_classes``) and
    takes the labels as ``forward(z, y)``, ``y`` integers ``(N,)`` in ``[0, num_classes)``;
    with ``num_classes = 0`` (the default) ganzoo calls ``forward(z)`` alone.
    """

    latent_dim: int
    num_classes: int = 0
    supported_specs: ClassVar[tuple[DataSpec, ...]] = EXAMPLE_SPECS

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__()
        self.params = params
        self.spec = spec

    def sample_latent(
        self,
        n: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Draw ``n`` latent vectors; standard normal unless a subclass says otherwise."""
        return torch.randn(n, self.latent_dim, device=device, generator=generator)


class Discriminator(nn.Module, Component):
    """Maps samples ``(N, *spec.shape)`` to real-vs-fake logits of shape ``(N,)``.

    A discriminator that packs ``pack`` samples into one decision (PacGAN) returns
    ``(N // pack,)`` logits; losses only average over them. ``supported_specs`` is as for
    :class:`Generator`. ``per_sample`` declares that each logit depends on its own sample (or
    pack) alone, with no batch norm or minibatch statistics, so that :func:`judge` may score
    a real and a fake batch in one call.

    A class-conditional discriminator sets ``num_classes`` and takes the labels as
    ``forward(x, y)``. One with an auxiliary classifier head (ACGAN) sets ``classifies`` and
    implements :meth:`classify`, class logits ``(N, spec.num_classes)``.
    """

    supported_specs: ClassVar[tuple[DataSpec, ...]] = EXAMPLE_SPECS
    per_sample: ClassVar[bool] = False
    num_classes: int = 0
    classifies: bool = False

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__()
        self.params = params
        self.spec = spec

    def classify(self, x: Tensor) -> Tensor:
        """Class logits ``(N, spec.num_classes)`` of the auxiliary classifier head."""
        raise NotImplementedError(f"{type(self).__name__} has no classifier head")


def _inner_discriminator(D: nn.Module) -> Discriminator | None:
    return next((m for m in D.modules() if isinstance(m, Discriminator)), None)


def _with_head(inner: Discriminator | None) -> Discriminator:
    """``inner``, a discriminator with a classifier head, or the error that it has none."""
    if inner is None or not inner.classifies:
        raise ComponentConfigError(
            "the discriminator has no classifier head (the zoo's discriminators get one "
            "with classifier = true)"
        )
    return inner


class LabelledDiscriminator(nn.Module):
    """A discriminator bound to the labels of one step's real and fake batches.

    When labels are in play (a conditional discriminator, or a loss that ``uses_labels``) the
    trainer hands losses this wrapper, so that a loss written for unconditional networks
    computes the right thing unchanged: ``D(x)`` passes ``x``'s labels on to a conditional
    discriminator. A batch's labels (:meth:`labels_for`): the fake labels for the fake batch
    itself (the same tensor storage: a ``detach()`` of it counts), both for
    ``torch.cat([real, fake])`` (what :func:`judge` joins), and the real labels for any other
    batch of the real batch's size: the real batch and what a loss makes from it, such as a
    gradient penalty's interpolates (as StudioGAN labels them).
    """

    def __init__(
        self, discriminator: nn.Module, real_labels: Tensor, fake: Tensor, fake_labels: Tensor
    ) -> None:
        super().__init__()
        self.discriminator = discriminator
        self.real_labels, self.fake, self.fake_labels = real_labels, fake, fake_labels
        inner = _inner_discriminator(discriminator)
        self.conditional = inner is not None and inner.num_classes > 0
        self._inner = inner

    def labels_for(self, x: Tensor) -> Tensor:
        """The labels of batch ``x`` (see the class documentation).

        Raises:
            ComponentConfigError: ``x`` is none of the batches whose labels are known.

        """
        n, n_real, n_fake = x.shape[0], len(self.real_labels), len(self.fake_labels)
        if n == n_fake and x.data_ptr() == self.fake.data_ptr():
            return self.fake_labels
        if n == n_real + n_fake and n_fake:
            return torch.cat([self.real_labels, self.fake_labels])
        if n == n_real:
            return self.real_labels
        raise ComponentConfigError(
            f"a conditional discriminator was given a batch of {n} samples whose labels are "
            f"unknown (the real batch has {n_real}, the fake one {n_fake})"
        )

    def forward(self, x: Tensor) -> Tensor:
        """The discriminator's logits of ``x``, with ``x``'s labels when it is conditional."""
        if self.conditional:
            return self.discriminator(x, self.labels_for(x))
        return self.discriminator(x)

    def classify(self, x: Tensor) -> Tensor:
        """Class logits of the discriminator's auxiliary classifier head."""
        inner = _with_head(self._inner)
        # an AugmentedDiscriminator (or the network itself) classifies what it judges
        outer = getattr(self.discriminator, "classify", None)
        return outer(x) if outer is not None else inner.classify(x)


def judge(D: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
    """``D(real), D(fake)``, in one call on both batches when that computes the same.

    ``D`` may be a :class:`Discriminator` or a wrapper of one (DistributedDataParallel,
    ``torch.compile``). One call is taken when the discriminator declares ``per_sample``, the
    batches have the same shape and ``real`` does not require gradients (a gradient penalty
    differentiates ``D(real)`` alone): it halves the calls, and joining the batches changes
    only which random numbers dropout draws for which sample.
    """
    if real.requires_grad or real.shape != fake.shape:
        return D(real), D(fake)
    inner = _inner_discriminator(D)
    if inner is None or not inner.per_sample:
        return D(real), D(fake)
    logits = D(torch.cat([real, fake]))
    half = logits.shape[0] // 2
    return logits[:half], logits[half:]


@dataclass(frozen=True)
class LossOutput:
    """A loss value to minimise and named scalar terms to log (detached, on any device).

    A loss method that logs nothing may return the value alone, a scalar tensor.
    """

    value: Tensor
    logs: Mapping[str, Tensor] = field(default_factory=dict)


class Loss(Component):
    """An adversarial (or moment-matching) objective for one discriminator and generator step.

    ``real`` and ``fake`` are model-space batches. Each method returns the value to minimise,
    a scalar floating-point tensor, or a :class:`LossOutput` of it with terms to log; training
    checks that (:mod:`ganzoo.contract`). In ``discriminator_loss`` the fake batch is
    detached; in ``generator_loss`` it carries gradients to the generator and ``real`` is the
    real batch of the last discriminator step. A loss with ``uses_discriminator = False``
    (moment matching) gets ``None`` for ``D`` and its ``discriminator_loss`` is never called.
    ``default_d_steps`` is the number of discriminator steps per generator step this loss
    asks for when the recipe does not set ``train.d_steps``.

    For labelled runs ``D`` is a :class:`LabelledDiscriminator`, which labels the batches it
    is given itself. A loss that reads labels (ACGAN's class term) sets ``uses_labels``: it
    then always gets a :class:`LabelledDiscriminator` and reads them with ``D.labels_for``.
    """

    uses_discriminator: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = False
    default_d_steps: ClassVar[int] = 1

    def __init__(self, params: Params) -> None:
        self.params = params

    @property
    def differentiates_gradients(self) -> bool:
        """Whether the discriminator loss differentiates D's input gradients (double backward).

        True for gradient penalties (R1, WGAN-GP). ``torch.compile`` cannot compile such a
        discriminator, so ``train.compile`` then compiles the generator only.
        """
        return False

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor | LossOutput:
        """The discriminator's loss on a real and a (detached) fake batch."""
        raise NotImplementedError(f"{type(self).__name__} has no discriminator loss")

    def generator_loss(
        self, D: nn.Module | None, real: Tensor, fake: Tensor
    ) -> Tensor | LossOutput:
        """The generator's loss on a fake batch (``D`` is None when no discriminator is used)."""
        raise NotImplementedError


class Dataset(torch.utils.data.Dataset, Component):
    """A source of raw training samples, described by a :class:`DataSpec`.

    ``__init__(params, data_dir, download)`` must be cheap and must not read the data, except
    to check that its files exist (raising :class:`ganzoo.errors.DataError` that says which
    files are missing and where to put them). :meth:`spec_for` derives the spec from the
    parameters alone, so that a recipe can be checked on a machine without the data.

    Small datasets implement :meth:`tensor` (the whole set as one tensor, which ganzoo keeps on
    the training device); large ones return None there and implement ``__len__`` and
    ``__getitem__`` so that ganzoo streams them through a DataLoader.
    """

    def __init__(self, params: Params, data_dir: Path, download: bool = False) -> None:
        self.params = params
        self.data_dir = Path(data_dir)
        self.download = download

    @classmethod
    def spec_for(cls, params: Params) -> DataSpec:
        """The spec of the samples this dataset gives with ``params``, known without any data."""
        raise NotImplementedError

    @property
    def spec(self) -> DataSpec:
        """The shape and range of the samples."""
        return self.spec_for(self.params)

    def tensor(self) -> Tensor | None:
        """All raw samples as one tensor ``(N, *shape)``, or None for a streamed dataset."""
        return None

    def labels(self) -> Tensor | None:
        """Integer labels ``(N,)`` aligned with the samples, or None when unlabelled."""
        return None

    def __len__(self) -> int:
        """The number of samples."""
        data = self.tensor()
        if data is None:
            raise NotImplementedError(f"{type(self).__name__} must implement __len__")
        return len(data)

    def __getitem__(self, index: int) -> Tensor:
        """One raw sample."""
        data = self.tensor()
        if data is None:
            raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")
        return data[index]
