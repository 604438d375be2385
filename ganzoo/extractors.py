"""Feature extractors by name: entries of the ``ganzoo.extractors`` group, and ``auto``.

``--extractor NAME[:ARGUMENT]`` (or ``[eval] extractor``) names an installed entry and what it
takes after the colon (``classifier:mnist``). ``auto`` is not an entry: it takes the
``inception-v3`` entry when its weights can be found (or downloaded), and otherwise the
``classifier`` entry of the reference dataset.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from ganzoo.api import ExtractorRequest, FeatureExtractor
from ganzoo.errors import DataError, UnknownComponentError, UsageError
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.registry import registry

AUTO = "auto"
INCEPTION = "inception-v3"
CLASSIFIER = "classifier"


def make_extractor(
    name: str,
    device: torch.device,
    *,
    dataset: str | None = None,
    data_dir: Path | None = None,
    weights: Path | None = None,
    report: Callable[[str], None] | None = None,
) -> FeatureExtractor:
    """Build the feature extractor ``name`` (``auto`` or ``NAME[:ARGUMENT]``) on ``device``.

    ``dataset`` is the reference dataset's name (what ``auto`` and a plain ``classifier`` fall
    back to); ``weights`` a weights file the user named.

    Raises:
        UsageError: no such extractor, or an argument it does not take.
        PluginError: the extractor's plugin fails to load.
        DataError: what the extractor needs (weights, data) cannot be had.

    """
    if name == AUTO:
        try:
            return make_extractor(INCEPTION, device, weights=weights, report=report)
        except DataError as exc:
            if dataset is None:
                raise
            if report is not None:
                report(f"Inception weights unavailable; using the {dataset} classifier ({exc})")
            return make_extractor(
                CLASSIFIER, device, dataset=dataset, data_dir=data_dir, report=report
            )
    entry_name, colon, argument = name.partition(":")
    try:
        cls = registry("extractors").load(entry_name)
    except UnknownComponentError as exc:
        raise UsageError(f"--extractor {name}: {exc}, or {AUTO}") from None
    if colon and not cls.argument:
        raise UsageError(f"--extractor {name}: extractor {entry_name!r} takes no argument")
    request = ExtractorRequest(
        argument, device, dataset, resolve_data_dir(data_dir), weights, report
    )
    return cls.build(cls.Params(), request)
