"""Batches for the training loop: from a tensor held on the device, or streamed from disk.

Both feeders walk the same sequence: epoch ``e`` visits the samples in the order of a
permutation seeded by ``(seed, e)``, in full batches (the remainder is dropped). Their state
is just ``(epoch, position)``, so a resumed run sees exactly the batches it would have seen.
Each batch is a :class:`ganzoo.api.Batch`; it carries the samples' labels when the feeder is
made with ``labels`` (for conditional runs), and None otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from ganzoo.api import Batch, Dataset, to_model_space
from ganzoo.errors import ComponentConfigError, DataError

# The largest dataset (in bytes) kept on the training device when data_on_device = "auto".
AUTO_DEVICE_BYTES = 2 * 1024**3


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The sample order of one epoch: a permutation of ``range(n)`` seeded by seed and epoch."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**63)
    return torch.randperm(n, generator=generator)


class EpochCursor:
    """Where the walk through the epochs stands: the epoch and the position inside it."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if n < batch_size:
            raise DataError(f"the dataset has {n} samples, fewer than one batch ({batch_size})")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.epoch, self.position = 0, 0
        self._order: Tensor | None = None

    def order(self) -> Tensor:
        """The permutation of the current epoch (cached)."""
        if self._order is None:
            self._order = epoch_permutation(self.n, self.seed, self.epoch)
        return self._order

    def advance(self) -> tuple[Tensor, int]:
        """Return the current epoch's order and the start of the next batch, then step on."""
        if self.position + self.batch_size > self.n:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        start = self.position
        self.position += self.batch_size
        return self.order(), start

    def state_dict(self) -> dict[str, int]:
        """The position as plain integers."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Move to a saved position."""
        self.epoch, self.position, self._order = int(state["epoch"]), int(state["position"]), None


def shard_slice(start: int, batch_size: int, shard: tuple[int, int]) -> slice:
    """The part of the global batch at ``start`` that process ``rank`` of ``world`` takes."""
    rank, world = shard
    local = batch_size // world
    return slice(start + rank * local, start + (rank + 1) * local)


class DeviceFeeder:
    """Batches by indexing one tensor that holds the whole dataset (on the training device).

    With ``shard = (rank, world)`` each process takes its slice of every global batch.
    """

    def __init__(
        self,
        data: Tensor,
        batch_size: int,
        seed: int,
        device: torch.device,
        shard: tuple[int, int] = (0, 1),
        labels: Tensor | None = None,
    ) -> None:
        self.data = data
        self.labels = labels.to(data.device) if labels is not None else None
        self.device = device
        self.shard = shard
        self.cursor = EpochCursor(len(data), batch_size, seed)
        self._order_epoch = -1
        self._order: Tensor | None = None

    def next(self) -> Batch:
        """The next model-space batch (this process's slice), on the training device."""
        order, start = self.cursor.advance()
        if self._order_epoch != self.cursor.epoch:
            self._order = order.to(self.data.device)
            self._order_epoch = self.cursor.epoch
        assert self._order is not None
        index = self._order[shard_slice(start, self.cursor.batch_size, self.shard)]
        samples = to_model_space(self.data[index].to(self.device, non_blocking=True))
        if self.labels is None:
            return Batch(samples)
        return Batch(samples, self.labels[index].to(self.device, non_blocking=True))

    def state_dict(self) -> dict[str, int]:
        """The walk's position."""
        return self.cursor.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume the walk at a saved position."""
        self.cursor.load_state_dict(state)


def as_in_main_process(exc: Exception) -> Exception:
    """The exception a dataset raised in a DataLoader worker, as if raised in this process.

    torch re-raises a worker's exception in the main process as a new one of the same type
    whose message is the worker's whole traceback ("Caught DataError in DataLoader worker
    process 0. Original Traceback ..."). The original message is what follows the traceback's
    last ``module.Type:``; the same type is rebuilt with it, so that a
    :class:`~ganzoo.errors.DataError` naming a file reads as one line, as without workers.
    An exception that is not a worker's, or whose type cannot be rebuilt from its message,
    is returned as it is.
    """
    text = str(exc)
    kind = type(exc)
    if "DataLoader worker" not in text or "Original Traceback" not in text:
        return exc
    module = "" if kind.__module__ == "builtins" else f"{kind.__module__}."
    _, found, message = text.rpartition(f"\n{module}{kind.__qualname__}: ")
    if not found:
        return exc
    message = message.strip()
    try:
        rebuilt = kind(message)
    except Exception:
        return exc
    # a type that does not keep its message as given (KeyError quotes it) stays as it came
    return rebuilt if str(rebuilt) == message else exc


class _BatchIndices:
    """An endless batch sampler for a DataLoader, walking the epochs from a given position."""

    def __init__(self, cursor: EpochCursor, shard: tuple[int, int]) -> None:
        self.cursor, self.shard = cursor, shard

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            order, start = self.cursor.advance()
            yield order[shard_slice(start, self.cursor.batch_size, self.shard)].tolist()


class _WithLabels(torch.utils.data.Dataset):
    """A dataset's items paired with their labels, for a DataLoader to collate."""

    def __init__(self, dataset: Dataset, labels: Tensor) -> None:
        self.dataset, self.labels = dataset, labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.dataset[index], self.labels[index]


class LoaderFeeder:
    """Batches streamed through a DataLoader (with worker processes) from a map-style dataset."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        device: torch.device,
        num_workers: int,
        shard: tuple[int, int] = (0, 1),
        labels: Tensor | None = None,
    ) -> None:
        self.dataset: torch.utils.data.Dataset = (
            dataset if labels is None else _WithLabels(dataset, labels)
        )
        self.labelled = labels is not None
        self.device = device
        self.num_workers = num_workers
        self.shard = shard
        self.cursor = EpochCursor(len(dataset), batch_size, seed)
        self._iterator: Iterator[Tensor | list[Tensor]] | None = None

    def _start(self) -> Iterator[Tensor | list[Tensor]]:
        ahead = EpochCursor(self.cursor.n, self.cursor.batch_size, self.cursor.seed)
        ahead.load_state_dict(self.cursor.state_dict())
        loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=_BatchIndices(ahead, self.shard),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=self.num_workers > 0,
            # the loader seeds its workers from this generator, not from the global one that
            # the training step draws noise from, so (re)starting it changes no noise
            generator=torch.Generator().manual_seed(self.cursor.seed),
        )
        return iter(loader)

    def next(self) -> Batch:
        """The next model-space batch, on the training device."""
        if self._iterator is None:
            self._iterator = self._start()
        self.cursor.advance()
        try:
            loaded = next(self._iterator)
        except Exception as exc:
            unwrapped = as_in_main_process(exc)
            if unwrapped is exc:
                raise
            raise unwrapped from exc
        if not self.labelled:
            assert isinstance(loaded, Tensor)
            return Batch(to_model_space(loaded.to(self.device, non_blocking=True)))
        images, labels = loaded
        return Batch(
            to_model_space(images.to(self.device, non_blocking=True)),
            labels.to(self.device, non_blocking=True),
        )

    def state_dict(self) -> dict[str, int]:
        """The position of the last batch handed out (workers may have read further)."""
        return self.cursor.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Resume at a saved position (restarting the loader)."""
        self.cursor.load_state_dict(state)
        self._iterator = None


Feeder = DeviceFeeder | LoaderFeeder


def make_feeder(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    device: torch.device,
    placement: str,
    num_workers: int,
    shard: tuple[int, int] = (0, 1),
    labels: bool = False,
) -> Feeder:
    """Choose how to feed ``dataset``: held in memory (on the device when it fits) or streamed.

    ``placement`` is the recipe's ``train.data_on_device``: ``auto`` holds an in-memory
    dataset on the device up to 2 GiB; ``always`` holds any dataset there (decoding a
    streamed one first); ``never`` keeps it on the host. ``shard = (rank, world)`` gives each
    of ``world`` processes its slice of every global batch of ``batch_size``. With ``labels``
    every batch carries the dataset's labels.

    Raises:
        DataError: ``labels`` is asked of a dataset without labels.

    """
    label_tensor = dataset.labels() if labels else None
    if labels and label_tensor is None:
        raise DataError(f"{type(dataset).__name__} gives no labels for a conditional run")
    data = dataset.tensor()
    if data is None and placement == "always":
        data = torch.stack([dataset[i] for i in range(len(dataset))])
    if data is None:
        return LoaderFeeder(dataset, batch_size, seed, device, num_workers, shard, label_tensor)
    if data.dim() < 2:
        raise ComponentConfigError(f"dataset tensor has shape {tuple(data.shape)}; need (N, ...)")
    on_device = placement == "always" or (
        placement == "auto" and data.element_size() * data.nelement() <= AUTO_DEVICE_BYTES
    )
    data = data.to(device) if on_device else data
    return DeviceFeeder(data, batch_size, seed, device, shard, label_tensor)
