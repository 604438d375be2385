"""Conformance checks of datasets, on their data folder or an empty one."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ganzoo import api
from ganzoo.errors import DataError
from ganzoo.testing.base import ConformanceError, check_contract, name_of, require


def check_dataset(
    cls: type[api.Dataset], params: api.Params | None = None, data_dir: str | Path | None = None
) -> None:
    """Check a dataset class with ``params`` (default: the defaults) on ``data_dir``.

    ``spec_for(params)`` gives a :class:`ganzoo.api.DataSpec`. The dataset is built on
    ``data_dir``, or on an empty folder when it is None: missing or unreadable files must
    raise :class:`ganzoo.errors.DataError` (any other exception fails), and a dataset that
    needs files fails the check until it gets a ``data_dir`` holding a small copy. Built, it
    has samples of the spec's shape, uint8 or floating for images and floating for points;
    ``tensor()`` is None or all samples ``(N, *shape)`` agreeing with indexing; ``labels()``
    is None or integers ``(N,)``.

    Raises:
        ConformanceError: the first problem found.

    """
    params = check_contract(cls, api.Dataset, params)
    spec = cls.spec_for(params)
    require(cls, isinstance(spec, api.DataSpec), f"spec_for returns {type(spec).__name__}")
    with tempfile.TemporaryDirectory() as empty:
        try:
            dataset = cls(params, Path(data_dir if data_dir is not None else empty))
        except DataError as exc:
            require(cls, data_dir is None, f"cannot read the data in {data_dir}: {exc}")
            raise ConformanceError(
                f"{name_of(cls)}: needs data files; pass data_dir= with a small copy ({exc})"
            ) from exc
        except Exception as exc:  # the wrong exception type is the finding
            where = "an empty data folder" if data_dir is None else str(data_dir)
            raise ConformanceError(
                f"{name_of(cls)}: on {where} raises {type(exc).__name__}: {exc}; missing or "
                "unreadable data must raise ganzoo.errors.DataError naming the files"
            ) from exc
        _checkuniform_samples(cls, dataset, spec)


def _checkuniform_samples(cls: Any, dataset: api.Dataset, spec: api.DataSpec) -> None:
    n = len(dataset)
    require(cls, n > 0, "the dataset is empty")
    item = dataset[0]
    require(cls, isinstance(item, Tensor), f"an item is {type(item).__name__}, not a Tensor")
    require(
        cls,
        tuple(item.shape) == spec.shape,
        f"an item has shape {tuple(item.shape)}, the spec says {spec.shape}",
    )
    allowed = "uint8 or floating" if spec.is_image else "floating"
    require(
        cls,
        item.is_floating_point() or (spec.is_image and item.dtype == torch.uint8),
        f"items are {item.dtype}; samples of shape {spec.shape} must be {allowed}",
    )
    data = dataset.tensor()
    if data is not None:
        require(
            cls,
            tuple(data.shape) == (n, *spec.shape) and data.dtype == item.dtype,
            f"tensor() gives {data.dtype} {tuple(data.shape)}, expected {item.dtype} "
            f"{(n, *spec.shape)}",
        )
        require(cls, torch.equal(data[0], item), "tensor()[0] differs from dataset[0]")
    labels = dataset.labels()
    if labels is not None:
        require(
            cls,
            tuple(labels.shape) == (n,)
            and not labels.is_floating_point()
            and labels.dtype != torch.bool,
            f"labels() gives {labels.dtype} {tuple(labels.shape)}, expected integers ({n},)",
        )
