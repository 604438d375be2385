"""The ground floor of training and evaluation: devices, bf16 autocast, the environment record.

Nothing here knows about recipes or run folders, so every other module may import it.
"""

from __future__ import annotations

import datetime as dt
import platform
import sys
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch

from ganzoo import __version__, distributed
from ganzoo.distributed import Distributed
from ganzoo.errors import UsageError
from ganzoo.registry import plugin_distributions


def resolve_device(name: str, dist: Distributed | None = None) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` without a GPU is an error.

    Under torchrun, plain ``cuda`` means this process's GPU (``cuda:LOCAL_RANK``).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None and dist is not None and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_device(device: torch.device) -> str | None:
    """The device type that ``train.amp`` runs bf16 autocast on, or None where it cannot.

    CUDA always; the CPU only where it has native bf16 (on other CPUs bf16 is emulated and
    slower than fp32).
    """
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return device.type
    return None


def autocast(device_type: str | None) -> AbstractContextManager[Any]:
    """bf16 autocast on ``device_type`` (from :func:`autocast_device`); nothing for None."""
    if device_type is None:
        return nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)


def environment(device: torch.device) -> dict[str, Any]:
    """The software and hardware a run used: python, torch, CUDA, ganzoo and plugin versions."""
    return {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ganzoo": __version__,
        "plugins": [f"{d.name}=={d.version}" for d in plugin_distributions(load=False)],
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        ),
        "threads": torch.get_num_threads(),
        "bf16_autocast": autocast_device(device) is not None,
        "world_size": distributed.from_environment().world,
    }
