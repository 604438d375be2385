"""Dataset loaders on small real files written by the tests, the 2-D mixtures, and real data.

IDX files and CIFAR-10 batches are written byte by byte in their published formats (the
CIFAR-10 batch also as the Python 2 pickle the real archive holds). Real MNIST/Fashion-MNIST
checks run when ``$GANZOO_DATA_DIR`` or ``../shared/data`` is there.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import pickle
import socket
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganzoo.api import DataSpec, Mixture
from ganzoo.errors import DataError
from ganzoo.registry import registry
from ganzoo.zoo.datasets import CIFAR10, MNIST, FashionMNIST, read_idx
from ganzoo.zoo.folders import ImageFolder
from ganzoo.zoo.mixtures import Grid, Ring

IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_SETS = {"mnist": (MNIST, "MNIST"), "fashion-mnist": (FashionMNIST, "FashionMNIST")}
CIFAR_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


# --- writers of the published formats ----------------------------------------------------------


def idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: 0x0000, a type byte, the number of dims, big-endian dims, the values."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    big_endian = array.astype(array.dtype.newbyteorder(">"))
    return header + big_endian.tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_idx_set(
    root: Path, folder: str, split: str, n: int = 5, gz: bool = True, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    images[0, 0, :4] = [0, 1, 254, 255]  # the extremes survive the round trip
    labels = (np.arange(n) * 3 + seed) % 10
    image_name, label_name = IDX_FILES[split]
    raw = root / folder / "raw"
    # magic 0x00000803: unsigned bytes, 3 dims; 0x00000801: unsigned bytes, 1 dim
    write_file(raw / image_name, idx_bytes(images), gz)
    write_file(raw / label_name, idx_bytes(labels.astype(np.uint8)), gz)
    return images, labels


def _short_string(b: bytes) -> bytes:
    return b"U" + bytes([len(b)]) + b


def py2_cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 batch as the real archive stores it: a Python 2 cPickle, protocol 2.

    Strings are Python 2 byte strings (SHORT_BINSTRING / BINSTRING), the array comes from
    ``numpy.core.multiarray._reconstruct`` with its raw bytes as a string.
    """
    n, width = data.shape
    raw = data.tobytes()
    return b"".join(
        [
            b"\x80\x02}(",
            _short_string(b"batch_label"),
            _short_string(b"testing batch 1 of 1"),
            _short_string(b"data"),
            b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85",
            _short_string(b"b"),
            b"\x87R(K\x01M" + struct.pack("<H", n) + b"M" + struct.pack("<H", width) + b"\x86",
            b"cnumpy\ndtype\n" + _short_string(b"u1") + b"K\x00K\x01\x87R(K\x03",
            _short_string(b"|"),
            b"NNNJ" + struct.pack("<i", -1) + b"J" + struct.pack("<i", -1) + b"K\x00tb",
            b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb",
            _short_string(b"labels"),
            b"](" + b"".join(b"K" + bytes([label]) for label in labels) + b"e",
            b"u.",
        ]
    )


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), [(seed + i) % 10 for i in range(n)]


def cifar_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    return pickle.dumps({"batch_label": "b", "data": data, "labels": labels, "filenames": []})


def write_cifar_folder(root: Path, n: int = 3) -> dict[str, tuple[np.ndarray, list[int]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for seed, name in enumerate([*CIFAR_FILES["train"], "test_batch"]):
        batches[name] = cifar_batch(n, seed)
        (folder / name).write_bytes(cifar_pickle(*batches[name]))
    return batches


def write_cifar_archive(root: Path, members: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return path


def files_under(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*"))


# --- MNIST and Fashion-MNIST from IDX files ----------------------------------------------------


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "image-folder"])
def test_entry_points_load_the_classes(name):
    expected = {"mnist": MNIST, "fashion-mnist": FashionMNIST, "cifar10": CIFAR10}
    expected["image-folder"] = ImageFolder
    assert registry("datasets").load(name) is expected[name]


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("split", ["train", "test"])
@pytest.mark.parametrize("name", list(IDX_SETS))
def test_idx_round_trip(tmp_path, name, split, gz):
    cls, folder = IDX_SETS[name]
    images, labels = write_idx_set(tmp_path, folder, split, n=7, gz=gz)
    before = files_under(tmp_path)
    ds = cls(cls.Params(split=split), tmp_path)
    data = ds.tensor()
    assert data.dtype == torch.uint8
    assert data.shape == (7, 1, 28, 28)
    assert np.array_equal(data[:, 0].numpy(), images)
    assert data[0, 0, 0, :4].tolist() == [0, 1, 254, 255]
    assert ds.labels().dtype == torch.int64
    assert ds.labels().tolist() == labels.tolist()
    assert len(ds) == 7
    assert torch.equal(ds[3], data[3])
    assert ds.tensor() is data  # loaded once
    assert files_under(tmp_path) == before  # nothing written into the data folder
    spec = ds.spec
    assert spec == cls.spec_for(cls.Params())
    assert spec.shape == (1, 28, 28)
    assert spec.value_range == (-1.0, 1.0)
    assert spec.num_classes == 10 == len(spec.class_names)


def test_class_names():
    assert MNIST.spec_for(MNIST.Params()).class_names == tuple("0123456789")
    names = FashionMNIST.spec_for(FashionMNIST.Params()).class_names
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"


def test_idx_gz_and_plain_files_mix(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    images = np.full((2, 28, 28), 77, np.uint8)
    write_file(raw / "t10k-images-idx3-ubyte", idx_bytes(images), gz=True)
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.array([4, 2], np.uint8)), gz=False)
    ds = MNIST(MNIST.Params(split="test"), tmp_path)
    assert ds.tensor().unique().tolist() == [77]
    assert ds.labels().tolist() == [4, 2]


def test_split_defaults_to_train_and_splits_are_separate(tmp_path):
    train_images, _ = write_idx_set(tmp_path, "MNIST", "train", n=3, seed=1)
    test_images, _ = write_idx_set(tmp_path, "MNIST", "test", n=4, seed=2)
    assert MNIST.Params().split == "train"
    assert np.array_equal(MNIST(MNIST.Params(), tmp_path).tensor()[:, 0].numpy(), train_images)
    test = MNIST(MNIST.Params(split="test"), tmp_path).tensor()
    assert np.array_equal(test[:, 0].numpy(), test_images)


def test_constructor_only_checks_that_files_exist(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / "t10k-images-idx3-ubyte", b"garbage", gz=False)
    write_file(raw / "t10k-labels-idx1-ubyte", b"garbage", gz=False)
    ds = MNIST(MNIST.Params(split="test"), tmp_path)  # cheap: does not read
    with pytest.raises(DataError, match="bad magic"):
        ds.tensor()


@pytest.mark.parametrize("name", list(IDX_SETS))
def test_missing_folder_says_what_and_where(tmp_path, name):
    cls, folder = IDX_SETS[name]
    with pytest.raises(DataError) as info:
        cls(cls.Params(split="train"), tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / folder / "raw") in message
    assert f"{folder}/raw/" in message
    for hint in ("--data-dir", "GANZOO_DATA_DIR", "--download"):
        assert hint in message


def test_missing_file_names_only_the_missing_one(tmp_path):
    write_idx_set(tmp_path, "MNIST", "test")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        MNIST(MNIST.Params(split="test"), tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "t10k-images" not in str(info.value)


def test_other_dataset_files_do_not_count(tmp_path):
    write_idx_set(tmp_path, "FashionMNIST", "test")
    with pytest.raises(DataError, match="MNIST"):
        MNIST(MNIST.Params(split="test"), tmp_path)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_truncated_idx(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    full = idx_bytes(np.zeros((5, 28, 28), np.uint8))
    path = write_file(raw / "t10k-images-idx3-ubyte", full[: -28 * 28 - 10], gz)
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)), gz)
    with pytest.raises(DataError) as info:
        MNIST(MNIST.Params(split="test"), tmp_path).tensor()
    message = str(info.value)
    assert str(path) in message
    assert "truncated" in message and "corrupt" in message
    assert "5x28x28" in message


def test_truncated_idx_header(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">I", 5))  # 1 of 3 dims
    with pytest.raises(DataError, match="truncated IDX header") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_idx_with_trailing_bytes_is_corrupt(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(3, np.uint8)) + b"\x00")
    with pytest.raises(DataError, match="corrupt"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"this is not gzip data at all")
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(5, np.uint8)), gz=True)
    with pytest.raises(DataError, match="cannot read") as info:
        MNIST(MNIST.Params(split="test"), tmp_path).tensor()
    assert str(path) in str(info.value)


def test_gzip_cut_short(tmp_path):
    path = tmp_path / "images.gz"
    packed = gzip.compress(idx_bytes(np.arange(5 * 28 * 28, dtype=np.uint8).reshape(5, 28, 28)))
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match="cannot read") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "header",
    [
        bytes([3, 8, 0, 0]),  # the magic number written little-endian
        bytes([0, 0, 0x07, 3]),  # unknown type code
        bytes([0x1F, 0x8B, 8, 0]),  # a gzip stream saved without the .gz ending
        b"\x89PNG",
    ],
    ids=["little-endian", "type-code", "gzip-as-plain", "png"],
)
def test_bad_magic(tmp_path, header):
    path = tmp_path / "t10k-images-idx3-ubyte"
    path.write_bytes(header + bytes(64))
    with pytest.raises(DataError, match="bad magic") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_other_types_in_native_byte_order(tmp_path):
    values = np.array([[1, -2, 70000], [-(2**31), 2**31 - 1, 0]], dtype=np.int32)
    path = tmp_path / "ints"
    path.write_bytes(idx_bytes(values, type_code=0x0C))  # big-endian int32
    got = read_idx(path)
    assert got.dtype == np.dtype(np.int32)
    assert got.dtype.isnative
    assert np.array_equal(got, values)
    floats = np.array([0.5, -1.25, 3e38], dtype=np.float32)
    path.write_bytes(idx_bytes(floats, type_code=0x0D))
    assert read_idx(path).tolist() == floats.tolist()


def test_images_and_labels_must_agree(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((3, 28, 28), np.uint8)), True)
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)), True)
    with pytest.raises(DataError, match=r"\(3, 1, 28, 28\) images and 4 labels"):
        MNIST(MNIST.Params(split="test"), tmp_path).tensor()


def test_labels_out_of_range(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / "t10k-images-idx3-ubyte", idx_bytes(np.zeros((2, 28, 28), np.uint8)), True)
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.array([3, 10], np.uint8)), True)
    with pytest.raises(DataError, match="labels outside"):
        MNIST(MNIST.Params(split="test"), tmp_path).tensor()


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 32, 32), np.uint8), "expected images of shape"),
        (np.zeros((2, 784), np.uint8), "expected a 3-D IDX array"),
    ],
)
def test_wrong_image_layout(tmp_path, array, match):
    raw = tmp_path / "MNIST" / "raw"
    write_file(raw / "t10k-images-idx3-ubyte", idx_bytes(array), True)
    write_file(raw / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(2, np.uint8)), True)
    with pytest.raises(DataError, match=match):
        MNIST(MNIST.Params(split="test"), tmp_path).tensor()


# --- CIFAR-10 -----------------------------------------------------------------------------------


def check_cifar(ds: CIFAR10, batches: list[tuple[np.ndarray, list[int]]]) -> None:
    data = np.concatenate([b[0] for b in batches])
    labels = [label for b in batches for label in b[1]]
    images = ds.tensor()
    assert images.dtype == torch.uint8
    assert images.shape == (len(data), 3, 32, 32)
    # each row is 1024 red, then 1024 green, then 1024 blue bytes, row-major
    assert np.array_equal(images[0, 1].numpy(), data[0, 1024:2048].reshape(32, 32))
    assert np.array_equal(images.numpy().reshape(len(data), -1), data)
    assert ds.labels().dtype == torch.int64
    assert ds.labels().tolist() == labels
    assert ds.spec.shape == (3, 32, 32)
    assert ds.spec.class_names[0] == "airplane" and ds.spec.class_names[9] == "truck"


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_folder(tmp_path, split):
    batches = write_cifar_folder(tmp_path)
    ds = CIFAR10(CIFAR10.Params(split=split), tmp_path)
    check_cifar(ds, [batches[name] for name in CIFAR_FILES[split]])
    assert len(ds) == 3 * len(CIFAR_FILES[split])


@pytest.mark.parametrize("split", ["train", "test"])
def test_cifar_archive_read_without_extraction(tmp_path, split):
    batches = {name: cifar_batch(2, i) for i, name in enumerate([*CIFAR_FILES["train"], "x"])}
    batches["test_batch"] = batches.pop("x")
    write_cifar_archive(tmp_path, {n: cifar_pickle(*b) for n, b in batches.items()})
    before = files_under(tmp_path)
    ds = CIFAR10(CIFAR10.Params(split=split), tmp_path)
    check_cifar(ds, [batches[name] for name in CIFAR_FILES[split]])
    assert files_under(tmp_path) == before == [Path("cifar-10-python.tar.gz")]


def test_cifar_python2_pickle_as_distributed(tmp_path):
    data, labels = cifar_batch(4, 9)
    write_cifar_archive(tmp_path, {"test_batch": py2_cifar_pickle(data, labels)})
    check_cifar(CIFAR10(CIFAR10.Params(split="test"), tmp_path), [(data, labels)])


def test_cifar_missing_says_what_and_where(tmp_path):
    with pytest.raises(DataError) as info:
        CIFAR10(CIFAR10.Params(split="train"), tmp_path)
    message = str(info.value)
    for name in CIFAR_FILES["train"]:
        assert name in message
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "cifar-10-python.tar.gz" in message
    for hint in ("--data-dir", "GANZOO_DATA_DIR", "--download"):
        assert hint in message


def test_cifar_partial_folder(tmp_path):
    write_cifar_folder(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    CIFAR10(CIFAR10.Params(split="test"), tmp_path)  # the test split is complete
    with pytest.raises(DataError) as info:
        CIFAR10(CIFAR10.Params(split="train"), tmp_path)
    assert "data_batch_3" in str(info.value)
    assert "data_batch_1" not in str(info.value)


class Payload:
    """Any class other than numpy's arrays; unpickling it would import this module."""

    def __init__(self) -> None:
        self.value = 1


class RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_cifar_refuses_pickles_of_other_classes(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = cifar_batch(2, 0)
    for evil in (
        {"data": RunsCode(marker), "labels": labels},
        {"data": data, "labels": labels, "extra": Payload()},
        {"data": data, "labels": labels, "call": os.system},
    ):
        (folder / "test_batch").write_bytes(pickle.dumps(evil))
        with pytest.raises(DataError, match="refusing to load") as info:
            CIFAR10(CIFAR10.Params(split="test"), tmp_path).tensor()
        assert str(folder / "test_batch") in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (pickle.dumps({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}), "3072"),
        (pickle.dumps({"labels": [0, 1]}), "not a readable CIFAR-10 batch"),
        (pickle.dumps(["data", "labels"]), "not a readable CIFAR-10 batch"),
        (b"\x80\x04garbage", "not a readable CIFAR-10 batch"),
        (pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0]})[:-40], "readable"),
    ],
    ids=["short-rows", "no-data", "a-list", "garbage", "cut-short"],
)
def test_cifar_bad_batches(tmp_path, payload, match):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match=match) as info:
        CIFAR10(CIFAR10.Params(split="test"), tmp_path).tensor()
    assert str(folder / "test_batch") in str(info.value)


def test_cifar_labels_must_match_images(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(cifar_pickle(np.zeros((2, 3072), np.uint8), [1]))
    with pytest.raises(DataError, match=r"\(2, 3, 32, 32\) images and 1 labels"):
        CIFAR10(CIFAR10.Params(split="test"), tmp_path).tensor()


def test_cifar_archive_without_the_batch(tmp_path):
    write_cifar_archive(tmp_path, {"data_batch_1": cifar_pickle(*cifar_batch(2, 0))})
    with pytest.raises(DataError, match="test_batch"):
        CIFAR10(CIFAR10.Params(split="test"), tmp_path).tensor()


def test_cifar_archive_without_the_batch_names_the_archive(tmp_path):
    archive = write_cifar_archive(tmp_path, {"data_batch_1": cifar_pickle(*cifar_batch(2, 0))})
    with pytest.raises(DataError) as info:
        CIFAR10(CIFAR10.Params(split="test"), tmp_path).tensor()
    assert str(archive) in str(info.value)


def test_cifar_corrupt_archive(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a tar.gz archive " * 20)
    ds = CIFAR10(CIFAR10.Params(split="test"), tmp_path)
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz"):
        ds.tensor()


def test_cifar_archive_cut_short(tmp_path):
    batches = {n: cifar_pickle(*cifar_batch(40, i)) for i, n in enumerate(CIFAR_FILES["train"])}
    archive = write_cifar_archive(tmp_path, batches)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError):
        CIFAR10(CIFAR10.Params(split="train"), tmp_path).tensor()


# --- download on an offline machine -------------------------------------------------------------


def test_download_failure_is_a_data_error(tmp_path, capsys):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5)
    try:
        try:
            ds = MNIST(MNIST.Params(split="test"), tmp_path / "data", download=True)
        except DataError as exc:
            message = str(exc)
        else:  # a machine with internet access: the download worked
            assert len(ds.tensor()) == 10_000
            pytest.skip("this machine can download MNIST")
    finally:
        socket.setdefaulttimeout(old)
    assert "downloading MNIST" in message
    assert "failed" in message
    assert str(tmp_path / "data") in message
    for hint in ("MNIST/raw/", "--data-dir", "GANZOO_DATA_DIR"):
        assert hint in message


def test_no_download_means_no_network_and_no_writes(tmp_path):
    with pytest.raises(DataError, match="missing"):
        MNIST(MNIST.Params(split="test"), tmp_path)
    assert files_under(tmp_path) == []


# --- image folders ------------------------------------------------------------------------------


@pytest.fixture
def image_dir(tmp_path) -> Path:
    root = tmp_path / "data" / "pics"
    (root / "sub").mkdir(parents=True)
    # a wide RGB image: red | green | blue thirds, so a centre crop is all green
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20, 0] = 255
    wide[:, 20:40, 1] = 255
    wide[:, 40:, 2] = 255
    Image.fromarray(wide).save(root / "a_wide.png")
    # a tall grey JPEG: dark top and bottom, light middle
    tall = np.full((90, 30), 20, np.uint8)
    tall[30:60] = 230
    Image.fromarray(tall, mode="L").save(root / "b_tall.jpg", quality=95)
    # RGBA and palette images, an upper-case ending, one in a sub-folder
    Image.new("RGBA", (33, 33), (10, 200, 30, 128)).save(root / "sub" / "c_rgba.png")
    Image.new("RGB", (17, 23), (250, 5, 5)).convert("P").save(root / "d_palette.PNG")
    # an exact 16x16 lossless image, and a file that is not an image
    exact = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(exact).save(root / "e_exact.png")
    (root / "notes.txt").write_text("not an image")
    return root


def folder(data_dir: Path, **params) -> ImageFolder:
    return ImageFolder(ImageFolder.Params(**params), data_dir)


def test_image_folder_items(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=16)
    assert len(ds) == 5
    assert [p.relative_to(image_dir).as_posix() for p in ds.files] == [
        "a_wide.png",
        "b_tall.jpg",
        "d_palette.PNG",
        "e_exact.png",
        "sub/c_rgba.png",
    ]
    for i in range(len(ds)):
        item = ds[i]
        assert item.dtype == torch.uint8
        assert item.shape == (3, 16, 16)
    assert ds.spec == DataSpec((3, 16, 16))
    assert ds.tensor() is None  # streamed unless in_memory
    assert ds.labels() is None


def item_named(ds: ImageFolder, name: str) -> torch.Tensor:
    return ds[[p.name for p in ds.files].index(name)]


def test_image_folder_centre_crop(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=16)
    wide = item_named(ds, "a_wide.png").int()
    # the middle third survives the crop: green, with no red or blue from the sides (a
    # squashed, uncropped image would be red on the left and blue on the right); the bicubic
    # kernel reaches one source pixel past the crop box, so the outermost columns may blend
    assert (wide[:, :, 1:-1] == torch.tensor([0, 255, 0])[:, None, None]).all()
    assert (wide[1] >= 240).all()
    assert wide[0].max() <= 10 and wide[2].max() <= 10
    grey = folder(image_dir.parent, path=str(image_dir), size=12, channels=1)
    tall = item_named(grey, "b_tall.jpg").int()
    assert tall.shape == (1, 12, 12)
    # only the light middle third remains (the dark thirds are 20); JPEG and the bicubic
    # kernel soften the outermost rows a little
    assert (tall[:, 2:-2] - 230).abs().max() <= 6
    assert tall.min() >= 200
    # grey read as RGB: three equal channels
    tall_rgb = item_named(ds, "b_tall.jpg")
    assert torch.equal(tall_rgb[0], tall_rgb[1]) and torch.equal(tall_rgb[1], tall_rgb[2])


def test_image_folder_modes_and_exact_pixels(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=16)
    exact = np.asarray(Image.open(image_dir / "e_exact.png"))
    assert np.array_equal(item_named(ds, "e_exact.png").permute(1, 2, 0).numpy(), exact)
    rgba = item_named(ds, "c_rgba.png")
    assert rgba[:, 8, 8].tolist() == [10, 200, 30]  # alpha dropped
    palette = item_named(ds, "d_palette.PNG")
    assert (palette[:, 8, 8].int() - torch.tensor([250, 5, 5])).abs().max() <= 8
    grey = folder(image_dir.parent, path=str(image_dir), size=8, channels=1)
    assert grey.spec == DataSpec((1, 8, 8))
    assert all(grey[i].shape == (1, 8, 8) for i in range(len(grey)))


def test_image_folder_in_memory(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=8, in_memory=True)
    stacked = ds.tensor()
    assert stacked.shape == (5, 3, 8, 8) and stacked.dtype == torch.uint8
    assert ds.tensor() is stacked  # decoded once
    for i in range(len(ds)):
        assert torch.equal(stacked[i], ds[i])


def test_image_folder_not_recursive(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=8, recursive=False)
    assert len(ds) == 4
    assert "c_rgba.png" not in [p.name for p in ds.files]


def test_image_folder_extensions(image_dir):
    ds = folder(image_dir.parent, path=str(image_dir), size=8, extensions=[".JPG"])
    assert [p.name for p in ds.files] == ["b_tall.jpg"]


def test_image_folder_relative_path_in_data_dir_first(image_dir, tmp_path, monkeypatch):
    data_dir = image_dir.parent
    elsewhere = tmp_path / "cwd"
    (elsewhere / "pics").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(elsewhere / "pics" / "only.png")
    monkeypatch.chdir(elsewhere)
    ds = folder(data_dir, path="pics", size=8)
    assert ds.root == data_dir / "pics"
    assert len(ds) == 5
    # not in the data folder: the working directory is next
    ds = folder(tmp_path / "empty-data-dir", path="pics", size=8)
    assert ds.root == elsewhere / "pics"
    assert len(ds) == 1


def test_image_folder_not_found(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        folder(tmp_path, path="nowhere")
    assert str(tmp_path / "nowhere") in str(info.value)


def test_image_folder_without_images(tmp_path):
    root = tmp_path / "texts"
    (root / "deep").mkdir(parents=True)
    (root / "readme.txt").write_text("x")
    (root / "deep" / "notes.md").write_text("y")
    with pytest.raises(DataError, match="no images") as info:
        folder(tmp_path, path="texts")
    assert str(root) in str(info.value)
    assert ".png" in str(info.value)


@pytest.mark.parametrize("kind", ["garbage", "cut-short"])
def test_image_folder_corrupt_image(tmp_path, kind):
    root = tmp_path / "pics"
    root.mkdir()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(root / "a_good.png")
    bad = root / "b_bad.png"
    if kind == "garbage":
        bad.write_bytes(b"definitely not a PNG")
    else:
        noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(noisy).save(buffer, format="PNG")
        bad.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    ds = folder(tmp_path, path="pics", size=8)
    assert ds[0][:, 0, 0].tolist() == [1, 2, 3]
    with pytest.raises(DataError) as info:
        ds[1]
    assert str(bad) in str(info.value)
    assert "cannot read image" in str(info.value)
    with pytest.raises(DataError, match=r"b_bad\.png"):
        folder(tmp_path, path="pics", size=8, in_memory=True).tensor()


# --- 2-D Gaussian mixtures ----------------------------------------------------------------------

R = math.sqrt(0.5)
RING_MEANS = [(1, 0), (R, R), (0, 1), (-R, R), (-1, 0), (-R, -R), (0, -1), (R, -R)]
GRID_MEANS = [(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)]
MIXTURES = {"ring": (Ring, RING_MEANS, 0.01, 1.5), "grid": (Grid, GRID_MEANS, 0.05, 5.5)}


def nearest_mode(points: torch.Tensor, means: list[tuple[float, float]]) -> torch.Tensor:
    centres = torch.tensor(means, dtype=torch.float64)
    return torch.cdist(points.double(), centres).argmin(1)


@pytest.mark.parametrize("name", list(MIXTURES))
def test_mixture_means_and_spec(name):
    cls, means, std, half_width = MIXTURES[name]
    got = cls.means()
    assert len(got) == len(means)
    for (x, y), (ex, ey) in zip(got, means, strict=True):
        assert x == pytest.approx(ex, abs=1e-12) and y == pytest.approx(ey, abs=1e-12)
    spec = cls.spec_for(cls.Params())
    assert spec.shape == (2,)
    assert spec.value_range == (-half_width, half_width)
    assert spec.num_classes == 0
    assert isinstance(spec.mixture, Mixture)
    assert spec.mixture.means == tuple(got)
    assert spec.mixture.std == std
    assert cls.spec_for(cls.Params(std=0.2)).mixture.std == 0.2
    assert registry("datasets").load(name) is cls


@pytest.mark.parametrize("name", list(MIXTURES))
def test_mixture_samples(name, tmp_path):
    cls, means, std, _ = MIXTURES[name]
    n = 40_000
    ds = cls(cls.Params(num_samples=n), tmp_path / "unused")  # needs no files
    points = ds.tensor()
    assert points.dtype == torch.float32
    assert points.shape == (n, 2)
    assert len(ds) == n
    assert torch.equal(ds[7], points[7])
    assert ds.labels() is None
    assert ds.tensor() is points  # drawn once
    mode = nearest_mode(points, means)
    counts = torch.bincount(mode, minlength=len(means)).double()
    expected = n / len(means)
    assert (counts - expected).abs().max() < 0.1 * expected
    centres = torch.tensor(means, dtype=torch.float64)
    residual = points.double() - centres[mode]
    assert residual.std(0).tolist() == pytest.approx([std, std], rel=0.05)
    assert residual.mean(0).abs().max() < std / 10
    # every point lies within the spec's range
    assert points.abs().max() < cls.spec_for(cls.Params()).value_range[1]


def test_mixture_custom_std(tmp_path):
    ds = Ring(Ring.Params(num_samples=8_000, std=0.1), tmp_path)
    points = ds.tensor()
    residual = (
        points.double()
        - torch.tensor(RING_MEANS, dtype=torch.float64)[nearest_mode(points, RING_MEANS)]
    )
    assert residual.std().item() == pytest.approx(0.1, rel=0.05)
    assert ds.spec.mixture.std == 0.1


@pytest.mark.parametrize("cls", [Ring, Grid])
def test_mixture_seed(cls, tmp_path):
    def draw(seed: int) -> torch.Tensor:
        return cls(cls.Params(num_samples=500, seed=seed), tmp_path).tensor()

    assert torch.equal(draw(0), draw(0))
    assert not torch.equal(draw(0), draw(1))
    # the draw does not depend on (or disturb) the global torch seed
    torch.manual_seed(123)
    a = draw(5)
    state = torch.random.get_rng_state()
    torch.manual_seed(456)
    assert torch.equal(a, draw(5))
    torch.manual_seed(123)
    draw(5)
    assert torch.equal(torch.random.get_rng_state(), state)


# --- real data (when present) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_data() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    path = Path(os.environ.get("GANZOO_DATA_DIR", default))
    if not path.is_dir():
        pytest.skip(f"no real data at {path}")
    return path


def test_real_mnist_test_split(real_data):
    if not (real_data / "MNIST" / "raw").is_dir():
        pytest.skip("no MNIST")
    before = files_under(real_data)
    ds = MNIST(MNIST.Params(split="test"), real_data)
    images, labels = ds.tensor(), ds.labels()
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64
    assert sorted(labels.unique().tolist()) == list(range(10))
    # the well-known class counts of the MNIST test set
    counts = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert torch.bincount(labels).tolist() == counts
    assert images.min() == 0 and images.max() == 255
    assert files_under(real_data) == before


def test_real_fashion_mnist_train_split(real_data):
    if not (real_data / "FashionMNIST" / "raw").is_dir():
        pytest.skip("no Fashion-MNIST")
    ds = FashionMNIST(FashionMNIST.Params(split="train"), real_data)
    assert ds.tensor().shape == (60_000, 1, 28, 28)
    assert torch.bincount(ds.labels()).tolist() == [6000] * 10


def test_real_mnist_train_split_is_absent(real_data):
    raw = real_data / "MNIST" / "raw"
    if not raw.is_dir() or (raw / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("this data folder has MNIST's training images")
    with pytest.raises(DataError) as info:
        MNIST(MNIST.Params(split="train"), real_data)
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert "train-labels" not in str(info.value)  # that one is there
    assert str(raw) in str(info.value)
