"""PacGAN's packing (Lin et al. 2018), shared by the zoo's discriminators."""

from __future__ import annotations

from torch import Tensor

from ganzoo.errors import ComponentConfigError


def pack_samples(x: Tensor, pack: int) -> Tensor:
    """``x`` (N, C, ...) as packs (N // pack, pack * C, ...), consecutive samples side by side.

    Pack ``k`` holds samples ``k * pack`` to ``k * pack + pack - 1``, one after the other along
    dimension 1.

    Raises:
        ComponentConfigError: N is not a multiple of ``pack``.

    """
    if x.shape[0] % pack:
        raise ComponentConfigError(f"batch of {x.shape[0]} is not a multiple of pack={pack}")
    return x.reshape(x.shape[0] // pack, pack * x.shape[1], *x.shape[2:])
