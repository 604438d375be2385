"""Sample sets that metrics read in batches: a dataset, a generator, a folder of image files.

Each is a :class:`ganzoo.api.Samples`: a length, a spec and model-space float batches in a
fixed order, and ``labels``, the class of each sample in that order (None when unknown): the
dataset's labels, or the labels a conditional generator is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ganzoo.api import Dataset, DataSpec, Generator, Samples, to_model_space
from ganzoo.errors import DataError, UsageError
from ganzoo.progress import ReportTo, track

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


class DatasetSamples:
    """A dataset's samples in order: from its tensor when it has one, else item by item."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset, self.spec = dataset, dataset.spec
        self.data = dataset.tensor()
        self.labels = dataset.labels()

    def __len__(self) -> int:
        """The number of samples."""
        return len(self.dataset)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space float batches."""
        for start in range(0, len(self), batch_size):
            stop = min(start + batch_size, len(self))
            if self.data is not None:
                raw = self.data[start:stop]
            else:
                raw = torch.stack([self.dataset[i] for i in range(start, stop)])
            yield to_model_space(raw)


def conditioning_labels(
    n: int, num_classes: int, seed: int, counts: Tensor | None = None
) -> Tensor:
    """``n`` labels for a conditional generator's samples, from their own seeded stream.

    Uniform over the classes, or, given each class's ``counts`` in the data, as often as there;
    drawn with ``seed + 1`` so that the latent draw stays what it is for ``seed``.
    """
    rng = torch.Generator().manual_seed(seed + 1)
    if counts is None:
        return torch.randint(num_classes, (n,), generator=rng)
    return torch.multinomial(counts.double(), n, replacement=True, generator=rng)


class GeneratorSamples:
    """``n`` samples of a generator from a seeded latent draw; images go through uint8.

    Quantising images to 8 bits makes generated samples exactly what a saved PNG would hold,
    so that scores agree with tools that read image files. A conditional generator gets
    ``labels`` (N,), one per sample.
    """

    def __init__(
        self,
        generator: Generator,
        n: int,
        seed: int,
        device: torch.device,
        spec: DataSpec,
        labels: Tensor | None = None,
    ) -> None:
        self.generator, self.n, self.seed, self.device, self.spec = generator, n, seed, device, spec
        if generator.num_classes and labels is None:
            raise UsageError("a conditional generator's samples need labels")
        self.labels = labels

    def __len__(self) -> int:
        """The number of samples."""
        return self.n

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space float batches, the same for the same seed and batch size."""
        for start, z in self.latents(batch_size):
            yield self.generate(start, z)

    def latents(self, batch_size: int) -> Iterator[tuple[int, Tensor]]:
        """Each batch's first index and latent vectors, drawn as :meth:`batches` draws them.

        The last batch is shorter when ``batch_size`` does not divide ``n``; its latents (and so
        its samples) then depend on ``n``, the full batches' do not.
        """
        rng = torch.Generator().manual_seed(self.seed)
        for start in range(0, self.n, batch_size):
            count = min(batch_size, self.n - start)
            yield start, self.generator.sample_latent(count, generator=rng)

    def generate(self, start: int, z: Tensor) -> Tensor:
        """The samples of latents ``z``: the batch that begins at sample ``start`` (its labels).

        Model-space floats on the CPU, quantised to 8 bits for images, as :meth:`batches` gives.
        """
        with torch.inference_mode():
            z = z.to(self.device)
            if self.labels is None:
                x = self.generator(z).float()
            else:
                y = self.labels[start : start + len(z)].to(self.device)
                x = self.generator(z, y).float()
            if self.spec.is_image:
                x = x.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)
            return x.cpu()


class FolderSamples:
    """Every image file in a folder (sorted by name), as RGB, at its own size."""

    def __init__(self, folder: Path, skip_unreadable: bool = False) -> None:
        """List ``folder``'s images; ``skip_unreadable`` leaves out those that fail to decode.

        Their errors are kept in ``skipped``.
        """
        self.files = sorted(
            p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        self.skipped: list[str] = []
        if skip_unreadable:
            readable = []
            for path in self.files:
                try:
                    self._load(path)
                except DataError as exc:
                    self.skipped.append(str(exc))
                else:
                    readable.append(path)
            self.files = readable
        if not self.files:
            kind = "readable image files" if self.skipped else "image files"
            raise UsageError(f"{folder}: no {kind} ({', '.join(IMAGE_SUFFIXES)})")
        first = self._load(self.files[0])
        self.spec = DataSpec(tuple(first.shape))
        self.labels = None

    @staticmethod
    def _load(path: Path) -> Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DataError(f"{path}: cannot read image: {exc}") from exc
        return torch.from_numpy(array.transpose(2, 0, 1).copy())

    def __len__(self) -> int:
        """The number of image files."""
        return len(self.files)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """Model-space batches; every image must have the first image's size."""
        for start in range(0, len(self.files), batch_size):
            images = [self._load(p) for p in self.files[start : start + batch_size]]
            for path, image in zip(self.files[start : start + batch_size], images, strict=True):
                if tuple(image.shape) != self.spec.shape:
                    raise UsageError(
                        f"{path}: size {tuple(image.shape)} differs from the folder's first "
                        f"image {self.spec.shape}; resize the images to one size first"
                    )
            yield to_model_space(torch.stack(images))


class TrackedSamples:
    """A sample set whose passes are shown on ``report`` as a task called ``title``.

    Each pass over :meth:`batches` (a feature extraction, say) counts its samples on a
    :func:`ganzoo.progress.track` task; the samples, spec and labels are ``samples``'s own.
    """

    def __init__(self, samples: Samples, title: str, report: ReportTo) -> None:
        self.samples, self.title, self.report = samples, title, report
        self.spec = samples.spec
        self.labels: Tensor | None = getattr(samples, "labels", None)

    def __len__(self) -> int:
        """The number of samples."""
        return len(self.samples)

    def batches(self, batch_size: int) -> Iterator[Tensor]:
        """The batches of ``samples``, counted on a task as they are consumed."""
        unit = "images" if self.spec.is_image else "samples"
        with track(self.report, self.title, len(self), unit) as task:
            for batch in self.samples.batches(batch_size):
                yield batch
                task.advance(len(batch))
