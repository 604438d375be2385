"""Training on a seeded subset of a dataset (``data.subset``): small-data experiments.

The subset is a count of samples or a fraction of them, drawn with the recipe's seed. In a
labelled dataset each class keeps its share: class ``c`` with ``n_c`` of the ``N`` samples
gets ``k * n_c / N`` of the ``k`` samples, rounded by largest remainder (ties to the lower
class), so a balanced dataset gives a balanced subset. The evaluation keeps the whole dataset
as its reference set (as data-efficient-gans scores CIFAR-10 at 10% against all of it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ganzoo.api import Dataset, DataSpec
from ganzoo.errors import RecipeError
from ganzoo.recipe import Recipe


def subset_size(subset: int | float, n: int) -> int:
    """The number of samples ``subset`` (a count, or a fraction of ``n``) asks for."""
    if isinstance(subset, float):
        return max(1, round(subset * n))
    return subset


def subset_indices(n: int, size: int, seed: int, labels: Tensor | None = None) -> Tensor:
    """Sorted indices of ``size`` of ``n`` samples drawn with ``seed``, stratified by labels."""
    rng = torch.Generator().manual_seed(seed)
    if labels is None:
        return torch.randperm(n, generator=rng)[:size].sort().values
    classes = int(labels.max()) + 1 if len(labels) else 0
    counts = torch.bincount(labels, minlength=classes)
    exact = counts.double() * size / n
    quota = exact.floor().long()
    short = size - int(quota.sum())
    order = sorted(range(classes), key=lambda c: (-(exact[c] - quota[c]).item(), c))
    for c in order[:short]:
        quota[c] += 1
    picked = []
    for c in range(classes):
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=rng)[: int(quota[c])]])
    return torch.cat(picked).sort().values


class SubsetDataset(Dataset):
    """The samples of ``dataset`` at ``indices`` (its labels and spec with them)."""

    def __init__(self, dataset: Dataset, indices: Tensor) -> None:
        super().__init__(dataset.params, dataset.data_dir, dataset.download)
        self.dataset, self.indices = dataset, indices

    @property
    def spec(self) -> DataSpec:
        """The spec of the whole dataset."""
        return self.dataset.spec

    def tensor(self) -> Tensor | None:
        """The subset's samples as one tensor, when the dataset gives one."""
        data = self.dataset.tensor()
        return None if data is None else data[self.indices]

    def labels(self) -> Tensor | None:
        """The subset's labels, when the dataset has labels."""
        labels = self.dataset.labels()
        return None if labels is None else labels[self.indices]

    def __len__(self) -> int:
        """The number of samples in the subset."""
        return len(self.indices)

    def __getitem__(self, index: int) -> Tensor:
        """The subset's ``index``-th sample."""
        return self.dataset[int(self.indices[index])]


def training_set(dataset: Dataset, recipe: Recipe) -> Dataset:
    """The samples the recipe trains on: ``dataset``, or its ``data.subset``.

    Raises:
        RecipeError: the subset asks for more samples than the dataset has.

    """
    subset = recipe.shell.data.subset
    if subset is None:
        return dataset
    n = len(dataset)
    size = subset_size(subset, n)
    if size > n:
        raise RecipeError(
            [f"{recipe.source}: data.subset: {size} samples asked, the dataset has {n}"]
        )
    return SubsetDataset(dataset, subset_indices(n, size, recipe.seed, dataset.labels()))
