"""The logging window: running sums of a training step's logged values, kept on the device.

Each step adds its logged values (a loss's terms, D(x), ...) to the sums without waiting
for the device; every ``log_every`` steps the means are read once and the window starts
again. The sums travel in checkpoints, so that a run resumed inside a window logs the same
means as an uninterrupted run.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ganzoo import distributed
from ganzoo.distributed import Distributed


class LogWindow:
    """Sums of the logged values since the last record, per name, with their step counts.

    Steps that log the same names in a row are summed as one stacked tensor (one device op a
    step); a change of names folds that run into the per-name sums.
    """

    def __init__(self, device: torch.device, dist: Distributed) -> None:
        self.device, self.dist = device, dist
        self._sums: dict[str, tuple[Tensor, int]] = {}
        self._run_keys: tuple[str, ...] = ()
        self._run_sum = torch.zeros(0, device=device)
        self._run_steps = 0

    def add(self, logs: dict[str, Tensor]) -> Tensor:
        """Add one step's values (device ops only, no sync); return them stacked."""
        keys = tuple(logs)
        values = torch.stack([v.float() for v in logs.values()])
        if keys != self._run_keys:  # a loss may log other terms on some steps
            self._fold_run()
            self._run_keys, self._run_sum, self._run_steps = keys, torch.zeros_like(values), 0
        self._run_sum += values
        self._run_steps += 1
        return values

    def _fold_run(self) -> None:
        """Move the sums of the current run of steps with the same names into the window."""
        for i, key in enumerate(self._run_keys):
            total, steps = self._sums.get(key, (0.0, 0))
            self._sums[key] = (self._run_sum[i] + total, steps + self._run_steps)
        self._run_keys = ()

    def means(self) -> dict[str, float]:
        """The mean of every value over the window (averaged over processes); a new window."""
        self._fold_run()
        if not self._sums:
            return {}
        means = torch.stack([total / steps for total, steps in self._sums.values()])
        values = distributed.average_(means, self.dist).tolist()
        result = dict(zip(self._sums, values, strict=True))
        self._sums = {}
        return result

    def state_dict(self) -> dict[str, Any]:
        """The sums as they stand, for a checkpoint (every process must call it).

        Under torchrun they are averaged over the processes, as :meth:`means` averages.
        """

        def shared(values: list[Tensor] | Tensor) -> Tensor:
            stacked = torch.stack(values) if isinstance(values, list) else values.clone()
            return distributed.average_(stacked.float(), self.dist).cpu()

        totals = [torch.as_tensor(total, device=self.device) for total, _ in self._sums.values()]
        return {
            "keys": list(self._sums),
            "sums": shared(totals) if totals else torch.zeros(0),
            "steps": [steps for _, steps in self._sums.values()],
            "run_keys": list(self._run_keys),
            "run_sum": shared(self._run_sum),
            "run_steps": self._run_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the window saved by :meth:`state_dict`."""
        sums = state["sums"].to(self.device)
        self._sums = {
            str(key): (sums[i], int(steps))
            for i, (key, steps) in enumerate(zip(state["keys"], state["steps"], strict=True))
        }
        self._run_keys = tuple(str(key) for key in state["run_keys"])
        self._run_sum = state["run_sum"].to(self.device)
        self._run_steps = int(state["run_steps"])
