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

    def _require_image(self) -> None:
        if not self.is_image:
            raise ComponentConfigError(f"this component needs images; the data gives {self.shape}")


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
    """

    latent_dim: int
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
    """

    supported_specs: ClassVar[tuple[DataSpec, ...]] = EXAMPLE_SPECS
    per_sample: ClassVar[bool] = False

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__()
        self.params = params
        self.spec = spec


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
    inner = next((m for m in D.modules() if isinstance(m, Discriminator)), None)
    if inner is None or not inner.per_sample:
        return D(real), D(fake)
    logits = D(torch.cat([real, fake]))
    half = logits.shape[0] // 2
    return logits[:half], logits[half:]


@dataclass(frozen=True)
class LossOutput:
    """A loss value to minimise and named scalar terms to log (detached, on any device)."""

    value: Tensor
    logs: Mapping[str, Tensor] = field(default_factory=dict)


class Loss(Component):
    """An adversarial (or moment-matching) objective for one discriminator and generator step.

    ``real`` and ``fake`` are model-space batches. In ``discriminator_loss`` the fake batch is
    detached; in ``generator_loss`` it carries gradients to the generator and ``real`` is the
    real batch of the last discriminator step. A loss with ``uses_discriminator = False``
    (moment matching) gets ``None`` for ``D`` and its ``discriminator_loss`` is never called.
    ``default_d_steps`` is the number of discriminator steps per generator step this loss
    asks for when the recipe does not set ``train.d_steps``.
    """

    uses_discriminator: ClassVar[bool] = True
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

    def discriminator_loss(self, D: nn.Module, real: Tensor, fake: Tensor) -> LossOutput:
        """The discriminator's loss on a real and a (detached) fake batch."""
        raise NotImplementedError(f"{type(self).__name__} has no discriminator loss")

    def generator_loss(self, D: nn.Module | None, real: Tensor, fake: Tensor) -> LossOutput:
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
