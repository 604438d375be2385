"""The plugin author's contract: the base classes every ganzoo component derives from.

A component is a class with a docstring (its first line is the summary ``ganzoo list``
shows) and a nested pydantic model ``Params`` (derived from :class:`Params`, so unknown keys
are rejected) that declares its recipe parameters with defaults and descriptions. It is
registered under an entry-point group ``ganzoo.<kind>``; see the plugin author's guide.

Data conventions: a dataset delivers raw samples. ``uint8`` samples are images ``(C, H, W)``
in 0..255, which ganzoo maps to floats in [-1, 1] (:func:`to_model_space`) before they reach
a discriminator, a loss or a metric; floating-point samples (such as 2-D points) are used as
they are. Generators produce model-space samples directly.

The classes live in :mod:`ganzoo.api.components`, :mod:`ganzoo.api.augmentation` and
:mod:`ganzoo.api.evaluation`; import them from here.
"""

from __future__ import annotations

from ganzoo.api.augmentation import Augmentation, AugmentedDiscriminator
from ganzoo.api.components import (
    EXAMPLE_SPECS,
    Batch,
    Component,
    Dataset,
    DataSpec,
    Discriminator,
    Generator,
    LabelledDiscriminator,
    Loss,
    LossOutput,
    Mixture,
    Params,
    from_model_space,
    judge,
    to_model_space,
)
from ganzoo.api.evaluation import (
    Better,
    EvalContext,
    Extractor,
    ExtractorRequest,
    FeatureExtractor,
    Features,
    Metric,
    MetricResult,
    Samples,
)
from ganzoo.errors import ComponentConfigError

__all__ = [
    "EXAMPLE_SPECS",
    "Augmentation",
    "AugmentedDiscriminator",
    "Batch",
    "Better",
    "Component",
    "ComponentConfigError",
    "DataSpec",
    "Dataset",
    "Discriminator",
    "EvalContext",
    "Extractor",
    "ExtractorRequest",
    "FeatureExtractor",
    "Features",
    "Generator",
    "LabelledDiscriminator",
    "Loss",
    "LossOutput",
    "Metric",
    "MetricResult",
    "Mixture",
    "Params",
    "Samples",
    "from_model_space",
    "judge",
    "to_model_space",
]
