"""Image datasets: MNIST, Fashion-MNIST and CIFAR-10 from their distributed files, and folders.

The labelled datasets read the files exactly as their publishers distribute them, in the
folder layout torchvision uses under the data folder (``--data-dir`` / ``GANZOO_DATA_DIR``):

- ``MNIST/raw/`` and ``FashionMNIST/raw/``: the four IDX files, ``.gz`` or unpacked;
- ``cifar-10-batches-py/`` (the unpacked python archive) or ``cifar-10-python.tar.gz``.

With ``--download`` they are fetched by torchvision on a networked machine. Nothing is ever
written into a data folder otherwise.
"""

from __future__ import annotations

import codecs
import gzip
import io
import pickle
import struct
import tarfile
import zlib
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from numpy._core import multiarray as np_multiarray
from pydantic import Field
from torch import Tensor

from ganzoo.api import Dataset, DataSpec, Params
from ganzoo.errors import DataError

Split = Literal["train", "test"]

_IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_HOW_TO_FIX = (
    "Put the files there as distributed (.gz or unpacked), point --data-dir or "
    "GANZOO_DATA_DIR at the folder that holds {layout}, or pass --download on a machine "
    "with internet access."
)


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in .gz) into an array.

    Raises:
        DataError: the file is unreadable, not IDX, or shorter than its header says.

    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc
    if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", data[4:offset])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(dims))
    if len(data) - offset != count * dtype.itemsize:
        raise DataError(
            f"{path}: the header promises {'x'.join(map(str, dims))} values but the file holds "
            f"{(len(data) - offset) // dtype.itemsize}; the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype, count, offset).reshape(dims).astype(dtype.newbyteorder("="))


class _InMemoryImages(Dataset):
    """Shared loading and caching of a labelled image dataset held in memory."""

    title: ClassVar[str]
    shape: ClassVar[tuple[int, int, int]]
    class_names: ClassVar[tuple[str, ...]]
    torchvision_name: ClassVar[str]

    class Params(Params):
        """Parameters of a labelled image dataset."""

        split: Split = Field("train", description="Which split to read: train or test.")

    def __init__(self, params: Params, data_dir: Path, download: bool = False) -> None:
        super().__init__(params, data_dir, download)
        self._images: Tensor | None = None
        self._labels: Tensor | None = None
        missing = self._missing()
        if missing and download:
            self._download()
            missing = self._missing()
        if missing:
            raise DataError(
                f"{self.title} ({params.split} split): missing {', '.join(missing)} in "
                f"{self._where()}. " + _HOW_TO_FIX.format(layout=self._layout())
            )

    @classmethod
    def spec_for(cls, params: Params) -> DataSpec:
        """Images of the dataset's shape in [-1, 1], with its class names."""
        return DataSpec(cls.shape, (-1.0, 1.0), len(cls.class_names), cls.class_names)

    def tensor(self) -> Tensor:
        """All images of the split, uint8 (N, C, H, W)."""
        self._load()
        assert self._images is not None
        return self._images

    def labels(self) -> Tensor:
        """The labels of the split, int64 (N,)."""
        self._load()
        assert self._labels is not None
        return self._labels

    def _load(self) -> None:
        if self._images is not None:
            return
        images, labels = self._read()
        if images.shape[1:] != self.shape or len(images) != len(labels):
            raise DataError(
                f"{self.title} in {self._where()}: expected images of shape {self.shape} and as "
                f"many labels, got {tuple(images.shape)} images and {len(labels)} labels"
            )
        if labels.min() < 0 or labels.max() >= len(self.class_names):
            raise DataError(f"{self.title} in {self._where()}: labels outside 0..9")
        self._images = torch.from_numpy(np.ascontiguousarray(images))
        self._labels = torch.from_numpy(labels.astype(np.int64))

    def _download(self) -> None:
        import torchvision.datasets as tv_datasets

        dataset_class = getattr(tv_datasets, self.torchvision_name)
        try:
            dataset_class(
                root=str(self.data_dir), train=self.params.split == "train", download=True
            )
        except Exception as exc:  # torchvision raises URLError, RuntimeError, OSError...
            raise DataError(
                f"downloading {self.title} into {self.data_dir} failed: "
                f"{type(exc).__name__}: {exc}. " + _HOW_TO_FIX.format(layout=self._layout())
            ) from exc

    def _missing(self) -> list[str]:
        raise NotImplementedError

    def _where(self) -> Path:
        raise NotImplementedError

    def _layout(self) -> str:
        raise NotImplementedError

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class _IDXImages(_InMemoryImages):
    """A dataset in the four IDX files of MNIST's format."""

    folder: ClassVar[str]
    shape = (1, 28, 28)
    _FILES: ClassVar[dict[str, tuple[str, str]]] = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def _where(self) -> Path:
        return self.data_dir / self.folder / "raw"

    def _layout(self) -> str:
        return f"{self.folder}/raw/"

    def _file(self, base: str) -> Path | None:
        for name in (base + ".gz", base):
            if (self._where() / name).is_file():
                return self._where() / name
        return None

    def _missing(self) -> list[str]:
        return [f"{b}.gz" for b in self._FILES[self.params.split] if self._file(b) is None]

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        image_file, label_file = (self._file(b) for b in self._FILES[self.params.split])
        assert image_file is not None and label_file is not None
        images = read_idx(image_file)
        if images.ndim != 3:
            raise DataError(f"{image_file}: expected a 3-D IDX array, got {images.ndim}-D")
        return images[:, None], read_idx(label_file)


class MNIST(_IDXImages):
    """MNIST handwritten digits, 28x28 grey, 10 classes (LeCun et al. 1998)."""

    title = "MNIST"
    folder = "MNIST"
    torchvision_name = "MNIST"
    class_names = tuple(str(d) for d in range(10))


class FashionMNIST(_IDXImages):
    """Fashion-MNIST clothing images, 28x28 grey, 10 classes (Xiao et al. 2017)."""

    title = "Fashion-MNIST"
    folder = "FashionMNIST"
    torchvision_name = "FashionMNIST"
    class_names = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    )  # fmt: skip


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only, so a data file cannot run code."""

    _ALLOWED: ClassVar[dict[tuple[str, str], Any]] = {
        ("numpy.core.multiarray", "_reconstruct"): np_multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): np_multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }

    def find_class(self, module: str, name: str) -> Any:
        """Allow only numpy's array reconstruction."""
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return self._ALLOWED[module, name]


class CIFAR10(_InMemoryImages):
    """CIFAR-10 tiny images, 32x32 colour, 10 classes (Krizhevsky 2009)."""

    title = "CIFAR-10"
    shape = (3, 32, 32)
    torchvision_name = "CIFAR10"
    class_names = (
        "airplane", "automobile", "bird", "cat", "deer",
        "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip
    FOLDER = "cifar-10-batches-py"
    ARCHIVE = "cifar-10-python.tar.gz"
    _FILES: ClassVar[dict[str, list[str]]] = {
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
    }

    def _where(self) -> Path:
        return self.data_dir / self.FOLDER

    def _layout(self) -> str:
        return f"{self.FOLDER}/ or {self.ARCHIVE}"

    def _missing(self) -> list[str]:
        if (self.data_dir / self.ARCHIVE).is_file():
            return []
        return [n for n in self._FILES[self.params.split] if not (self._where() / n).is_file()]

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        batches = [self._parse(where, raw) for where, raw in self._raw_batches()]
        images = np.concatenate([b[0] for b in batches]).reshape(-1, *self.shape)
        return images, np.concatenate([b[1] for b in batches])

    def _raw_batches(self) -> list[tuple[Path, bytes]]:
        """The pickled batches of the split, from the folder or else the archive (opened once)."""
        names = self._FILES[self.params.split]
        if all((self._where() / n).is_file() for n in names):
            return [(self._where() / n, (self._where() / n).read_bytes()) for n in names]
        archive_path = self.data_dir / self.ARCHIVE
        try:
            with tarfile.open(archive_path, "r:gz") as archive:
                raw = []
                for name in names:
                    member = archive.extractfile(f"{self.FOLDER}/{name}")
                    if member is None:
                        raise DataError(f"{archive_path}: {self.FOLDER}/{name} is not a file")
                    raw.append((archive_path / name, member.read()))
        except KeyError as exc:
            raise DataError(f"{archive_path}: no member {exc}") from None
        except (OSError, EOFError, tarfile.TarError) as exc:
            raise DataError(f"{archive_path}: not a readable CIFAR-10 archive: {exc}") from None
        return raw

    def _parse(self, where: Path, raw: bytes) -> tuple[np.ndarray, np.ndarray]:
        try:
            batch = _NumpyOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
            data = np.asarray(batch["data"], dtype=np.uint8)
            labels = np.asarray(batch["labels"], dtype=np.int64)
        except (EOFError, KeyError, TypeError, ValueError, pickle.UnpicklingError) as e:
            raise DataError(f"{where}: not a readable CIFAR-10 batch: {e}") from e
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{where}: expected rows of 3072 bytes, got shape {data.shape}")
        return data, labels
