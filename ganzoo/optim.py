"""Optimisers and learning-rate schedules of the training step, as a recipe configures them."""

from __future__ import annotations

import math

import torch
from torch import nn

from ganzoo.recipe import OptimizerConfig


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning-rate multiplier of ``schedule`` at ``step`` (0-based) of ``total`` steps."""
    progress = min(step / total, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def make_optimizer(params: list[nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    """The configured optimiser; Adam and AdamW use their fused kernels (CPU and CUDA)."""
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.name in ("adam", "adamw"):
        optimizer = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
        return optimizer(
            params,
            lr=config.lr,
            betas=config.betas,
            weight_decay=config.weight_decay,
            fused=fused or None,
        )
    return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


def set_learning_rate(
    optimizer: torch.optim.Optimizer, config: OptimizerConfig, step: int, total: int
) -> None:
    """Set the learning rate of ``config``'s schedule at ``step`` of ``total``."""
    if config.schedule == "constant":
        return
    lr = config.lr * lr_factor(config.schedule, step, total)
    for group in optimizer.param_groups:
        group["lr"] = lr
