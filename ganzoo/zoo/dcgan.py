"""DCGAN (Radford, Metz and Chintala, 2016) for 28, 32 and 64 pixel images, 1 or 3 channels.

Generator: a transposed convolution from the latent vector to a 4x4 map (7x7 for 28 px), then
stride-2 transposed convolutions that double the size and halve the channels, batch norm and
ReLU, tanh output. Discriminator: the mirror image with stride-2 convolutions, LeakyReLU(0.2),
batch norm on all but the first layer, and a last convolution to one logit. Weights start
from N(0, 0.02) as in the paper.

Class-conditional switches: the generator's ``conditional`` replaces its batch norms by
conditional batch norms (a per-class scale and shift; de Vries et al. 2017, as in Miyato and
Koyama 2018); the discriminator's ``conditional`` adds the projection term ``<embed(y), h>``
to its logit, ``h`` the last feature map that the logit's convolution reads, flattened
(projection discriminator, Miyato and Koyama 2018: ``psi(h) + <embed(y), h>``, with DCGAN's
``h``); its ``classifier`` adds ACGAN's auxiliary class head (Odena et al. 2017).

SAGAN switches (Zhang et al. 2019): ``attention`` inserts a self-attention block after the
hidden layer whose feature maps have that side, and ``spectral_norm`` puts spectral norm on
every convolution (the discriminator's projection embedding included), the attention block's
too; SAGAN has both in its generator and discriminator.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ganzoo.api import DataSpec, Discriminator, Generator, Params
from ganzoo.errors import ComponentConfigError
from ganzoo.zoo.attention import SelfAttention2d, spectral_normalise
from ganzoo.zoo.conditioning import ConditionalBatchNorm2d, labels_given, projection_term

# image size -> (side of the first feature map, number of stride-2 up/down-sampling steps)
_LAYOUTS = {28: (7, 2), 32: (4, 3), 64: (4, 4)}
_SPECS = tuple(DataSpec((c, s, s)) for s in _LAYOUTS for c in (1, 3))


def _layout(spec: DataSpec, what: str) -> tuple[int, int]:
    if not spec.is_image or spec.shape[1] != spec.shape[2] or spec.shape[1] not in _LAYOUTS:
        raise ComponentConfigError(
            f"{what} needs square images of size {', '.join(map(str, _LAYOUTS))}; "
            f"the data gives samples of shape {spec.shape}"
        )
    return _LAYOUTS[spec.shape[1]]


def _hidden_side(field: str, value: int | None, sides: list[int], what: str) -> int | None:
    """``value`` (of ``field``) when it is one of the ``sides`` of the hidden feature maps."""
    if value is not None and value not in sides:
        size = 2 * max(sides)
        raise ComponentConfigError(
            f"{field} = {value} is not the side of one of the {what}'s hidden feature "
            f"maps at {size} px; choose one of {', '.join(map(str, sorted(sides)))}"
        )
    return value


def _attention_field(role: str) -> Any:
    return Field(
        None,
        gt=0,
        description=f"Side of the {role}'s hidden feature maps after which a self-attention "
        "block comes (SAGAN, Zhang et al. 2019): 7 or 14 at 28 px; 4, 8 or 16 at 32 px; 4, "
        "8, 16 or 32 at 64 px. Unset: no attention block.",
    )


MAX_EXTRA_LAYERS = 32
"""The most extra blocks a DCGAN network takes: far past the DCGAN code's 0 to 3, and a
mistyped count (1000000) would otherwise take minutes and gigabytes to build."""


def _extra_layers_field(block: str, place: str) -> Any:
    return Field(
        0,
        ge=0,
        le=MAX_EXTRA_LAYERS,
        description=f"Stride-1 3x3 convolution blocks (convolution, {block}) after the hidden "
        "layer of side extra_side (n_extra_layers of the DCGAN code of Arjovsky et al. 2017, "
        f"which puts them {place}).",
    )


def _extra_side_field(default: str) -> Any:
    return Field(
        None,
        gt=0,
        description="Side of the hidden feature maps at which the extra_layers blocks come: 7 "
        "or 14 at 28 px; 4, 8 or 16 at 32 px; 4, 8, 16 or 32 at 64 px. Unset: the "
        f"{default} side.",
    )


def init_dcgan_weights(module: nn.Module) -> None:
    """Initialise as Radford et al.: convolutions N(0, 0.02), batch norm N(1, 0.02), bias 0."""
    if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGANGenerator(Generator):
    """Transposed-convolution generator of DCGAN (Radford et al. 2016)."""

    supported_specs: ClassVar[tuple[DataSpec, ...]] = _SPECS

    class Params(Params):
        """Parameters of the DCGAN generator."""

        latent_dim: int = Field(100, gt=0, description="Size of the latent vector z.")
        base_channels: int = Field(
            64, gt=0, description="Channels of the last hidden layer (ngf); doubled per layer up."
        )
        batch_norm: bool = Field(True, description="Batch norm after each hidden layer.")
        conditional: bool = Field(
            False,
            description="Condition on the class label through conditional batch norm (a "
            "per-class scale and shift); needs batch_norm and labelled data.",
        )
        attention: int | None = _attention_field("generator")
        extra_layers: int = _extra_layers_field("batch norm, ReLU", "at the largest side")
        extra_side: int | None = _extra_side_field("largest")
        spectral_norm: bool = Field(
            False,
            description="Spectral norm on every convolution (the attention block's too), as in "
            "SAGAN's generator.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        first_side, steps = _layout(spec, "the dcgan generator")
        if params.conditional:
            if not params.batch_norm:
                raise ComponentConfigError("conditional = true needs batch_norm = true")
            self.num_classes = spec.require_classes("generator.conditional")
        self.latent_dim = params.latent_dim
        sides = [first_side * 2**i for i in range(steps)]
        attend = _hidden_side("attention", params.attention, sides, "generator")
        extra = _hidden_side("extra_side", params.extra_side, sides, "generator") or sides[-1]
        width = params.base_channels * 2 ** (steps - 1)
        layers = self._block(params.latent_dim, width, first_side, 1, 0)
        for side in sides:
            if side > first_side:
                if side // 2 == attend:
                    layers.append(SelfAttention2d(width))
                layers += self._block(width, width // 2, 4, 2, 1)
                width //= 2
            if side == extra:
                for _ in range(params.extra_layers):
                    layers += self._block(width, width, 3, 1, 1, transposed=False)
        if sides[-1] == attend:
            layers.append(SelfAttention2d(width))
        layers += [nn.ConvTranspose2d(width, spec.channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(init_dcgan_weights)
        if params.spectral_norm:
            spectral_normalise(self)

    def _block(
        self, c_in: int, c_out: int, kernel: int, stride: int, pad: int, transposed: bool = True
    ) -> list[nn.Module]:
        norm = self.params.batch_norm
        conv_type = nn.ConvTranspose2d if transposed else nn.Conv2d
        conv = conv_type(c_in, c_out, kernel, stride, pad, bias=not norm)
        if self.num_classes:
            return [conv, ConditionalBatchNorm2d(c_out, self.num_classes), nn.ReLU(True)]
        return [conv, nn.BatchNorm2d(c_out) if norm else nn.Identity(), nn.ReLU(True)]

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Map ``z`` (N, latent_dim), and labels ``y`` when conditional, to images in [-1, 1]."""
        h = z.view(z.shape[0], self.latent_dim, 1, 1)
        if not self.num_classes:
            return self.net(h)
        y = labels_given(self.num_classes, y)
        for layer in self.net:
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class DCGANDiscriminator(Discriminator):
    """Strided-convolution discriminator of DCGAN (Radford et al. 2016)."""

    supported_specs: ClassVar[tuple[DataSpec, ...]] = _SPECS

    class Params(Params):
        """Parameters of the DCGAN discriminator."""

        base_channels: int = Field(
            64, gt=0, description="Channels of the first layer (ndf); doubled per layer down."
        )
        negative_slope: float = Field(0.2, ge=0, description="Slope of LeakyReLU for x < 0.")
        batch_norm: bool = Field(True, description="Batch norm after every layer but the first.")
        conditional: bool = Field(
            False,
            description="Condition on the class label with the projection term of Miyato and "
            "Koyama (2018) on the last feature map; needs labelled data.",
        )
        classifier: bool = Field(
            False,
            description="An auxiliary classifier head beside the logit (ACGAN, Odena et al. "
            "2017), for the acgan loss; needs labelled data. With conditional = true the "
            "projection logit and the head share the features.",
        )
        attention: int | None = _attention_field("discriminator")
        extra_layers: int = _extra_layers_field(
            "batch norm when batch_norm, LeakyReLU", "after the first layer"
        )
        extra_side: int | None = _extra_side_field("first layer's")
        spectral_norm: bool = Field(
            False,
            description="Spectral norm on every convolution (the attention block's too) and on "
            "the projection embedding, as in SAGAN's discriminator.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        last_side, steps = _layout(spec, "the dcgan discriminator")
        sides = [last_side * 2**i for i in reversed(range(steps))]
        attend = _hidden_side("attention", params.attention, sides, "discriminator")
        extra = _hidden_side("extra_side", params.extra_side, sides, "discriminator") or sides[0]
        width = params.base_channels
        layers: list[nn.Module] = [
            nn.Conv2d(spec.channels, width, 4, 2, 1),
            nn.LeakyReLU(params.negative_slope, True),
        ]
        for side in sides:
            if side < sides[0]:
                if side * 2 == attend:
                    layers.append(SelfAttention2d(width))
                layers += self._block(width, width * 2, 4, 2)
                width *= 2
            if side == extra:
                for _ in range(params.extra_layers):
                    layers += self._block(width, width, 3, 1)
        if last_side == attend:
            layers.append(SelfAttention2d(width))
        layers.append(nn.Conv2d(width, 1, last_side, 1, 0))
        self.net = nn.Sequential(*layers)
        if params.conditional:
            self.num_classes = spec.require_classes("discriminator.conditional")
            self.projection = nn.Embedding(self.num_classes, width * last_side**2)
        if params.classifier:
            classes = spec.require_classes("discriminator.classifier")
            self.classes = nn.Conv2d(width, classes, last_side, 1, 0)
            self.classifies = True
        self.apply(init_dcgan_weights)
        if self.num_classes:
            nn.init.normal_(self.projection.weight, 0.0, 0.02)  # as the logit's convolution
        if params.spectral_norm:
            spectral_normalise(self)
            if self.num_classes:
                spectral_norm(self.projection)

    def _block(self, c_in: int, c_out: int, kernel: int, stride: int) -> list[nn.Module]:
        norm = self.params.batch_norm
        return [
            nn.Conv2d(c_in, c_out, kernel, stride, 1, bias=not norm),
            nn.BatchNorm2d(c_out) if norm else nn.Identity(),
            nn.LeakyReLU(self.params.negative_slope, True),
        ]

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Map images (N, C, H, W), and labels ``y`` when conditional, to logits (N,)."""
        if not self.num_classes:
            return self.net(x).view(-1)
        features = self.net[:-1](x)
        logits = self.net[-1](features).view(-1)
        return logits + projection_term(self.projection, self.num_classes, y, features.flatten(1))

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, classes) of the auxiliary head, from the shared features."""
        if not self.classifies:
            raise ComponentConfigError("this discriminator has no classifier head")
        return self.classes(self.net[:-1](x)).flatten(1)
