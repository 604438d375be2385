"""Feature extractors by name: entries of the ``ganzoo.extractors`` group, and ``auto``.

``--extractor NAME[:ARGUMENT]`` (or ``[eval] extractor``) names an installed entry and what it
takes after the colon (``classifier:mnist``). ``auto`` is not an entry: it takes the
``inception-v3`` entry when its weights can be found (or downloaded), and otherwise the
``classifier`` entry of the reference dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from ganzoo.api import Extractor, ExtractorRequest, FeatureExtractor
from ganzoo.errors import DataError, UnknownComponentError, UsageError
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.recipe_errors import format_loc
from ganzoo.registry import registry

AUTO = "auto"
INCEPTION = "inception-v3"
CLASSIFIER = "classifier"


def check_extractor(name: str) -> type[Extractor] | None:
    """The extractor entry that ``name`` (``NAME[:ARGUMENT]``) names, loaded; None for ``auto``.

    Cheap (no network is built): commands call it first, so that a typo or a broken plugin is
    reported before any other work.

    Raises:
        UsageError: no such extractor, or an argument it does not take.
        PluginError: the extractor's plugin fails to load.

    """
    if name == AUTO:
        return None
    entry_name, colon, _ = name.partition(":")
    try:
        cls = registry("extractors").load(entry_name)
    except UnknownComponentError as exc:
        raise UsageError(f"--extractor {name}: {exc}, or {AUTO}") from None
    if colon and not cls.argument:
        raise UsageError(f"--extractor {name}: extractor {entry_name!r} takes no argument")
    return cls


def make_extractor(
    name: str,
    device: torch.device,
    *,
    dataset: str | None = None,
    data_dir: Path | None = None,
    weights: Path | None = None,
    report: Callable[[str], None] | None = None,
    params: Mapping[str, Any] | None = None,
) -> FeatureExtractor:
    """Build the feature extractor ``name`` (``auto`` or ``NAME[:ARGUMENT]``) on ``device``.

    ``dataset`` is the reference dataset's name (what ``auto`` and a plain ``classifier`` fall
    back to); ``weights`` a weights file the user named; ``params`` the extractor's Params
    (``[eval] extractor_params``; with ``auto``, inception-v3's, dropped when it falls back to
    the classifier).

    Raises:
        UsageError: no such extractor, an argument it does not take, or a bad parameter.
        PluginError: the extractor's plugin fails to load.
        DataError: what the extractor needs (weights, data) cannot be had.

    """
    if name == AUTO:
        try:
            return make_extractor(INCEPTION, device, weights=weights, report=report, params=params)
        except DataError as exc:
            if dataset is None:
                raise
            if report is not None:
                dropped = f"; extractor parameters {dict(params)} dropped" if params else ""
                report(
                    f"Inception weights unavailable; using the {dataset} classifier ({exc})"
                    + dropped
                )
            return make_extractor(
                CLASSIFIER, device, dataset=dataset, data_dir=data_dir, report=report
            )
    cls = check_extractor(name)
    assert cls is not None
    argument = name.partition(":")[2]
    request = ExtractorRequest(
        argument, device, dataset, resolve_data_dir(data_dir), weights, report
    )
    try:
        validated = cls.Params.model_validate(dict(params or {}))
    except ValidationError as exc:
        problems = "; ".join(f"{format_loc(tuple(e['loc']))}: {e['msg']}" for e in exc.errors())
        raise UsageError(f"--extractor {name}: {problems}") from None
    return cls.build(validated, request)
