"""How many CPU threads a run computes with: ``train.threads``, and what ``auto`` picks.

PyTorch's default, one thread per core, loses where two runs each take every core: they
spin against each other (two quickstarts side by side fell from tens of thousands of
images/s to under 20,000 each on 2 cores). And a small step is too short to share out: the
quickstart's MLP at batch 32 or 64 runs as fast on one thread as on two, so a second thread
only takes a core from other work. So ``auto`` picks, in this order:

1. the count in ``OMP_NUM_THREADS``, when that is set: the user chose it;
2. one thread when a training step is small, under :data:`SMALL_STEP` multiply-adds (the
   forward passes of G and D over one batch, counted once on the meta device);
3. otherwise the cores that no other live ganzoo run has claimed, and at least one; under
   torchrun, the cores shared out among the processes.

Each run claims its threads for as long as it lives in a shared folder of lock files (one
per process, named by its pid and thread count, held with ``flock``): the kernel drops the
lock of a process that dies however it dies, so a claim never outlives its run. The thread
count changes the rounding of CPU results, never what is computed; a run records the count
it used in ``env.json``, and a recipe with an explicit ``train.threads`` repeats a CPU run
bit for bit.
"""

from __future__ import annotations

import copy
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganzoo.writes import WriterLock

# Forward multiply-adds of G and D over one batch under which a second thread does not pay
# (on 2 cores: the quickstart at batch 64, 4.5 million, runs as fast on one thread as on two;
# at its batch of 256, 18 million, 5-10% faster on two; benchmarks/threads.py).
SMALL_STEP = 10_000_000


@dataclass(frozen=True)
class ThreadChoice:
    """A resolved thread count, what asked for it and why it is that number."""

    threads: int
    setting: str
    reason: str
    shared: bool = False  # the count follows what other runs claim

    def record(self) -> dict[str, object]:
        """The choice as ``env.json`` keeps it."""
        return {
            "threads": self.threads,
            "threads_setting": self.setting,
            "threads_why": self.reason,
        }


def cores() -> int:
    """The CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def claims_folder() -> Path:
    """The folder where live runs claim their threads (one per user and machine)."""
    user = os.getuid() if hasattr(os, "getuid") else "user"
    return Path(tempfile.gettempdir()) / f"ganzoo-{user}" / "threads"


_CLAIM = re.compile(r"(\d+)-(\d+)\.lock")


def claimed_by_others(folder: Path | None = None) -> int:
    """Threads claimed by other live ganzoo processes; claims of dead ones are removed."""
    folder = folder or claims_folder()
    if not folder.is_dir():
        return 0
    total = 0
    for path in folder.iterdir():
        match = _CLAIM.fullmatch(path.name)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            stale = WriterLock.try_acquire(path)
        except OSError:  # unreadable: counts as nobody's
            continue
        if stale is None:
            total += int(match[2])
        else:
            stale.release()  # its process is gone: the claim goes with it
    return total


def claim(threads: int, folder: Path | None = None) -> WriterLock | None:
    """Claim ``threads`` for this process until the returned lock is released.

    None where the claims folder cannot be written (the run goes on; others cannot see it).
    """
    folder = folder or claims_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return WriterLock.try_acquire(folder / f"{os.getpid()}-{threads}.lock")
    except OSError:
        return None


def step_macs(generator: nn.Module, discriminator: nn.Module | None, batch: int) -> int | None:
    """Multiply-adds of G's forward pass over ``batch`` latents and D's over its output.

    The networks are copied to the meta device first, so that nothing is computed, no weight
    or running statistic changes and no global random number is drawn. None when a network
    cannot run there (a plugin's network that computes on the host, say).
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    try:
        z = generator.sample_latent(batch, generator=torch.Generator().manual_seed(0))
        y = torch.zeros(batch, dtype=torch.long, device="meta")
        with counter, torch.no_grad():
            G = copy.deepcopy(generator).to("meta").eval()
            x = G(z.to("meta"), y) if getattr(G, "num_classes", 0) else G(z.to("meta"))
            if discriminator is not None:
                D = copy.deepcopy(discriminator).to("meta").eval()
                D(x, y) if getattr(D, "num_classes", 0) else D(x)
    except Exception:  # any failure only means that the size is unknown
        return None
    return counter.get_total_flops() // 2


def choose(
    setting: int | str,
    macs: int | None,
    world: int = 1,
    others: int = 0,
    available: int | None = None,
) -> ThreadChoice:
    """The thread count for ``setting`` (a number, or ``"auto"``), as the module describes.

    ``macs`` is a step's forward multiply-adds (None: unknown, treated as large), ``world``
    the torchrun process count, ``others`` the threads other runs claim, ``available`` the
    cores (default: this process's).
    """
    if setting != "auto":
        return ThreadChoice(int(setting), str(setting), "train.threads")
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return ThreadChoice(int(env), "auto", "OMP_NUM_THREADS")
    if macs is not None and macs < SMALL_STEP:
        return ThreadChoice(1, "auto", f"a small step ({macs / 1e6:,.0f}M multiply-adds)")
    available = available or cores()
    if world > 1:
        return ThreadChoice(max(1, available // world), "auto", f"{available} cores / {world}")
    free = max(1, available - others)
    why = f"{available} cores" + (f", {others} claimed by other ganzoo runs" if others else "")
    return ThreadChoice(free, "auto", why, shared=True)


class ThreadBudget:
    """The threads a run computes with, claimed for other runs to see, until :meth:`close`.

    A run starts by claiming what it would take alone, then looks at the others' claims, so
    that of two runs started at once each sees the other. Where ``auto`` shares the cores
    (a large step), :meth:`adjust` follows the claims as runs come and go: a run alone takes
    every core, two side by side take half each. ``close`` gives the claim up and restores
    the process's thread count.
    """

    def __init__(
        self, setting: int | str, macs: int | None, world: int = 1, folder: Path | None = None
    ) -> None:
        self.setting, self.macs, self.world = setting, macs, world
        self.folder = folder or claims_folder()
        self._previous = torch.get_num_threads()
        self._lock: WriterLock | None = None
        self.choice = choose(setting, macs, world)
        self._claim(self.choice.threads)
        if self.choice.shared:
            self.choice = choose(setting, macs, world, claimed_by_others(self.folder))
        self._apply(self.choice)

    def _claim(self, threads: int) -> None:
        if self._lock is not None:
            self._lock.release()
        self._lock = claim(threads, self.folder)

    def _apply(self, choice: ThreadChoice) -> None:
        torch.set_num_threads(choice.threads)
        if self._lock is None or not self._lock.path.name.endswith(f"-{choice.threads}.lock"):
            self._claim(choice.threads)
        self.choice = choice

    def adjust(self) -> bool:
        """Follow the other runs' claims where ``auto`` shares the cores; True on a change."""
        if not self.choice.shared:
            return False
        choice = choose(self.setting, self.macs, self.world, claimed_by_others(self.folder))
        if choice.threads == self.choice.threads:
            return False
        self._apply(choice)
        return True

    def close(self) -> None:
        """Give the claim up and restore the thread count the process had before."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        torch.set_num_threads(self._previous)
