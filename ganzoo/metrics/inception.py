"""The FID variant of InceptionV3, built exactly as pytorch-fid builds it.

torchvision's ``Inception3`` (1008 classes, no auxiliary head) with the blocks that differ in
the TensorFlow graph FID was defined with (:mod:`ganzoo.metrics.fid_inception`, imported when
the network is built). The weights are the 2015-12-05 TensorFlow weights ported by pytorch-fid
(``pt_inception-2015-12-05-6726825d.pth``), loaded with ``strict=True`` under their own key
names.

Inputs are model-space images in [-1, 1], resized to 299x299 as pytorch-fid does (bilinear,
the default) or as clean-fid does (``resize = "clean"``, PIL bicubic; see
:mod:`ganzoo.metrics.resize`). clean-fid runs NVIDIA's TorchScript port of the same TensorFlow
graph; here both modes run pytorch-fid's port of its weights. Outputs: pool3 features
(N, 2048) and the 1008-way logits without the bias, as the original Inception Score code took
them (``pool3 @ W``).
"""

from __future__ import annotations

import hashlib
import math
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from ganzoo.api import Extractor, ExtractorRequest, Params
from ganzoo.device import autocast_device
from ganzoo.errors import DataError, UsageError
from ganzoo.metrics.resize import bilinear_input, clean_input
from ganzoo.progress import ReportTo, track
from ganzoo.writes import write_bytes

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
)
WEIGHTS_ENV = "GANZOO_INCEPTION_WEIGHTS"
WEIGHTS_SHA256_PREFIX = "6726825d"


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


RESIZERS = {"bilinear": bilinear_input, "clean": clean_input}
RESIZE_PROTOCOL = {
    "bilinear": {
        "resize": "bilinear to 299x299, align_corners=False",
        "input_range": "[0, 1] -> [-1, 1] (grey repeated to RGB)",
    },
    "clean": {
        "resize": "clean-fid clean: PIL bicubic to 299x299 per channel in float32 (mode F), "
        "clipped to [0, 255]",
        "input_range": "[-1, 1] -> 8-bit pixels (rounded) -> (x - 128) / 128 "
        "(grey repeated to RGB)",
    },
}
PRECISION_PROTOCOL = {
    "float32": "float32",
    "bfloat16": "bfloat16 autocast (network only; resize and logits in float32)",
}


class InceptionExtractor(nn.Module, Extractor):
    """pool3 features and unbiased 1008-way logits of the FID InceptionV3 (as pytorch-fid).

    The weights file is found as :func:`find_weights` says: ``--inception-weights``,
    ``$GANZOO_INCEPTION_WEIGHTS``, the torch hub cache, or pytorch-fid's release URL.

    Each convolution's batch norm is folded into it once, when built, and the network and
    its input are channels-last: the same features as pytorch-fid's network up to float
    rounding, in less time on the CPU. ``fast=False`` keeps pytorch-fid's layout (for the
    benchmark's comparison). ``precision="bfloat16"`` runs the network under bf16 autocast on
    the images' device; :meth:`build` refuses it where bf16 is not native (emulated on an
    AVX2 CPU it ran about 4x slower than float32), a direct construction runs it anyway.
    """

    name = "inception-v3"

    class Params(Params):
        """Parameters of the Inception extractor."""

        resize: Literal["bilinear", "clean"] = Field(
            "bilinear",
            description="How images reach 299x299: bilinear (pytorch-fid, the standard FID "
            "numbers) or clean (clean-fid's PIL bicubic resize of 8-bit pixels, on the CPU).",
        )
        precision: Literal["float32", "bfloat16"] = Field(
            "float32",
            description="The network's arithmetic: float32, or bfloat16 autocast (CUDA, or a "
            "CPU with native bf16: AMX or AVX512-BF16). bfloat16 features differ slightly.",
        )

    @classmethod
    def build(cls, params: Params, request: ExtractorRequest) -> InceptionExtractor:
        """The network with the weights :func:`find_weights` finds for ``request.weights``.

        Raises:
            UsageError: ``precision`` bfloat16 on a device without native bf16 (emulated,
                it runs several times slower than float32 there).
            DataError: the weights cannot be found.

        """
        if params.precision == "bfloat16" and autocast_device(request.device) is None:
            raise UsageError(
                f"--extractor inception-v3: precision bfloat16 needs a CUDA device or a CPU "
                f"with native bf16 (AMX or AVX512-BF16); on {request.device} bf16 would be "
                "emulated, several times slower than float32. Use precision float32."
            )
        weights = find_weights(request.weights, report=request.report)
        return cls(weights, params.resize, params.precision).to(request.device)

    def __init__(
        self,
        weights: Path,
        resize: Literal["bilinear", "clean"] = "bilinear",
        precision: Literal["float32", "bfloat16"] = "float32",
        fast: bool = True,
    ) -> None:
        super().__init__()
        self.params = self.Params(resize=resize, precision=precision)
        self.weights = Path(weights)
        from ganzoo.metrics.fid_inception import build_fid_inception, fold_batch_norms

        self.net = build_fid_inception()
        state = torch.load(self.weights, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.net.eval().requires_grad_(False)
        self._sha256 = sha256_of(self.weights)
        self._memory_format = torch.contiguous_format
        if fast:
            fold_batch_norms(self.net)
            self._memory_format = torch.channels_last
            self.net.to(memory_format=self._memory_format)

    def protocol(self) -> dict[str, Any]:
        """How features are made: the network, its weights and the preprocessing."""
        return {
            "extractor": self.name,
            "weights": self.weights.name,
            "weights_sha256": self._sha256,
            **RESIZE_PROTOCOL[self.params.resize],
            "precision": PRECISION_PROTOCOL[self.params.precision],
            "features": "pool3, 2048-d",
            "logits": "1008-way, pool3 @ fc.weight (no bias)",
        }

    @torch.inference_mode()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """pool3 features (N, 2048) and logits (N, 1008) of model-space images in [-1, 1]."""
        x = RESIZERS[self.params.resize](images).contiguous(memory_format=self._memory_format)
        if self.params.precision == "bfloat16":
            with torch.autocast(x.device.type, dtype=torch.bfloat16):
                pool = self._pool3(x).float()
        else:
            pool = self._pool3(x)
        return pool, pool @ self.net.fc.weight.T

    def _pool3(self, x: Tensor) -> Tensor:
        """The network from its input to the pool3 features (N, 2048)."""
        net = self.net
        for layer in (
            net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, net.maxpool1,
            net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, net.maxpool2,
            net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
            net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c, net.avgpool,
        ):  # fmt: skip
            x = layer(x)
        return x.flatten(1)
