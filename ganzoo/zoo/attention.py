"""SAGAN's building blocks (Zhang et al. 2019): self-attention, and spectral norm on every layer.

:class:`SelfAttention2d` is the paper's block: 1x1 convolutions ``f``, ``g`` and ``h`` to
``C/8`` channels, attention weights ``softmax_i(f(x_i)^T g(x_j))`` over the positions ``i``,
an output 1x1 convolution ``v`` back to ``C`` channels and ``y = x + gamma * v(attended)``
with a learned scalar ``gamma`` that starts at 0, so that the block starts as the identity.
The paper's formula has no bias terms, so neither have the convolutions.

:func:`spectral_normalise` puts torch's spectral-norm parametrization (Miyato et al. 2018) on
every convolution and linear layer of a network, after its weights are initialised.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

_NORMALISED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def spectral_normalise(module: nn.Module) -> nn.Module:
    """Spectrally normalise the weight of every convolution and linear layer of ``module``.

    Embeddings are left alone: a conditional batch norm's per-class scales must stay free (a
    projection discriminator normalises its embedding itself). Call it after initialising the
    weights: the parametrization starts its power iteration from the weight it finds, and an
    initialiser applied afterwards to ``layer.weight`` would only write into a computed tensor.
    Layers already normalised are left as they are. Returns ``module``, changed in place.
    """
    for layer in list(module.modules()):
        if isinstance(layer, _NORMALISED) and not parametrize.is_parametrized(layer, "weight"):
            spectral_norm(layer)
    return module


class SelfAttention2d(nn.Module):
    """The self-attention block of SAGAN (Zhang et al. 2019) for feature maps ``(N, C, H, W)``.

    Args:
        channels: ``C``, the channels of the feature maps it reads and writes.
        spectral_norm: spectral norm on its four convolutions, as SAGAN has on every layer.

    """

    def __init__(self, channels: int, spectral_norm: bool = False) -> None:
        super().__init__()
        inner = max(1, channels // 8)  # the paper's C/8; narrow test networks keep one channel
        self.f = nn.Conv2d(channels, inner, 1, bias=False)
        self.g = nn.Conv2d(channels, inner, 1, bias=False)
        self.h = nn.Conv2d(channels, inner, 1, bias=False)
        self.v = nn.Conv2d(inner, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))
        if spectral_norm:
            spectral_normalise(self)

    def forward(self, x: Tensor) -> Tensor:
        """``x + gamma * v(o)``, ``o_j`` the attention-weighted sum of ``h(x_i)`` over ``i``."""
        n, _, height, width = x.shape
        f, g, h = (conv(x).flatten(2) for conv in (self.f, self.g, self.h))  # (N, C/8, HW)
        # beta[n, j, i] = softmax over i of f(x_i) . g(x_j): output position j reads all i
        beta = torch.softmax(torch.bmm(g.transpose(1, 2), f), dim=-1)
        o = torch.bmm(h, beta.transpose(1, 2))  # o[:, :, j] = sum_i beta[j, i] h(x_i)
        return x + self.gamma * self.v(o.view(n, -1, height, width))
