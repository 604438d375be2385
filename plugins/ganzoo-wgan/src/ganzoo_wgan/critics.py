"""Critics for WGAN-GP: networks that score each sample on its own, without batch norm.

Batch norm makes a sample's score depend on the rest of its batch, which breaks the per-sample
gradient penalty; Gulrajani et al. (2017) advise layer norm instead, or no normalisation.

``wgan-critic``: the DCGAN discriminator's layout for 28, 32 and 64 pixel images (4x4
stride-2 convolutions that halve the size and double the channels, LeakyReLU(0.2), a last
convolution to one score) with layer norm over each sample's (C, H, W) in place of batch norm.
``wgan-mlp-critic``: the fully connected critic of the paper's toy experiments, three ReLU
layers of 512 units, for points or flattened images. Both keep PyTorch's default
initialisation (weights and biases uniform in +-1/sqrt(fan_in)); the N(0, 0.02) start of
DCGAN is tuned for batch-normalised networks.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from ganzoo.api import DataSpec, Discriminator, Params
from ganzoo.errors import ComponentConfigError
from pydantic import Field, PositiveInt
from torch import Tensor, nn

# image size -> (side of the last feature map, number of stride-2 convolutions)
_LAYOUTS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}

Norm = Literal["layer", "none"]


class WGANCritic(Discriminator):
    """DCGAN-style convolutional critic with layer norm instead of batch norm (WGAN-GP)."""

    supported_specs: ClassVar[tuple[DataSpec, ...]] = tuple(
        DataSpec((c, s, s)) for s in _LAYOUTS for c in (1, 3)
    )

    class Params(Params):
        """Parameters of the convolutional critic."""

        base_channels: int = Field(
            64, gt=0, description="Channels of the first layer; doubled per layer down."
        )
        negative_slope: float = Field(0.2, ge=0, description="Slope of LeakyReLU for x < 0.")
        norm: Norm = Field(
            "layer",
            description="Normalisation after every convolution but the first and the last: "
            "layer norm over each sample's (C, H, W), or none.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        if not spec.is_image or spec.shape[1] != spec.shape[2] or spec.shape[1] not in _LAYOUTS:
            raise ComponentConfigError(
                f"the wgan-critic needs square images of size {', '.join(map(str, _LAYOUTS))}; "
                f"the data gives samples of shape {spec.shape}"
            )
        last_side, steps = _LAYOUTS[spec.shape[1]]
        width, side = params.base_channels, spec.shape[1] // 2
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels, width, 4, 2, 1),
            nn.LeakyReLU(params.negative_slope),
        ]
        for _ in range(steps - 1):
            side //= 2
            layers += [
                nn.Conv2d(width, width * 2, 4, 2, 1),
                nn.LayerNorm([width * 2, side, side]) if params.norm == "layer" else nn.Identity(),
                nn.LeakyReLU(params.negative_slope),
            ]
            width *= 2
        layers.append(nn.Conv2d(width, 1, last_side))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map images (N, C, H, W) to scores (N,)."""
        return self.net(x).view(-1)


class WGANMLPCritic(Discriminator):
    """Fully connected critic of the WGAN-GP toy experiments: ReLU layers, no batch norm."""

    class Params(Params):
        """Parameters of the MLP critic."""

        hidden: list[PositiveInt] = Field(
            [512, 512, 512], min_length=1, description="Widths of the hidden layers, in order."
        )
        negative_slope: float = Field(
            0.0, ge=0, description="Slope of LeakyReLU for x < 0; 0 is the paper's ReLU."
        )
        norm: Norm = Field("none", description="Layer norm after each hidden layer, or none.")

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        layers: list[nn.Module] = []
        width = spec.numel
        for size in params.hidden:
            layers += [
                nn.Linear(width, size),
                nn.LayerNorm(size) if params.norm == "layer" else nn.Identity(),
                nn.LeakyReLU(params.negative_slope),
            ]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """Map samples (N, *spec.shape) to scores (N,)."""
        return self.net(x.reshape(x.shape[0], -1)).view(-1)
