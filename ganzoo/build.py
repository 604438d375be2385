"""Turn a validated recipe into live components, and check that they fit together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ganzoo.api import Dataset, DataSpec, Discriminator, Generator, Loss
from ganzoo.errors import ComponentConfigError, RecipeError
from ganzoo.recipe import Recipe


@dataclass
class Networks:
    """The generator, the discriminator (None for a loss that uses none) and the loss."""

    generator: Generator
    discriminator: Discriminator | None
    loss: Loss


def data_spec(recipe: Recipe) -> DataSpec:
    """The data spec the recipe's dataset gives, computed from its parameters alone."""
    data = recipe.components["data"]
    try:
        return data.component.spec_for(data.params)
    except ComponentConfigError as exc:
        raise RecipeError([f"{recipe.source}: data: {exc}"]) from None


def build_dataset(recipe: Recipe, data_dir: Path, download: bool = False) -> Dataset:
    """Construct the recipe's dataset (which checks that its files are there)."""
    data = recipe.components["data"]
    return data.component(data.params, data_dir, download)


def build_networks(recipe: Recipe, spec: DataSpec, device: torch.device | str) -> Networks:
    """Construct the generator, discriminator and loss on ``device``.

    Raises:
        RecipeError: a component refuses its parameters or the data spec.

    """
    built: dict[str, object] = {}
    with torch.device(device):
        for section in ("generator", "discriminator", "loss"):
            resolved = recipe.components.get(section)
            if resolved is None:
                continue
            try:
                if section == "loss":
                    built[section] = resolved.component(resolved.params)
                else:
                    built[section] = resolved.component(resolved.params, spec)
            except ComponentConfigError as exc:
                raise RecipeError([f"{recipe.source}: {section}: {resolved.name}: {exc}"]) from None
    discriminator = built.get("discriminator")
    return Networks(built["generator"], discriminator, built["loss"])  # type: ignore[arg-type]


def check_networks(recipe: Recipe) -> None:
    """Build the networks on the meta device and push one batch through them.

    Catches size mismatches between generator, discriminator and data, and batch sizes a
    discriminator cannot take, without allocating memory or reading data.

    Raises:
        RecipeError: one line per mismatch, naming the section.

    """
    spec = data_spec(recipe)
    nets = build_networks(recipe, spec, "meta")
    batch = recipe.train.batch_size
    problems: list[str] = []
    with torch.no_grad():
        z = nets.generator.sample_latent(batch, device="meta")
        try:
            fake = nets.generator(z)
        except (RuntimeError, ComponentConfigError) as exc:
            raise RecipeError([f"{recipe.source}: generator: forward pass fails: {exc}"]) from None
        if tuple(fake.shape) != (batch, *spec.shape):
            problems.append(
                f"generator: {recipe.components['generator'].name} makes samples of shape "
                f"{tuple(fake.shape[1:])}, the data has {spec.shape}"
            )
        elif nets.discriminator is not None:
            problems += _check_discriminator(nets.discriminator, fake, recipe)
    if problems:
        raise RecipeError([f"{recipe.source}: {p}" for p in problems])


def _check_discriminator(discriminator: nn.Module, fake: torch.Tensor, recipe: Recipe) -> list[str]:
    name = recipe.components["discriminator"].name
    try:
        logits = discriminator(fake)
    except ComponentConfigError as exc:
        return [f"discriminator: {name}: {exc} (train.batch_size = {fake.shape[0]})"]
    except RuntimeError as exc:
        return [f"discriminator: {name}: forward pass fails: {exc}"]
    if logits.dim() != 1 or fake.shape[0] % max(logits.shape[0], 1):
        return [f"discriminator: {name} returns shape {tuple(logits.shape)}, expected (N,)"]
    return []
