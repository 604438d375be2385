"""SNGAN's ResNet generator and discriminator (Miyato et al. 2018) for 28, 32 and 64 pixel images.

The paper's ResNet model for CIFAR-10 as its Chainer code (sngan_projection) has it, layer for
layer as mimicry (Lee and Town 2020, ``torch_mimicry/nets/sngan``) builds it; mimicry's widths
at 64 px. Generator: a linear map of z to a ``start x start`` map, residual up-blocks
(BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus an upsampled 1x1 convolution as shortcut), then
BN-ReLU-conv3x3-tanh. Upsampling is nearest-neighbour as in the paper's code (mimicry uses
bilinear; no parameter depends on it). Discriminator: an "optimised" first block
(conv3x3-ReLU-conv3x3-avgpool, shortcut avgpool-conv1x1), residual blocks (ReLU-conv3x3-ReLU-
conv3x3, average pooling where they downsample, a 1x1 shortcut where the shape changes), ReLU,
global sum pooling and a linear layer to one logit, spectral norm on every layer. Weights
start from Xavier-uniform (gain sqrt(2) in the residual paths, 1 elsewhere) as in mimicry.
The discriminator's ``pack`` judges that many samples together (PacGAN, Lin et al. 2018),
stacked along the channels of its input as the paper does for its convolutional models.

Class-conditional switches: the generator's ``conditional`` makes the blocks' batch norms
conditional (Miyato and Koyama 2018; the last one stays unconditional, as in their code); the
discriminator's ``conditional`` adds the projection ``<embed(y), h>`` on the sum-pooled features
``h`` (the embedding spectrally normalised, as in their code), ``classifier`` ACGAN's class head.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ganzoo.api import DataSpec, Discriminator, Generator, Params
from ganzoo.errors import ComponentConfigError
from ganzoo.zoo.attention import spectral_normalise
from ganzoo.zoo.conditioning import ConditionalBatchNorm2d, labels_given, projection_term
from ganzoo.zoo.packing import pack_samples

# image size -> (side of the generator's first map, the widths the generator's blocks go
# through, the widths of the discriminator's blocks), widths as multiples of base_channels
_LAYOUTS = {
    28: (7, (1, 1, 1), (1, 1, 1, 1)),
    32: (4, (1, 1, 1, 1), (1, 1, 1, 1)),
    64: (4, (4, 2, 1, 1 / 2, 1 / 4), (1 / 2, 1, 2, 4, 8)),
}
# how many of the discriminator's first blocks halve the side (32 -> 16 -> 8, then two at 8)
_DOWNSAMPLES = {28: 2, 32: 2, 64: 5}
_SPECS = tuple(DataSpec((c, s, s)) for s in _LAYOUTS for c in (1, 3))
_RESIDUAL_GAIN = math.sqrt(2.0)


def _layout(spec: DataSpec, what: str) -> int:
    if not spec.is_image or spec.shape[1] != spec.shape[2] or spec.shape[1] not in _LAYOUTS:
        raise ComponentConfigError(
            f"{what} needs square images of size {', '.join(map(str, _LAYOUTS))}; "
            f"the data gives samples of shape {spec.shape}"
        )
    return spec.shape[1]


def _widths(base: int, factors: tuple[float, ...], size: int, what: str) -> list[int]:
    widths = [base * f for f in factors]
    if any(w != int(w) for w in widths):
        divisor = round(1 / min(factors))
        raise ComponentConfigError(
            f"base_channels = {base}: at {size} px the {what}'s narrowest block has "
            f"base_channels / {divisor} channels; give a multiple of {divisor}"
        )
    return [int(w) for w in widths]


def _conv(c_in: int, c_out: int, kernel: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    return conv


class GBlock(nn.Module):
    """SNGAN's up-block: BN-ReLU-up-conv3x3-BN-ReLU-conv3x3, plus an up-conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, num_classes: int = 0) -> None:
        super().__init__()
        self.b1, self.b2 = (
            ConditionalBatchNorm2d(c, num_classes) if num_classes else nn.BatchNorm2d(c)
            for c in (c_in, c_out)
        )
        self.c1 = _conv(c_in, c_out, 3, _RESIDUAL_GAIN)
        self.c2 = _conv(c_out, c_out, 3, _RESIDUAL_GAIN)
        self.c_sc = _conv(c_in, c_out, 1, 1.0)

    def _norm(self, norm: nn.Module, h: Tensor, y: Tensor | None) -> Tensor:
        return F.relu(norm(h, y) if isinstance(norm, ConditionalBatchNorm2d) else norm(h))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Double the side of ``x`` (N, c_in, S, S); ``y`` the labels of a conditional block."""
        h = F.interpolate(self._norm(self.b1, x, y), scale_factor=2, mode="nearest")
        h = self.c2(self._norm(self.b2, self.c1(h), y))
        return h + self.c_sc(F.interpolate(x, scale_factor=2, mode="nearest"))


class DBlock(nn.Module):
    """SNGAN's down-block: ReLU-conv3x3-ReLU-conv3x3 (-avgpool), a 1x1 shortcut when needed.

    The first block of the discriminator (``first``) reads the image itself: no ReLU before
    its first convolution, which widens to ``c_out`` at once, and its shortcut pools first.
    """

    def __init__(self, c_in: int, c_out: int, downsample: bool, first: bool = False) -> None:
        super().__init__()
        hidden = c_out if first else c_in
        self.first, self.downsample = first, downsample
        self.c1 = _conv(c_in, hidden, 3, _RESIDUAL_GAIN)
        self.c2 = _conv(hidden, c_out, 3, _RESIDUAL_GAIN)
        self.c_sc = _conv(c_in, c_out, 1, 1.0) if first or downsample or c_in != c_out else None

    def forward(self, x: Tensor) -> Tensor:
        """The block's output: half the side of ``x`` when it downsamples."""
        h = self.c2(F.relu(self.c1(x if self.first else F.relu(x))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        if self.c_sc is None:
            return h + x
        if self.first:
            return h + self.c_sc(F.avg_pool2d(x, 2))
        shortcut = self.c_sc(x)
        return h + (F.avg_pool2d(shortcut, 2) if self.downsample else shortcut)


class SNGANGenerator(Generator):
    """ResNet generator of SNGAN (Miyato et al. 2018), the paper's CIFAR-10 model.

    Parameters at 32x32x3 with the defaults (latent 128, 256 channels): 4,276,739, as counted
    from mimicry's ``ResNetGenerator32`` (linear 528,384, three blocks of 1,246,976, last batch
    norm 512 and convolution 6,915); neither mimicry nor the paper states a count. At 64x64x3 the
    widths are mimicry's ``ResNetGenerator64`` (1024 down to 64 channels): 12,220,675.
    """

    supported_specs: ClassVar[tuple[DataSpec, ...]] = _SPECS

    class Params(Params):
        """Parameters of the SNGAN generator."""

        latent_dim: int = Field(128, gt=0, description="Size of the latent vector z.")
        base_channels: int = Field(
            256,
            gt=0,
            description="Channels of every block at 28 and 32 px (ngf; 256 in the paper); at "
            "64 px the blocks go from 4x to 1/4x of it, halving (mimicry's 1024 to 64).",
        )
        conditional: bool = Field(
            False,
            description="Condition on the class label through conditional batch norm in the "
            "blocks (a per-class scale and shift); needs labelled data.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        size = _layout(spec, "the sngan generator")
        self.start, factors, _ = _LAYOUTS[size]
        widths = _widths(params.base_channels, factors, size, "generator")
        if params.conditional:
            self.num_classes = spec.require_classes("generator.conditional")
        self.latent_dim = params.latent_dim
        self.linear = nn.Linear(params.latent_dim, self.start**2 * widths[0])
        self.blocks = nn.ModuleList(
            GBlock(c_in, c_out, self.num_classes) for c_in, c_out in pairwise(widths)
        )
        self.norm = nn.BatchNorm2d(widths[-1])
        self.out = nn.Conv2d(widths[-1], spec.channels, 3, 1, 1)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.xavier_uniform_(self.out.weight)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Map ``z`` (N, latent_dim), and labels ``y`` when conditional, to images in [-1, 1]."""
        if self.num_classes:
            y = labels_given(self.num_classes, y)
        h = self.linear(z).view(z.shape[0], -1, self.start, self.start)
        for block in self.blocks:
            h = block(h, y if self.num_classes else None)
        return torch.tanh(self.out(F.relu(self.norm(h))))


class SNGANDiscriminator(Discriminator):
    """ResNet discriminator of SNGAN (Miyato et al. 2018), the paper's CIFAR-10 model.

    Parameters at 32x32x3 with the defaults (128 channels): 1,053,825, as counted from
    mimicry's ``ResNetDiscriminator32`` (first block 151,680, downsampling block 311,680, two
    blocks of 295,168, linear 129); neither mimicry nor the paper states a count. At 64x64x3 the
    widths are mimicry's ``ResNetDiscriminator64`` (64 up to 1024 channels): 10,141,441.
    Spectral norm adds no parameters (its vectors ``u``, ``v`` are buffers).
    """

    supported_specs: ClassVar[tuple[DataSpec, ...]] = _SPECS
    per_sample = True  # no batch norm: each logit depends on its own sample (or pack) alone

    class Params(Params):
        """Parameters of the SNGAN discriminator."""

        base_channels: int = Field(
            128,
            gt=0,
            description="Channels of every block at 28 and 32 px (ndf; 128 in the paper); at "
            "64 px the blocks go from 1/2x to 8x of it, doubling (mimicry's 64 to 1024).",
        )
        pack: int = Field(
            1,
            ge=1,
            description="Samples judged together (PacGAN, Lin et al. 2018), stacked along the "
            "channels of the input; the batch size must be a multiple of it.",
        )
        spectral_norm: bool = Field(
            True,
            description="Spectral norm (Miyato et al. 2018) on every convolution, the linear "
            "layer, the projection embedding and the class head.",
        )
        conditional: bool = Field(
            False,
            description="Condition on the class label with the projection term of Miyato and "
            "Koyama (2018) on the sum-pooled features; needs labelled data.",
        )
        classifier: bool = Field(
            False,
            description="An auxiliary classifier head on the sum-pooled features (ACGAN, Odena "
            "et al. 2017), for the acgan loss; needs labelled data. With conditional = true the "
            "projection logit and the head share the features. Both need pack = 1.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        size = _layout(spec, "the sngan discriminator")
        widths = _widths(params.base_channels, _LAYOUTS[size][2], size, "discriminator")
        downsamples = _DOWNSAMPLES[size]
        labelled = [name for name in ("conditional", "classifier") if getattr(params, name)]
        if params.pack != 1 and labelled:
            raise ComponentConfigError(
                f"{labelled[0]} = true needs pack = 1 (the projection and the class head read "
                "one image's features)"
            )
        ins = [spec.channels * params.pack, *widths[:-1]]
        self.blocks = nn.ModuleList(
            DBlock(c_in, c_out, downsample=i < downsamples, first=i == 0)
            for i, (c_in, c_out) in enumerate(zip(ins, widths, strict=True))
        )
        width = widths[-1]
        self.linear = nn.Linear(width, 1)
        nn.init.xavier_uniform_(self.linear.weight)
        if params.conditional:
            self.num_classes = spec.require_classes("discriminator.conditional")
            self.projection = nn.Embedding(self.num_classes, width)
            nn.init.xavier_uniform_(self.projection.weight)
        if params.classifier:
            self.classes = nn.Linear(width, spec.require_classes("discriminator.classifier"))
            nn.init.xavier_uniform_(self.classes.weight)
            self.classifies = True
        if params.spectral_norm:
            spectral_normalise(self)
            if self.num_classes:
                spectral_norm(self.projection)

    def features(self, x: Tensor) -> Tensor:
        """The sum-pooled features ``h`` (N // pack, width) that the logit and the heads read."""
        h = pack_samples(x, self.params.pack)
        for block in self.blocks:
            h = block(h)
        return F.relu(h).sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Map images (N, C, H, W), and labels ``y`` when conditional, to logits (N // pack,)."""
        h = self.features(x)
        logits = self.linear(h).view(-1)
        if not self.num_classes:
            return logits
        return logits + projection_term(self.projection, self.num_classes, y, h)

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, classes) of the auxiliary head, from the shared features."""
        if not self.classifies:
            raise ComponentConfigError("this discriminator has no classifier head")
        return self.classes(self.features(x))
