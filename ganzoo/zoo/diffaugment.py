"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout.

The operations follow the authors' code (mit-han-lab/data-efficient-gans, ``DiffAugment_pytorch``)
on model-space images in [-1, 1]:

- ``color``: brightness (add U(-0.5, 0.5)), saturation (scale the distance to the mean over
  channels by U(0, 2); nothing for one channel), contrast (scale the distance to the image's
  mean by U(0.5, 1.5)), each with its own draw per sample;
- ``translation``: shift by a whole number of pixels, up to ``translation_ratio`` of the side
  in each direction, filling with zeros;
- ``cutout``: zero a square of ``cutout_ratio`` of the side at a uniform position (it may
  reach over the border).

Each operation in ``policy`` is applied to each sample with probability ``p`` (the ADA way);
DiffAugment itself is ``p = 1``.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from ganzoo.api import Augmentation, DataSpec, Params
from ganzoo.errors import ComponentConfigError

Operation = Literal["color", "translation", "cutout"]


def _uniform(x: Tensor) -> Tensor:
    """One U(0, 1) draw per sample, shaped to broadcast over ``x``."""
    return torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)


def color(x: Tensor) -> Tensor:
    """Random brightness, saturation and contrast, one draw of each per sample."""
    x = x + (_uniform(x) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x) + 0.5) + mean


def _grid(n: int, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    return torch.meshgrid(
        torch.arange(n, device=device),
        torch.arange(h, device=device),
        torch.arange(w, device=device),
        indexing="ij",
    )


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each sample by up to ``ratio`` of its side in x and y, zero-filled."""
    n, _, h, w = x.shape
    sx, sy = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sx, sx + 1, size=(n, 1, 1), device=x.device)
    ty = torch.randint(-sy, sy + 1, size=(n, 1, 1), device=x.device)
    batch, gx, gy = _grid(n, h, w, x.device)
    gx = torch.clamp(gx + tx + 1, 0, h + 1)
    gy = torch.clamp(gy + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[batch, gx, gy].permute(0, 3, 1, 2).contiguous()


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero a square of ``ratio`` of the side at a random position in each sample."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ox = torch.randint(0, h + (1 - ch % 2), size=(n, 1, 1), device=x.device)
    oy = torch.randint(0, w + (1 - cw % 2), size=(n, 1, 1), device=x.device)
    batch, gx, gy = _grid(n, ch, cw, x.device)
    gx = torch.clamp(gx + ox - ch // 2, min=0, max=h - 1)
    gy = torch.clamp(gy + oy - cw // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[batch, gx, gy] = 0
    return x * mask.unsqueeze(1)


class DiffAugment(Augmentation):
    """DiffAugment (Zhao et al. 2020): colour, translation, cutout; each with probability p."""

    class Params(Params):
        """Parameters of DiffAugment."""

        policy: list[Operation] = Field(
            ["color", "translation", "cutout"],
            min_length=1,
            description="Operations, applied in the order given.",
        )
        translation_ratio: float = Field(
            0.125, gt=0, le=0.5, description="Largest shift, as a fraction of the side."
        )
        cutout_ratio: float = Field(
            0.5, gt=0, le=1, description="Side of the cut-out square, as a fraction of the side."
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        if not spec.is_image:
            raise ComponentConfigError(
                f"diffaugment augments images (C, H, W); the data gives samples of shape "
                f"{spec.shape}"
            )

    def forward(self, x: Tensor, p: Tensor) -> Tensor:
        """Apply each operation of the policy to each sample with probability ``p``."""
        for name in self.params.policy:
            if name == "color":
                out = color(x)
            elif name == "translation":
                out = translation(x, self.params.translation_ratio)
            else:
                out = cutout(x, self.params.cutout_ratio)
            chosen = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < p
            x = torch.where(chosen, out, x)
        return x
