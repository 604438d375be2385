"""Turn a validated recipe into live components, and check that they fit together."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ganzoo.api import (
    Augmentation,
    Dataset,
    DataSpec,
    Discriminator,
    Generator,
    LabelledDiscriminator,
    Loss,
)
from ganzoo.contract import Provider, blame, blaming, describe, loss_problem, watch
from ganzoo.errors import ComponentConfigError, RecipeError
from ganzoo.recipe import Recipe


@dataclass
class Networks:
    """The networks and the loss of a run.

    ``discriminator`` is None for a loss that uses none, ``augmentation`` (applied before the
    discriminator) None without an ``[augment]`` section.
    """

    generator: Generator
    discriminator: Discriminator | None
    loss: Loss
    augmentation: Augmentation | None = None


def data_spec(recipe: Recipe) -> DataSpec:
    """The data spec the recipe's dataset gives, computed from its parameters alone."""
    data = recipe.components["data"]
    try:
        with blaming():
            return data.component.spec_for(data.params)
    except ComponentConfigError as exc:
        raise RecipeError([f"{recipe.source}: data: {exc}"]) from None


def build_dataset(recipe: Recipe, data_dir: Path, download: bool = False) -> Dataset:
    """Construct the recipe's dataset (which checks that its files are there)."""
    data = recipe.components["data"]
    with blaming():
        return data.component(data.params, data_dir, download)


def build_networks(recipe: Recipe, spec: DataSpec, device: torch.device | str) -> Networks:
    """Construct the generator, discriminator and loss on ``device``.

    A plugin's generator and discriminator have their outputs checked against the contract
    on every call (:func:`ganzoo.contract.watch`).

    Raises:
        RecipeError: a component refuses its parameters or the data spec.
        PluginError: a plugin component's constructor raised another exception.

    """
    built: dict[str, object] = {}
    with torch.device(device), blaming():
        for section in ("generator", "discriminator", "loss", "augment"):
            resolved = recipe.components.get(section)
            if resolved is None:
                continue
            try:
                if section == "loss":
                    built[section] = resolved.component(resolved.params)
                else:
                    built[section] = net = resolved.component(resolved.params, spec)
                    watch(net, resolved.entry, spec)
            except ComponentConfigError as exc:
                raise RecipeError([f"{recipe.source}: {section}: {resolved.name}: {exc}"]) from None
            except (RuntimeError, ValueError, TypeError) as exc:
                # on the meta device nothing is allocated: what fails is the sizes themselves
                meta = torch.device(device).type == "meta"
                if not meta or not _size_error(exc) or blame(exc) is not None:
                    raise
                line = f"{recipe.source}: {section}: {resolved.name}: cannot be built: "
                raise RecipeError([line + _first_line(exc)]) from exc
    return Networks(
        built["generator"],  # type: ignore[arg-type]
        built.get("discriminator"),  # type: ignore[arg-type]
        built["loss"],  # type: ignore[arg-type]
        built.get("augment"),  # type: ignore[arg-type]
    )


def check_networks(recipe: Recipe) -> None:
    """Build the networks on the meta device and push one batch through them.

    Catches size mismatches between generator, discriminator and data, batch sizes a
    discriminator cannot take, and conditional networks without labels to condition on,
    without allocating memory or reading data. A plugin's network whose latent vectors or
    output break the contract (type, shape, dtype), or whose methods raise, is named as the
    plugin that fails. Sizes too large for any tensor, and batches a network cannot train on
    (one sample through batch norm), are recipe errors too.

    Raises:
        RecipeError: one line per mismatch, naming the section.
        PluginError: a plugin's component breaks the contract.

    """
    try:
        _check_networks(recipe)
    except (RuntimeError, ValueError, TypeError) as exc:
        if not _size_error(exc) or blame(exc) is not None:
            raise
        line = (
            f"{recipe.source}: the networks cannot be built and run at these sizes "
            f"(train.batch_size = {recipe.train.batch_size}): {_first_line(exc)}"
        )
        raise RecipeError([line]) from exc


def _size_error(exc: Exception) -> bool:
    """Whether torch refused sizes rather than failed otherwise.

    A RuntimeError or ValueError, or a TypeError of an integer too large for torch (its
    overflow of a C long long is a TypeError).
    """
    return not isinstance(exc, TypeError) or "overflow" in str(exc).lower()


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (torch's may go on with a C++ trace)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _check_networks(recipe: Recipe) -> None:
    spec = data_spec(recipe)
    nets = build_networks(recipe, spec, "meta")
    batch = recipe.train.batch_size
    problems = _label_problems(nets, recipe, spec)
    if problems:
        raise RecipeError([f"{recipe.source}: {p}" for p in problems])
    labels = torch.zeros(batch, dtype=torch.long, device="meta")
    G = nets.generator
    with torch.no_grad(), blaming():
        z = G.sample_latent(batch, device="meta")
        if not isinstance(z, torch.Tensor) or z.dim() == 0 or z.shape[0] != batch:
            raise Provider.of(recipe.components["generator"].entry).error(
                "sample_latent", f"returned {describe(z)}; expected {batch} latent vectors (N, ...)"
            )
        try:
            fake = G(z, labels) if G.num_classes else G(z)
        except ComponentConfigError as exc:
            raise RecipeError([f"{recipe.source}: generator: forward pass fails: {exc}"]) from None
        except RuntimeError as exc:
            line = f"{recipe.source}: generator: forward pass fails: {exc}"
            raise blame(exc) or RecipeError([line]) from exc
        if tuple(fake.shape) != (batch, *spec.shape):
            problems.append(
                f"generator: {recipe.components['generator'].name} makes samples of shape "
                f"{tuple(fake.shape[1:])}, the data has {spec.shape}"
            )
        elif nets.discriminator is not None:
            if nets.augmentation is not None:
                fake = _check_augmentation(nets.augmentation, fake, recipe)
            problems += _check_discriminator(nets.discriminator, fake, labels, recipe)
        if not problems and nets.loss.uses_labels and nets.discriminator is not None:
            problems += _check_label_loss(nets, fake, labels, recipe)
    if problems:
        raise RecipeError([f"{recipe.source}: {p}" for p in problems])


def _check_augmentation(
    augmentation: Augmentation, fake: torch.Tensor, recipe: Recipe
) -> torch.Tensor:
    """A batch through the augmentation (as the trainer applies it, p = 1)."""
    try:
        with torch.device(fake.device):  # a plugin's draws without a device land there too
            return augmentation(fake, torch.ones((), device=fake.device))
    except (ComponentConfigError, RuntimeError) as exc:
        line = f"{recipe.source}: augment: {recipe.components['augment'].name}: {_first_line(exc)}"
        raise blame(exc) or RecipeError([line]) from exc


def _label_problems(nets: Networks, recipe: Recipe, spec: DataSpec) -> list[str]:
    """Conditional networks and label-reading losses that have nothing to work with."""
    names = {section: c.name for section, c in recipe.components.items()}
    g_classes = nets.generator.num_classes
    d_classes = nets.discriminator.num_classes if nets.discriminator is not None else 0
    problems = []
    if nets.loss.uses_labels and spec.num_classes < 1:
        problems.append(
            f"loss: {names['loss']} reads class labels, and the dataset {names['data']!r} has none"
        )
    for section, classes in (("generator", g_classes), ("discriminator", d_classes)):
        if classes and classes != spec.num_classes:
            problems.append(
                f"{section}: {names[section]} is conditional on {classes} classes, the dataset "
                f"{names['data']!r} has {spec.num_classes}"
            )
    if d_classes and not g_classes:
        problems.append(
            f"discriminator: {names['discriminator']} is conditional, but generator "
            f"{names['generator']} is not: its fakes would have no labels to be judged by"
        )
    if g_classes and not d_classes and not nets.loss.uses_labels:
        problems.append(
            f"generator: {names['generator']} is conditional, but neither the discriminator "
            f"nor loss {names['loss']!r} reads labels, so nothing would teach it the classes "
            "(make the discriminator conditional, or use a label loss such as acgan)"
        )
    return problems


def _check_discriminator(
    discriminator: Discriminator, fake: torch.Tensor, labels: torch.Tensor, recipe: Recipe
) -> list[str]:
    name = recipe.components["discriminator"].name
    try:
        logits = discriminator(fake, labels) if discriminator.num_classes else discriminator(fake)
    except ComponentConfigError as exc:
        return [f"discriminator: {name}: {exc} (train.batch_size = {fake.shape[0]})"]
    except RuntimeError as exc:
        if blame(exc) is not None:
            raise  # a plugin's failure: named by the caller's blaming()
        return [f"discriminator: {name}: forward pass fails: {exc}"]
    if logits.dim() != 1 or fake.shape[0] % max(logits.shape[0], 1):
        return [f"discriminator: {name} returns shape {tuple(logits.shape)}, expected (N,)"]
    return []


def _check_label_loss(
    nets: Networks, fake: torch.Tensor, labels: torch.Tensor, recipe: Recipe
) -> list[str]:
    """One discriminator loss of a label-reading loss, on meta tensors: what it refuses."""
    assert nets.discriminator is not None
    bound = LabelledDiscriminator(nets.discriminator, labels, fake, labels)
    try:
        with torch.enable_grad():
            out = nets.loss.discriminator_loss(bound, fake, fake)
    except ComponentConfigError as exc:
        return [f"loss: {recipe.components['loss'].name}: {exc}"]
    problem = loss_problem(out)
    if problem is not None:
        raise Provider.of(recipe.components["loss"].entry).error("discriminator_loss", problem)
    return []
