"""A run's augmentation and its probability ``p``: fixed, or adapted as ADA does.

ADA (Karras et al. 2020, ``training_loop.py`` of stylegan2-ada-pytorch): the overfitting
heuristic ``r_t = E[sign(D(real))]`` is averaged over ``ada_interval`` discriminator updates;
then ``p`` moves by ``sign(r_t - ada_target) * batch_size * ada_interval / ada_images``,
clamped to [0, 1]. ``D(real)`` is read from the discriminator calls a loss makes on the real
batch itself (or on ``judge``'s joined real and fake batch, whose first rows are the real ones),
so no extra forward pass is taken. Everything stays on the device (no host sync); ``p`` and the
running sums are part of the checkpoint, so a resumed run continues bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ganzoo import distributed
from ganzoo.api import Augmentation, AugmentedDiscriminator
from ganzoo.distributed import Distributed
from ganzoo.sections import AugmentSection


class Augmenter:
    """Wraps discriminators in the run's augmentation, and adapts ``p`` when ADA is on."""

    def __init__(
        self,
        augmentation: Augmentation,
        section: AugmentSection,
        batch_size: int,
        device: torch.device,
        dist: Distributed | None = None,
    ) -> None:
        self.augmentation = augmentation
        self.section = section
        self.dist = dist or Distributed()
        assert section.p is not None
        self.p = torch.tensor(section.p, device=device)
        self.adaptive = section.ada_target is not None
        self._step = batch_size * section.ada_interval / section.ada_images
        self._signs = torch.zeros((), device=device)
        self._count = torch.zeros((), device=device)
        self.r_t = torch.zeros((), device=device)
        self._updates = 0
        self._real: Tensor | None = None

    def wrap(self, discriminator: nn.Module, real: Tensor | None = None) -> AugmentedDiscriminator:
        """``discriminator`` behind the augmentation; with ``real``, its logits feed ADA."""
        self._real = real
        observe = self._observe if self.adaptive and real is not None else None
        return AugmentedDiscriminator(discriminator, self.augmentation, self.p, observe)

    def _observe(self, x: Tensor, logits: Tensor) -> None:
        real = self._real
        assert real is not None
        n, rows = len(real), x.shape[0]
        if rows == n and x.data_ptr() == real.data_ptr():
            seen = logits
        elif rows == 2 * n:
            seen = logits[: len(logits) // 2]  # judge's torch.cat([real, fake])
        else:
            return
        seen = seen.detach().float()
        self._signs += seen.sign().sum()
        self._count += seen.numel()

    def discriminator_updated(self) -> None:
        """Count one discriminator update; every ``ada_interval`` of them, adjust ``p``."""
        if not self.adaptive:
            return
        self._updates += 1
        if self._updates % self.section.ada_interval:
            return
        stats = torch.stack([self._signs, self._count])
        if self.dist.enabled:
            distributed.average_(stats, self.dist)
        signs, count = stats.unbind()
        assert self.section.ada_target is not None
        self.r_t = torch.where(count > 0, signs / count.clamp_min(1), self.r_t)
        moved = self.p + torch.sign(self.r_t - self.section.ada_target) * self._step
        self.p.copy_(torch.where(count > 0, moved.clamp(0.0, 1.0), self.p))
        self._signs.zero_()
        self._count.zero_()

    def logs(self) -> dict[str, Tensor]:
        """Values to log each step: ``augment_p``, and ADA's latest ``ada_rt``."""
        logs = {"augment_p": self.p.detach().clone()}
        if self.adaptive:
            logs["ada_rt"] = self.r_t.detach().clone()
        return logs

    def state_dict(self) -> dict[str, Any]:
        """The state a resumed run needs: ``p``, ADA's running sums and update count."""
        return {
            "p": self.p.detach().cpu(),
            "signs": self._signs.detach().cpu(),
            "count": self._count.detach().cpu(),
            "r_t": self.r_t.detach().cpu(),
            "updates": self._updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.p.copy_(state["p"])
        self._signs.copy_(state["signs"])
        self._count.copy_(state["count"])
        self.r_t.copy_(state["r_t"])
        self._updates = int(state["updates"])
