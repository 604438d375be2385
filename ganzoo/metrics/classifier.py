"""A small CNN classifier as a feature extractor, trained by ganzoo on a labelled dataset.

Where the Inception weights cannot be had, FID/KID features (the 128-d penultimate layer) and
Inception-Score-style class probabilities come from this network instead. It is trained once
per dataset on the training split and cached under ``<cache>/classifiers/``, keyed by the
dataset and a hash of the training data, with its test accuracy recorded beside it. When a
training split is missing (MNIST's training images offline), it trains on the first 80% of
the test split and measures accuracy on the rest; the protocol says so. Processes that need
the same classifier at once (``ganzoo bench --jobs N``) train it once: one trains under a
lock, the others wait for it and load what it stored.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganzoo import __version__
from ganzoo.api import Extractor, ExtractorRequest, Params, to_model_space
from ganzoo.errors import DataError, UsageError
from ganzoo.paths import cache_dir
from ganzoo.progress import Task, track
from ganzoo.registry import registry
from ganzoo.writes import WriterLock, make_folder, write_file, write_text

ARCHITECTURE = "cnn-v1"
HOLDOUT_FRACTION = 0.2
BATCH_SIZE = 128


class ClassifierNet(nn.Module):
    """Three conv blocks (32, 64, 128 channels), a 128-d feature layer and a linear head."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()

        def block(c_in: int, c_out: int) -> list[nn.Module]:
            return [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]

        self.body = nn.Sequential(
            *block(channels, 32), *block(32, 64), *block(64, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.features = nn.Sequential(nn.Linear(128, 128), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Features (N, 128) and class logits (N, classes) of model-space images."""
        features = self.features(self.body(x))
        return features, self.head(self.dropout(features))


def _shift(images: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by a random whole number of pixels, filling with the background."""
    n, c, h, w = images.shape
    padded = F.pad(images, [max_shift] * 4, value=-1.0)
    dy = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    dx = torch.randint(0, 2 * max_shift + 1, (n, 1, 1, 1), generator=generator)
    rows = (torch.arange(h).view(1, 1, h, 1) + dy).expand(n, c, h, padded.shape[3])
    cols = (torch.arange(w).view(1, 1, 1, w) + dx).expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


@dataclass
class LabelledSplit:
    """Images (uint8) and labels to train on, and to test on, with where they came from."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    trained_on: str
    tested_on: str


def labelled_split(dataset: str, data_dir: Path) -> LabelledSplit:
    """The training and test data of a labelled dataset (test-split holdout if train is missing)."""
    cls = registry("datasets").load(dataset)
    if "split" not in cls.Params.model_fields:
        raise UsageError(f"dataset {dataset!r} has no train/test splits to train a classifier on")

    def load(split: str) -> tuple[Tensor, Tensor] | None:
        try:
            ds = cls(cls.Params(split=split), data_dir)
        except DataError:
            return None
        images, labels = ds.tensor(), ds.labels()
        if images is None or labels is None:
            raise UsageError(f"dataset {dataset!r} does not give labelled tensors")
        return images, labels

    test = load("test")
    train = load("train")
    if train is not None and test is not None:
        return LabelledSplit(*train, *test, f"{dataset} train", f"{dataset} test")
    either = train or test
    if either is None:
        cls(cls.Params(split="train"), data_dir)  # raises the DataError naming the files
        raise AssertionError("unreachable")
    split = "train" if train is not None else "test"
    images, labels = either
    cut = int(len(images) * (1 - HOLDOUT_FRACTION))
    return LabelledSplit(
        images[:cut], labels[:cut], images[cut:], labels[cut:],
        f"{dataset} {split}[:{cut}]", f"{dataset} {split}[{cut}:]",
    )  # fmt: skip


def _data_hash(split: LabelledSplit, recipe: str) -> str:
    digest = hashlib.sha256(recipe.encode())
    for t in (split.train_images, split.train_labels, split.test_images, split.test_labels):
        digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _accuracy(net: ClassifierNet, images: Tensor, labels: Tensor, device: torch.device) -> float:
    net.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(images), 1000):
            x = to_model_space(images[i : i + 1000].to(device))
            correct += int((net(x)[1].argmax(1).cpu() == labels[i : i + 1000]).sum())
    return correct / len(images)


def train_classifier(
    split: LabelledSplit,
    num_classes: int,
    *,
    epochs: int,
    device: torch.device,
    seed: int = 0,
    task: Task | None = None,
) -> tuple[ClassifierNet, float]:
    """Train the classifier and return it with its test accuracy.

    Adam with a one-cycle schedule, batches of 128, random shifts of up to 2 pixels.
    ``task`` (of ``epochs`` times the batches per epoch) is advanced batch by batch; when it
    is shown, its status gives the epoch and the test accuracy after each epoch.
    """
    torch.manual_seed(seed)
    rng = torch.Generator().manual_seed(seed)
    net = ClassifierNet(split.train_images.shape[1], num_classes).to(device)
    batch = BATCH_SIZE
    steps_per_epoch = math.ceil(len(split.train_images) / batch)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=2e-3, total_steps=epochs * steps_per_epoch
    )
    accuracy = ""
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(split.train_images), generator=rng)
        for i in range(steps_per_epoch):
            idx = order[i * batch : (i + 1) * batch]
            x = _shift(to_model_space(split.train_images[idx]), 2, rng).to(device)
            loss = F.cross_entropy(net(x)[1], split.train_labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            if task is not None:
                task.advance(1, f"epoch {epoch + 1}/{epochs}{accuracy}")
        if task is not None and task.shown and epoch + 1 < epochs:
            measured = _accuracy(net, split.test_images, split.test_labels, device)
            accuracy = f", test accuracy {measured:.4f} after epoch {epoch + 1}"
    return net.eval(), _accuracy(net, split.test_images, split.test_labels, device)


def default_epochs(num_train: int) -> int:
    """Epochs that reach the recorded accuracies: more for small training sets."""
    return max(6, min(30, 240_000 // max(num_train, 1)))


class ClassifierExtractor(nn.Module, Extractor):
    """Features and class logits of ganzoo's classifier of a labelled dataset (trained, cached).

    ``classifier:DATASET`` names the dataset; plain ``classifier`` takes the evaluated run's.
    The first use trains it (minutes on a CPU) and caches it under the cache folder.
    """

    name = "classifier"
    argument = "DATASET"

    @classmethod
    def build(cls, params: Params, request: ExtractorRequest) -> ClassifierExtractor:
        """The cached classifier of ``request.argument`` (or of ``request.dataset``)."""
        target = request.argument or request.dataset
        if not target:
            raise UsageError("--extractor classifier needs a dataset: classifier:mnist")
        return load_or_train_classifier(
            target, request.data_dir, request.device, report=request.report
        )

    def __init__(self, net: ClassifierNet, meta: dict[str, Any], path: Path) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.meta = meta
        self.path = path

    def protocol(self) -> dict[str, Any]:
        """How features are made: which classifier, trained on what, how accurate."""
        return {
            "extractor": f"{self.name}:{self.meta['dataset']}",
            "weights": self.path.name,
            "weights_sha256": self.meta["weights_sha256"],
            "trained_on": self.meta["trained_on"],
            "test_accuracy": self.meta["test_accuracy"],
            "tested_on": self.meta["tested_on"],
            "resize": "none (native size)",
            "input_range": "[-1, 1]",
            "features": "penultimate layer, 128-d",
            "logits": f"{self.meta['num_classes']}-way class logits",
        }

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Features (N, 128) and logits (N, classes) of model-space images in [-1, 1].

        RGB images given to a grey classifier are converted with the ITU-R 601-2 luma
        weights (as PIL's ``convert("L")``); grey images given to an RGB one are repeated.
        """
        channels = self.net.body[0].in_channels
        if images.shape[1] == 3 and channels == 1:
            luma = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            images = (images * luma).sum(1, keepdim=True)
        elif images.shape[1] == 1 and channels == 3:
            images = images.repeat(1, 3, 1, 1)
        return self.net(images)


def load_or_train_classifier(
    dataset: str,
    data_dir: Path,
    device: torch.device,
    *,
    epochs: int | None = None,
    report: Callable[[str], None] | None = None,
) -> ClassifierExtractor:
    """The cached classifier for ``dataset`` (training it first when there is none)."""
    split = labelled_split(dataset, data_dir)
    cls = registry("datasets").load(dataset)
    num_classes = cls.spec_for(cls.Params()).num_classes
    epochs = epochs or default_epochs(len(split.train_images))
    key = _data_hash(split, f"{ARCHITECTURE} epochs={epochs} seed=0")
    folder = cache_dir() / "classifiers"
    path = folder / f"{dataset}-{key}.pt"
    channels = split.train_images.shape[1]
    cached = _cached_classifier(path, channels, num_classes, device)
    if cached is not None:
        return cached
    make_folder(folder, "the classifier cache")

    def waiting(holder: dict[str, Any]) -> None:
        if report is not None:
            who = f"pid {holder['pid']}" if "pid" in holder else "another process"
            report(f"waiting for {who}, which trains the {dataset} classifier into {folder}")

    with WriterLock.wait(path.with_suffix(".lock"), waiting):
        cached = _cached_classifier(path, channels, num_classes, device)
        if cached is not None:
            return cached
        return _train_and_store(dataset, split, num_classes, epochs, path, device, report)


def _cached_classifier(
    path: Path, channels: int, num_classes: int, device: torch.device
) -> ClassifierExtractor | None:
    """The classifier stored at ``path`` (with its ``.json`` beside it), or None."""
    meta_path = path.with_suffix(".json")
    if not (path.is_file() and meta_path.is_file()):
        return None
    net = ClassifierNet(channels, num_classes)
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return ClassifierExtractor(net.to(device), json.loads(meta_path.read_text()), path)


def _train_and_store(
    dataset: str,
    split: LabelledSplit,
    num_classes: int,
    epochs: int,
    path: Path,
    device: torch.device,
    report: Callable[[str], None] | None,
) -> ClassifierExtractor:
    """Train the classifier of ``dataset``, store it at ``path`` with its metadata beside it."""
    folder = path.parent
    started = time.perf_counter()
    batches = epochs * math.ceil(len(split.train_images) / BATCH_SIZE)
    intro = (
        f"training the {dataset} classifier (the feature extractor) once: {epochs} epochs on "
        f"{split.trained_on}, {batches:,} batches; cached in {folder} for later evaluations"
    )
    with track(report, f"training the {dataset} classifier", batches, "batches", intro) as task:
        net, accuracy = train_classifier(
            split, num_classes, epochs=epochs, device=device, task=task
        )
        task.finish(f"test accuracy {accuracy:.4f} on {split.tested_on}")
    write_file(path, lambda f: torch.save(net.state_dict(), f))
    meta = {
        "dataset": dataset,
        "architecture": ARCHITECTURE,
        "num_classes": num_classes,
        "trained_on": split.trained_on,
        "tested_on": split.tested_on,
        "test_accuracy": accuracy,
        "epochs": epochs,
        "train_seconds": round(time.perf_counter() - started, 1),
        "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "ganzoo": __version__,
    }
    write_text(path.with_suffix(".json"), json.dumps(meta, indent=2) + "\n")
    return ClassifierExtractor(net, meta, path)
