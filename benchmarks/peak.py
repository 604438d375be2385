"""Arithmetic bounds of the speed benchmark's cases on this machine.

Counts the floating-point operations of one training step of each case (torch's FLOP
counter: matrix products and convolutions, forward and backward, both networks) and measures
the machine's peak for large fp32 and bf16 matrix products and for a DCGAN-sized convolution,
so that the images/s of ``training_speed.py`` can be read as a fraction of peak.

    python benchmarks/peak.py              # the table
    python benchmarks/peak.py --json peak.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reference_gan import (  # noqa: E402
    ConvDiscriminator,
    ConvGenerator,
    mlp_discriminator,
    mlp_generator,
)


def step_flops(G: torch.nn.Module, D: torch.nn.Module, batch: int, shape: tuple[int, ...]) -> int:
    """FLOPs of one step as ganzoo trains it: G forward, D on real and fake, both backward."""
    real = torch.rand(batch, *shape) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        fake = G(torch.randn(batch, 100))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        d_loss.backward()
        D.requires_grad_(False)
        F.softplus(-D(fake)).mean().backward()
        D.requires_grad_(True)
    return counter.get_total_flops()


def best_rate(fn: Any, flops: float, repeats: int = 5) -> float:
    """GFLOP/s of the fastest of ``repeats`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return flops / best / 1e9


def peaks() -> dict[str, float]:
    """Measured GFLOP/s of large products and of the DCGAN generator's widest convolution."""
    n = 2048
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    x = torch.randn(64, 128, 32, 32).contiguous(memory_format=torch.channels_last)
    w = torch.randn(64, 128, 3, 3).contiguous(memory_format=torch.channels_last)
    conv_flops = 2 * 64 * 64 * 32 * 32 * 128 * 9
    rates = {
        "matmul_fp32": best_rate(lambda: a32 @ b32, 2 * n**3),
        "matmul_bf16": best_rate(lambda: a16 @ b16, 2 * n**3),
        "conv_fp32": best_rate(lambda: F.conv2d(x, w, padding=1), conv_flops),
    }
    rates["conv_bf16"] = best_rate(lambda: F.conv2d(x.bfloat16(), w.bfloat16(), padding=1),
                                   conv_flops)  # fmt: skip
    return rates


def main() -> None:
    """Print FLOPs per trained image of each case and the machine's measured peaks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    cases = {
        "mlp64": (mlp_generator(100, (784,)), mlp_discriminator((784,)), 64, (784,)),
        "dcgan32": (ConvGenerator(100, 1, 32), ConvDiscriminator(1, 32), 64, (1, 32, 32)),
    }
    per_image = {name: step_flops(*case) / case[2] for name, case in cases.items()}
    rates = peaks()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, flops in per_image.items():
        print(f"{name:<10} {flops / 1e9:8.3f} GFLOP per trained image")
    for name, rate in rates.items():
        print(f"{name:<12} {rate:8.1f} GFLOP/s")
    if args.json:
        args.json.write_text(json.dumps({"gflop_per_image": per_image, "gflop_per_s": rates},
                                        indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
