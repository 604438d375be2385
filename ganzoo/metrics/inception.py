"""The FID variant of InceptionV3, built exactly as pytorch-fid builds it.

torchvision's ``Inception3`` (1008 classes, no auxiliary head) with the blocks that differ in
the TensorFlow graph FID was defined with: average pools that ignore padding, and a max pool
in the last block. The weights are the 2015-12-05 TensorFlow weights ported by pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``), loaded with ``strict=True`` under their own key
names. The block definitions follow pytorch-fid (Apache License 2.0).

Inputs are model-space images in [-1, 1]: mapped to [0, 1], grey repeated to RGB, resized to
299x299 bilinearly (``align_corners=False``) and scaled to [-1, 1], as pytorch-fid does.
Outputs: pool3 features (N, 2048) and the 1008-way logits without the bias, as the original
Inception Score code took them (``pool3 @ W``).
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import inception as tv_inception

from ganzoo.api import Extractor, ExtractorRequest, Params
from ganzoo.errors import DataError
from ganzoo.progress import ReportTo, track
from ganzoo.writes import write_bytes

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
)
WEIGHTS_ENV = "GANZOO_INCEPTION_WEIGHTS"
WEIGHTS_SHA256_PREFIX = "6726825d"


class FIDInceptionA(tv_inception.InceptionA):
    """InceptionA whose average pool ignores the zero padding, as TensorFlow's does."""

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch5x5, branch3x3dbl, self.branch_pool(pool)], 1)


class FIDInceptionC(tv_inception.InceptionC):
    """InceptionC whose average pool ignores the zero padding, as TensorFlow's does."""

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        dbl = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):  # fmt: skip
            dbl = layer(dbl)
        pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch7x7, dbl, self.branch_pool(pool)], 1)


class FIDInceptionE1(tv_inception.InceptionE):
    """The first InceptionE, with an average pool that ignores the zero padding."""

    use_max_pool = False

    def forward(self, x: Tensor) -> Tensor:
        """The four branches, concatenated."""
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        dbl = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(dbl), self.branch3x3dbl_3b(dbl)], 1)
        if self.use_max_pool:
            pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([self.branch1x1(x), branch3x3, branch3x3dbl, self.branch_pool(pool)], 1)


class FIDInceptionE2(FIDInceptionE1):
    """The second InceptionE, with the max pool of the FID graph (where the paper averages)."""

    use_max_pool = True


def build_fid_inception() -> tv_inception.Inception3:
    """Torchvision's Inception3 patched into the FID network (weights not loaded)."""
    net = tv_inception.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE1(1280)
    net.Mixed_7c = FIDInceptionE2(2048)
    return net


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hub_weights_path() -> Path:
    """Where torch hub (and so pytorch-fid) caches the weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def find_weights(
    explicit: str | Path | None = None, download: bool = True, report: ReportTo = None
) -> Path:
    """Locate the FID Inception weights.

    In order: a given path, ``$GANZOO_INCEPTION_WEIGHTS``, the torch hub cache, and (with
    ``download``) pytorch-fid's release URL, fetched into that cache (shown on ``report``,
    see :func:`ganzoo.progress.track`).

    Raises:
        DataError: no file is found and it cannot be downloaded; says where to put it.
    """
    given = explicit or os.environ.get(WEIGHTS_ENV)
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise DataError(f"Inception weights {path}: no such file")
        return path
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    problem = "downloading is off"
    if download:
        try:
            _download(WEIGHTS_URL, cached, report)
            return cached
        except (urllib.error.URLError, OSError, ValueError) as exc:
            problem = f"download from {WEIGHTS_URL} failed: {exc}"
    raise DataError(
        f"the FID Inception weights are not available ({problem}). Put {WEIGHTS_FILE} at "
        f"{cached} (the torch hub cache, which pytorch-fid shares), or pass "
        f"--inception-weights PATH / set {WEIGHTS_ENV}. On a networked machine the file is "
        f"fetched from {WEIGHTS_URL}. Without it, use --extractor classifier."
    )


def _download(url: str, target: Path, report: ReportTo = None) -> None:
    """Fetch ``url`` into memory, check its SHA-256, then write it as ``target``.

    Raises:
        WriteError: the file cannot be written (its own message: path and reason).
        ValueError: the download's SHA-256 is not the published one.
    """
    data = bytearray()
    with urllib.request.urlopen(url, timeout=60) as response:
        size = int(response.headers.get("Content-Length") or 0)
        intro = f"downloading the FID Inception weights once, from {url} into {target.parent}"
        with track(
            report, "downloading the Inception weights", math.ceil(size / 2**20), "MiB", intro
        ) as task:
            for block in iter(lambda: response.read(2**20), b""):
                data += block
                task.advance()
    if not hashlib.sha256(data).hexdigest().startswith(WEIGHTS_SHA256_PREFIX):
        raise ValueError(f"the downloaded file's SHA-256 does not start {WEIGHTS_SHA256_PREFIX}")
    write_bytes(target, data, "the Inception weights")


class InceptionExtractor(nn.Module, Extractor):
    """pool3 features and unbiased 1008-way logits of the FID InceptionV3 (as pytorch-fid).

    The weights file is found as :func:`find_weights` says: ``--inception-weights``,
    ``$GANZOO_INCEPTION_WEIGHTS``, the torch hub cache, or pytorch-fid's release URL.
    """

    name = "inception-v3"

    @classmethod
    def build(cls, params: Params, request: ExtractorRequest) -> InceptionExtractor:
        """The network with the weights :func:`find_weights` finds for ``request.weights``."""
        return cls(find_weights(request.weights, report=request.report)).to(request.device)

    def __init__(self, weights: Path) -> None:
        super().__init__()
        self.weights = Path(weights)
        self.net = build_fid_inception()
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.net.eval().requires_grad_(False)
        self._sha256 = sha256_of(self.weights)

    def protocol(self) -> dict[str, Any]:
        """How features are made: the network, its weights and the preprocessing."""
        return {
            "extractor": self.name,
            "weights": self.weights.name,
            "weights_sha256": self._sha256,
            "resize": "bilinear to 299x299, align_corners=False",
            "input_range": "[0, 1] -> [-1, 1] (grey repeated to RGB)",
            "features": "pool3, 2048-d",
            "logits": "1008-way, pool3 @ fc.weight (no bias)",
        }

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """pool3 features (N, 2048) and logits (N, 1008) of model-space images in [-1, 1]."""
        x = images.add(1.0).div(2.0)
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        net = self.net
        for layer in (
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
            net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, net.avgpool,
        ):  # fmt: skip
            x = layer(x)
        pool = x.flatten(1)
        return pool, pool @ net.fc.weight.T
