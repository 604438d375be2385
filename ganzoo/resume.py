"""The rules of resuming: which recipe fields a resumed run may change, and which not.

A resumed run continues bit for bit only when nothing that shapes the weights changes; the
fields in :data:`RESUMABLE_CHANGES` change only how the run is driven, logged or evaluated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganzoo.errors import UsageError
from ganzoo.recipe import Recipe, load_recipe, recipe_from_dict
from ganzoo.runs import RunFolder

# Recipe fields a resumed run may change: they do not alter what the weights become (the
# execution switches at most by rounding).
RESUMABLE_CHANGES = (
    "description",
    "train.steps",
    "train.log_every",
    "train.sample_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.num_workers",
    "train.threads",
    "train.tensorboard",
    "train.data_on_device",
    "train.compile",
    "train.amp",
    "train.channels_last",
    "eval",
)


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat |= _flatten(value, f"{prefix}.{key}" if prefix else key)
        return flat
    return {prefix: data}


def recipe_changes(old: Recipe, new: Recipe) -> list[str]:
    """The dotted fields whose values differ and that a resumed run may not change.

    ``train.steps`` may change only while both optimisers keep a constant learning rate:
    a decaying schedule is laid out over the step count.
    """
    a, b = _flatten(old.to_dict()), _flatten(new.to_dict())
    scheduled = any(
        opt.schedule != "constant"
        for opt in (new.train.generator_optimizer, new.train.discriminator_optimizer)
    )
    changed = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        free = any(key == p or key.startswith(p + ".") for p in RESUMABLE_CHANGES)
        if free and not (scheduled and key == "train.steps"):
            continue
        note = " (the learning-rate schedule is laid out over it)" if free else ""
        changed.append(f"{key} ({a.get(key, 'unset')!r} -> {b.get(key, 'unset')!r}){note}")
    return changed


def prepare_recipe(
    recipe: str | Path | Recipe, overrides: tuple[str, ...]
) -> tuple[Recipe, str | None]:
    """The recipe to run (a file, an installed recipe's name or a Recipe) with ``overrides``.

    Returns it with the text of its file, or None when it was given as a :class:`Recipe`.
    """
    if isinstance(recipe, Recipe):
        if overrides:
            return recipe_from_dict(recipe.to_dict(), recipe.source, overrides), None
        return recipe, None
    loaded = load_recipe(recipe, overrides)
    return loaded, Path(loaded.source).read_text(encoding="utf-8")


def resume_recipe(
    folder: RunFolder, recipe: str | Path | Recipe | None, overrides: tuple[str, ...]
) -> Recipe:
    """The recipe a resumed run continues with: the run's own, or ``recipe``, overridden.

    Raises:
        UsageError: it changes a field that a resumed run may not change.

    """
    stored = folder.recipe()
    new = folder.recipe(overrides) if recipe is None else prepare_recipe(recipe, overrides)[0]
    changed = recipe_changes(stored, new)
    if changed:
        raise UsageError(
            f"--resume {folder.root}: the recipe differs from the one the run was started with, "
            "in "
            + "; ".join(changed)
            + ". A resumed run may change only "
            + ", ".join(RESUMABLE_CHANGES)
            + "; start a new run for other changes."
        )
    return new
