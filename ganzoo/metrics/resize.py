"""The two ways model-space images become the 299x299 input of the FID Inception network.

``bilinear`` is pytorch-fid's: images in [0, 1], resized with ``F.interpolate`` (bilinear,
``align_corners=False``) and mapped to [-1, 1] as ``2x - 1``. It runs where the images are.

``clean`` is clean-fid's ``clean`` mode (Parmar et al. 2022, ``make_resizer("PIL", False,
"bicubic", (299, 299))``): 8-bit pixels, each channel resized as a float32 PIL image (mode
``F``) with PIL's bicubic filter, clipped to [0, 255], then mapped as ``(x - 128) / 128``, the
normalisation of the TensorFlow graph that clean-fid's network applies.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ganzoo.api import from_model_space

SIDE = 299
# The most images resized per PIL call in the clean mode (bounds the stacked planes' memory).
CHUNK = 32


def bilinear_input(images: Tensor) -> Tensor:
    """pytorch-fid's network input for model-space images (N, 1 or 3, H, W) in [-1, 1].

    Mapped to [0, 1], resized bilinearly to 299x299, grey repeated to RGB, and mapped to
    [-1, 1]; on the images' device.
    """
    x = F.interpolate(
        images.add(1.0).div(2.0), size=(SIDE, SIDE), mode="bilinear", align_corners=False
    )
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return 2 * x - 1


def clean_input(images: Tensor) -> Tensor:
    """clean-fid's network input for model-space images (N, 1 or 3, H, W) in [-1, 1].

    The images become 8-bit pixels (rounded as when saved to PNG: exact for ganzoo's samples,
    which are quantised already), are resized by :func:`pil_bicubic` (on the CPU, whatever
    the images' device), grey repeated to RGB (as clean-fid's ``convert("RGB")``), and mapped
    to ``(x - 128) / 128``. Returned on the images' device.
    """
    pixels = from_model_space(images).cpu().numpy().astype(np.float32)
    x = torch.from_numpy(pil_bicubic(pixels)).to(images.device)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return x.sub(128).div(128)


def pil_bicubic(pixels: np.ndarray, side: int = SIDE, workers: int | None = None) -> np.ndarray:
    """clean-fid's resize of (N, C, H, W) pixel values in [0, 255] to (N, C, side, side).

    Equal to resizing each channel on its own as a float32 PIL image with
    ``resize((side, side), BICUBIC)`` and clipping to [0, 255] (the test checks it against
    clean-fid's own resizer), done with two PIL calls per chunk of images instead of one per
    channel, the chunks on ``workers`` threads (default ``torch.get_num_threads()``; PIL
    releases the GIL while it resizes). This runs on the CPU even when the network is on a
    GPU: about 5 ms an RGB image on one core.
    """
    workers = workers or torch.get_num_threads()
    size = max(1, min(CHUNK, math.ceil(len(pixels) / workers)))
    chunks = [pixels[start : start + size] for start in range(0, len(pixels), size)]
    if workers > 1 and len(chunks) > 1:
        with ThreadPoolExecutor(min(workers, len(chunks))) as pool:
            parts = list(pool.map(partial(_resize_chunk, side=side), chunks))
    else:
        parts = [_resize_chunk(chunk, side) for chunk in chunks]
    return np.concatenate(parts)


def _resize_chunk(pixels: np.ndarray, side: int) -> np.ndarray:
    """:func:`pil_bicubic` of a few images, in two PIL calls.

    PIL resizes in two passes, each along one axis (horizontal, then vertical), accumulating
    in double and storing float32 between them. The planes are stacked into one tall image
    for the horizontal pass, and their transposes into another for the vertical one, so that
    each pass computes and rounds exactly what PIL's does.
    """
    n, c, h, w = pixels.shape
    planes = n * c
    flat = np.ascontiguousarray(pixels, dtype=np.float32).reshape(planes * h, w)
    wide = _resize_rows(flat, side).reshape(planes, h, side)
    columns = wide.transpose(0, 2, 1).reshape(planes * side, h)
    tall = _resize_rows(columns, side).reshape(planes, side, side).transpose(0, 2, 1)
    return np.clip(tall, 0, 255).reshape(n, c, side, side)


def _resize_rows(rows: np.ndarray, width: int) -> np.ndarray:
    """Each row of a 2-D float32 array resized to ``width`` by PIL's bicubic filter."""
    image = Image.fromarray(np.ascontiguousarray(rows, dtype=np.float32))
    return np.asarray(image.resize((width, rows.shape[0]), Image.Resampling.BICUBIC))
