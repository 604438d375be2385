"""Conformance checks of recipes that a plugin ships in the ``ganzoo.recipes`` group."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ganzoo.build import check_networks
from ganzoo.errors import GanzooError
from ganzoo.recipe import find_recipe, load_recipe, recipe_from_dict
from ganzoo.testing.base import ConformanceError


def check_recipe(recipe: str | Path) -> None:
    """Check a recipe file, or an installed recipe by name, without training it.

    It starts with a ``#`` comment line (the summary ``ganzoo list recipes`` shows), it
    validates with every component it names installed, its networks fit its data (a batch on
    the meta device), and its resolved form (``resolved.toml``) reads back to the same recipe.

    Raises:
        ConformanceError: the first problem found.

    """
    try:
        path = find_recipe(recipe)
        text = path.read_text(encoding="utf-8")
    except (GanzooError, OSError) as exc:
        raise ConformanceError(f"recipe {recipe}: cannot be found or read: {exc}") from exc
    first = text.splitlines()[:1]
    if not first or not first[0].startswith("#") or not first[0].lstrip("#").strip():
        raise ConformanceError(
            f"{path}: the first line is not a '# summary' comment (ganzoo list shows it)"
        )
    try:
        loaded = load_recipe(path)
        check_networks(loaded)
        again = recipe_from_dict(tomllib.loads(loaded.to_toml()), f"{path} (resolved)")
    except GanzooError as exc:
        raise ConformanceError(f"{path}: does not validate: {exc}") from exc
    if again.to_dict() != loaded.to_dict():
        raise ConformanceError(f"{path}: its resolved form does not read back to the same recipe")
