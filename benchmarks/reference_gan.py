"""The reference training loops ganzoo is measured against, re-implemented for the benchmark.

They follow PyTorch-GAN's ``implementations/gan/gan.py`` and ``implementations/dcgan/dcgan.py``
(batch 64, Adam 2e-4 betas (0.5, 0.999), BCE on sigmoid outputs, a torchvision-style MNIST
dataset decoded and transformed per image in a DataLoader, numpy noise, the generator updated
before the discriminator, and ``.item()`` of both losses formatted into a log line every
step). The same architectures are also wrapped as ganzoo components (``PTGAN*``), so that
ganzoo trains exactly the networks the reference trains.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pydantic import Field
from torch import Tensor, nn
from torchvision import transforms

from ganzoo.api import Dataset, DataSpec, Discriminator, Generator, Params
from ganzoo.zoo.datasets import MNIST
from ganzoo.zoo.losses import mixture_rbf_mmd2


def mlp_generator(latent_dim: int, shape: tuple[int, ...]) -> nn.Sequential:
    """gan.py's generator: 128 (no norm), 256, 512, 1024 with BatchNorm1d(eps=0.8), tanh."""

    def block(n_in: int, n_out: int, norm: bool = True) -> list[nn.Module]:
        layers: list[nn.Module] = [nn.Linear(n_in, n_out)]
        if norm:
            layers.append(nn.BatchNorm1d(n_out, 0.8))
        return [*layers, nn.LeakyReLU(0.2, inplace=True)]

    return nn.Sequential(
        *block(latent_dim, 128, norm=False), *block(128, 256), *block(256, 512),
        *block(512, 1024), nn.Linear(1024, int(np.prod(shape))), nn.Tanh(),
    )  # fmt: skip


def mlp_discriminator(shape: tuple[int, ...]) -> nn.Sequential:
    """gan.py's discriminator up to its logit: 512, 256, LeakyReLU(0.2)."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(int(np.prod(shape)), 512), nn.LeakyReLU(0.2, inplace=True),
        nn.Linear(512, 256), nn.LeakyReLU(0.2, inplace=True), nn.Linear(256, 1),
    )  # fmt: skip


class ConvGenerator(nn.Module):
    """dcgan.py's generator: linear to 128x(s/4)^2, two (upsample, conv 3x3) stages, tanh."""

    def __init__(self, latent_dim: int, channels: int, size: int) -> None:
        super().__init__()
        self.side = size // 4
        self.l1 = nn.Linear(latent_dim, 128 * self.side**2)
        self.conv_blocks = nn.Sequential(
            nn.BatchNorm2d(128), nn.Upsample(scale_factor=2), nn.Conv2d(128, 128, 3, 1, 1),
            nn.BatchNorm2d(128, 0.8), nn.LeakyReLU(0.2, inplace=True), nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, 1, 1), nn.BatchNorm2d(64, 0.8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(64, channels, 3, 1, 1), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: Tensor) -> Tensor:
        """Images (N, C, size, size)."""
        return self.conv_blocks(self.l1(z).view(z.shape[0], 128, self.side, self.side))


class ConvDiscriminator(nn.Module):
    """dcgan.py's discriminator up to its logit: four stride-2 conv blocks with dropout."""

    def __init__(self, channels: int, size: int) -> None:
        super().__init__()

        def block(n_in: int, n_out: int, norm: bool = True) -> list[nn.Module]:
            layers = [nn.Conv2d(n_in, n_out, 3, 2, 1), nn.LeakyReLU(0.2, inplace=True),
                      nn.Dropout2d(0.25)]  # fmt: skip
            return [*layers, nn.BatchNorm2d(n_out, 0.8)] if norm else layers

        self.model = nn.Sequential(
            *block(channels, 16, norm=False), *block(16, 32), *block(32, 64), *block(64, 128)
        )
        self.adv_layer = nn.Linear(128 * (size // 16) ** 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N, 1)."""
        return self.adv_layer(self.model(x).flatten(1))


def normal_init(module: nn.Module) -> None:
    """dcgan.py's weights_init_normal."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


# -- the same networks as ganzoo components --------------------------------------------------


class PTGANMLPGenerator(Generator):
    """PyTorch-GAN's gan.py generator (for the benchmark)."""

    class Params(Params):
        """Parameters."""

        latent_dim: int = Field(100, description="Latent size.")

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.latent_dim = params.latent_dim
        self.net = mlp_generator(params.latent_dim, spec.shape)

    def forward(self, z: Tensor) -> Tensor:
        """Images."""
        return self.net(z).view(z.shape[0], *self.spec.shape)


class PTGANMLPDiscriminator(Discriminator):
    """PyTorch-GAN's gan.py discriminator, returning logits (for the benchmark)."""

    per_sample = True

    class Params(Params):
        """No parameters."""

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.net = mlp_discriminator(spec.shape)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N,)."""
        return self.net(x).view(-1)


class PTGANConvGenerator(Generator):
    """PyTorch-GAN's dcgan.py generator (for the benchmark)."""

    class Params(Params):
        """Parameters."""

        latent_dim: int = Field(100, description="Latent size.")

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.latent_dim = params.latent_dim
        self.net = ConvGenerator(params.latent_dim, spec.channels, spec.size)
        self.apply(normal_init)

    def forward(self, z: Tensor) -> Tensor:
        """Images."""
        return self.net(z)


class PTGANConvDiscriminator(Discriminator):
    """PyTorch-GAN's dcgan.py discriminator, returning logits (for the benchmark)."""

    class Params(Params):
        """No parameters."""

    def __init__(self, params: Params, spec: DataSpec) -> None:
        super().__init__(params, spec)
        self.net = ConvDiscriminator(spec.channels, spec.size)
        self.apply(normal_init)

    def forward(self, x: Tensor) -> Tensor:
        """Logits (N,)."""
        return self.net(x).view(-1)


class MNIST32(Dataset):
    """MNIST's test digits resized once to 32x32 (bilinear, antialiased), held in memory."""

    class Params(Params):
        """No parameters."""

    spec_shape: ClassVar[tuple[int, int, int]] = (1, 32, 32)

    @classmethod
    def spec_for(cls, params: Params) -> DataSpec:
        """Grey 32x32 images."""
        return DataSpec(cls.spec_shape)

    def tensor(self) -> Tensor:
        """uint8 (10000, 1, 32, 32)."""
        images = MNIST(MNIST.Params(split="test"), self.data_dir).tensor().float()
        resized = F.interpolate(images, size=(32, 32), mode="bilinear", antialias=True)
        return resized.round().clamp(0, 255).to(torch.uint8)


# -- the reference loops -------------------------------------------------------------------


class TorchvisionStyleMNIST(torch.utils.data.Dataset):
    """MNIST as torchvision serves it: a PIL image per item, through the transform."""

    def __init__(self, images: Tensor, transform: transforms.Compose) -> None:
        self.images, self.transform = images, transform

    def __len__(self) -> int:
        """Number of images."""
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """(image tensor, dummy label)."""
        image = Image.fromarray(self.images[index, 0].numpy(), mode="L")
        return self.transform(image), 0


def reference_loop(case: str, data_dir: Path, batch_size: int, steps: int, warmup: int) -> float:
    """Train as the reference script does; return the seconds of the timed ``steps``."""
    images = MNIST(MNIST.Params(split="test"), data_dir).tensor()
    size = 32 if case == "dcgan" else 28
    transform = transforms.Compose(
        [transforms.Resize(size), transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]
    )
    loader = torch.utils.data.DataLoader(
        TorchvisionStyleMNIST(images, transform), batch_size=batch_size, shuffle=True
    )
    shape = (1, size, size)
    latent = 100
    if case == "dcgan":
        generator: nn.Module = ConvGenerator(latent, 1, size)
        discriminator: nn.Module = nn.Sequential(ConvDiscriminator(1, size), nn.Sigmoid())
        generator.apply(normal_init)
        discriminator.apply(normal_init)
    elif case == "gmmn":
        generator = nn.Sequential(mlp_generator(latent, shape), nn.Unflatten(1, shape))
        discriminator = nn.Identity()
    else:
        generator = nn.Sequential(mlp_generator(latent, shape), nn.Unflatten(1, shape))
        discriminator = nn.Sequential(mlp_discriminator(shape), nn.Sigmoid())
    adversarial_loss = nn.BCELoss()
    optimizer_g = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_d = (
        torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
        if case != "gmmn"
        else None
    )
    with open(os.devnull, "w") as log:  # the reference prints a line per step; discarded
        done, started = 0, 0.0
        while done < warmup + steps:
            for real, _ in loader:
                if done == warmup:
                    started = time.perf_counter()
                if done == warmup + steps:
                    break
                n = real.shape[0]
                valid, fake = torch.ones(n, 1), torch.zeros(n, 1)
                z = torch.tensor(np.random.normal(0, 1, (n, latent)), dtype=torch.float32)
                optimizer_g.zero_grad()
                generated = generator(z)
                if case == "gmmn":
                    g_loss = mixture_rbf_mmd2(real, generated, [4.0, 10.0, 20.0, 40.0, 80.0, 160.0])
                    g_loss = g_loss.clamp_min(1e-12).sqrt()
                    g_loss.backward()
                    optimizer_g.step()
                    print(f"[Batch {done}] [G loss: {g_loss.item():f}]", file=log)
                else:
                    assert optimizer_d is not None
                    g_loss = adversarial_loss(discriminator(generated), valid)
                    g_loss.backward()
                    optimizer_g.step()
                    optimizer_d.zero_grad()
                    real_loss = adversarial_loss(discriminator(real), valid)
                    fake_loss = adversarial_loss(discriminator(generated.detach()), fake)
                    d_loss = (real_loss + fake_loss) / 2
                    d_loss.backward()
                    optimizer_d.step()
                    print(f"[Batch {done}] [D loss: {d_loss.item():f}] [G loss: {g_loss.item():f}]",
                          file=log)  # fmt: skip
                done += 1
    return time.perf_counter() - started if steps else math.nan
