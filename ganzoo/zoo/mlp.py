"""The vanilla MLP GAN of Goodfellow et al. (2014), as the classic PyTorch tutorials build it.

Generator: latent -> 256 -> 512 -> 1024 -> image, LeakyReLU(0.2), tanh output.
Discriminator: image -> 1024 -> 512 -> 256 -> 1 logit, LeakyReLU(0.2), dropout 0.3.
With ``conditional`` both are the conditional GAN of Mirza and Osindero (2014): the label, one-hot
or embedded, is concatenated to the generator's latent vector and to the discriminator's input.
The discriminator's ``classifier`` adds ACGAN's auxiliary class head (Odena et al. 2017).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from ganzoo.api import DataSpec, Discriminator, Generator, Params
from ganzoo.errors import ComponentConfigError
from ganzoo.zoo.conditioning import LabelCode, labels_given
from ganzoo.zoo.packing import pack_samples

_CONDITIONAL = Field(
    False,
    description="Condition on the class label (cGAN, Mirza and Osindero 2014): the label is "
    "concatenated to the input; needs labelled data.",
)
_EMBEDDING = Field(
    0,
    ge=0,
    description="With conditional: size of a learned label embedding; 0: the one-hot label.",
)


def _label_code(params: Params, spec: DataSpec, where: str) -> LabelCode | None:
    if not params.conditional:  # type: ignore[attr-defined]
        return None
    classes = spec.require_classes(f"{where}.conditional")
    return LabelCode(classes, params.label_embedding)  # type: ignore[attr-defined]


def _hidden_layers(
    sizes: list[int], width_in: int, slope: float, dropout: float, batch_norm: bool
) -> tuple[list[nn.Module], int]:
    layers: list[nn.Module] = []
    for width in sizes:
        layers.append(nn.Linear(width_in, width))
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.LeakyReLU(slope))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width_in = width
    return layers, width_in


class MLPGenerator(Generator):
    """Fully connected generator of the vanilla GAN (Goodfellow et al. 2014)."""

    class Params(Params):
        """Parameters of the MLP generator."""

        latent_dim: int = Field(100, gt=0, description="Size of the latent vector z.")
        hidden: list[PositiveInt] = Field(
            [256, 512, 1024], min_length=1, description="Widths of the hidden layers, in order."
        )
        negative_slope: float = Field(0.2, ge=0, description="Slope of LeakyReLU for x < 0.")
        batch_norm: bool = Field(False, description="Batch norm after each hidden layer.")
        output: Literal["auto", "tanh", "linear"] = Field(
            "auto", description="Output activation; auto: tanh for images, linear for points."
        )
        categories: int = Field(
            0,
            ge=0,
            description="Size of a uniform categorical (one-hot) code appended to z, as "
            "InfoGAN's categorical code without its information term; 0 is none.",
        )
        latent_std: float = Field(
            1.0,
            gt=0,
            description="Std of the Gaussian part of z. Well below 1 beside a categorical "
            "code, each code starts as a tight cluster that the discriminator moves to a "
            "single mode, instead of spreading it over several.",
        )
        conditional: bool = _CONDITIONAL
        label_embedding: int = _EMBEDDING

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.latent_dim = params.latent_dim + params.categories
        self.label_code = _label_code(params, spec, "generator")
        code_width = 0
        if self.label_code is not None:
            self.num_classes, code_width = self.label_code.num_classes, self.label_code.width
        layers, width = _hidden_layers(
            params.hidden, self.latent_dim + code_width, params.negative_slope, 0.0,
            params.batch_norm,
        )  # fmt: skip
        layers.append(nn.Linear(width, spec.numel))
        tanh = params.output == "tanh" or (params.output == "auto" and spec.is_image)
        if tanh:
            layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)

    def sample_latent(
        self,
        n: int,
        *,
        device: torch.device | str | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Normal z (std ``latent_std``), then a one-hot categorical code when ``categories``."""
        k = self.params.categories
        z = torch.randn(n, self.params.latent_dim, device=device, generator=generator)
        if self.params.latent_std != 1.0:
            z = z * self.params.latent_std
        if not k:
            return z
        codes = torch.randint(k, (n,), device=device, generator=generator)
        return torch.cat([z, F.one_hot(codes, k).to(z.dtype)], dim=1)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Map ``z`` (N, latent_dim), and labels ``y`` when conditional, to samples."""
        if self.label_code is not None:
            z = torch.cat([z, self.label_code(labels_given(self.num_classes, y), z.dtype)], 1)
        return self.net(z).view(z.shape[0], *self.spec.shape)


class MLPDiscriminator(Discriminator):
    """Fully connected discriminator of the vanilla GAN, with dropout (Goodfellow et al. 2014)."""

    per_sample = True  # no batch norm: each logit depends on its own sample (or pack) alone

    class Params(Params):
        """Parameters of the MLP discriminator."""

        hidden: list[PositiveInt] = Field(
            [1024, 512, 256], min_length=1, description="Widths of the hidden layers, in order."
        )
        negative_slope: float = Field(0.2, ge=0, description="Slope of LeakyReLU for x < 0.")
        dropout: float = Field(0.3, ge=0, lt=1, description="Dropout after each hidden layer.")
        pack: int = Field(
            1,
            ge=1,
            description="Samples judged together (PacGAN, Lin et al. 2018); the batch size "
            "must be a multiple of it.",
        )
        conditional: bool = _CONDITIONAL
        label_embedding: int = _EMBEDDING
        classifier: bool = Field(
            False,
            description="An auxiliary classifier head on the last hidden layer (ACGAN, Odena "
            "et al. 2017), for the acgan loss; needs labelled data and pack = 1.",
        )

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.label_code = _label_code(params, spec, "discriminator")
        code_width = 0
        if self.label_code is not None:
            self.num_classes, code_width = self.label_code.num_classes, self.label_code.width
        layers, width = _hidden_layers(
            params.hidden,
            (spec.numel + code_width) * params.pack,
            params.negative_slope,
            params.dropout,
            batch_norm=False,
        )
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)
        if params.classifier:
            if params.pack != 1 or params.conditional:
                raise ComponentConfigError(
                    "classifier = true needs pack = 1 and conditional = false (ACGAN's "
                    "discriminator judges the image alone)"
                )
            self.classes = nn.Linear(width, spec.require_classes("discriminator.classifier"))
            self.classifies = True

    def _inputs(self, x: Tensor, y: Tensor | None) -> Tensor:
        flat = x.reshape(x.shape[0], -1)
        if self.label_code is not None:
            code = self.label_code(labels_given(self.num_classes, y), flat.dtype)
            flat = torch.cat([flat, code], 1)
        return pack_samples(flat, self.params.pack)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Map samples (N, *spec.shape), and labels ``y`` when conditional, to logits."""
        return self.net(self._inputs(x, y)).view(-1)

    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, classes) of the auxiliary head, from the unconditional trunk."""
        if not self.classifies:
            raise ComponentConfigError("this discriminator has no classifier head")
        return self.classes(self.net[:-1](self._inputs(x, None)))
