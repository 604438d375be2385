"""What a command adds to a recipe: one options object per command, passed whole to the library.

The command line builds these from its options and hands them to :func:`ganzoo.run`,
:func:`ganzoo.sample_run` and :func:`ganzoo.evaluate_run`; from Python the same functions take
the fields as keywords. Values are checked here, once, with the messages the command line
prints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ganzoo.errors import UsageError
from ganzoo.progress import ProgressMode, progress_mode

Options = TypeVar("Options", "RunOptions", "SampleOptions", "EvalOptions")


def _path(value: str | Path | None) -> Path | None:
    return Path(value).expanduser() if value is not None and str(value) != "" else None


def _set(options: object, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(options, name, value)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How to run a recipe: where to, on what, from which data, and whether to resume.

    Attributes:
        overrides: ``--set KEY.PATH=VALUE`` items, applied before validation.
        out: the run folder to create (default ``runs/NAME/TIMESTAMP``).
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        resume: a run folder to continue from its newest checkpoint.
        checkpoint: with ``resume``, a file in its ``checkpoints/`` to continue from.
        data_dir: the data folder (default ``$GANZOO_DATA_DIR`` or the cache).
        download: let datasets download missing files.
        progress: ``auto``, ``bar``, ``plain`` or ``none``.
        inception_weights: the FID Inception weights file for the end-of-run evaluation.

    """

    overrides: tuple[str, ...] = ()
    out: Path | None = None
    device: str = "auto"
    resume: Path | None = None
    checkpoint: str | None = None
    data_dir: Path | None = None
    download: bool = False
    progress: ProgressMode = "auto"
    inception_weights: Path | None = None

    def __post_init__(self) -> None:
        progress_mode(self.progress)
        if self.checkpoint is not None and self.resume is None:
            raise UsageError("--checkpoint needs --resume RUN_DIR")
        _set(
            self,
            overrides=tuple(self.overrides),
            out=_path(self.out),
            resume=_path(self.resume),
            data_dir=_path(self.data_dir),
            inception_weights=_path(self.inception_weights),
        )


@dataclass(frozen=True, kw_only=True)
class SampleOptions:
    """What to draw from a trained run: how many, from which seed and checkpoint, into where.

    Attributes:
        n: samples, or interpolation rows with ``interpolate``.
        seed: the seed of the latent draw.
        out: the PNG to write (default ``samples/`` in the run folder).
        checkpoint: a file in the run's ``checkpoints/`` (default the newest).
        interpolate: rows of spherical latent interpolations instead of samples.
        steps: images per interpolation row.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        label: for a conditional run, the class to draw (its index or name); None: a grid of
            one row per class.

    """

    n: int = 64
    seed: int = 0
    out: Path | None = None
    checkpoint: str | None = None
    interpolate: bool = False
    steps: int = 10
    device: str = "auto"
    label: int | str | None = None

    def __post_init__(self) -> None:
        if self.n <= 0 or self.steps < 2:
            raise UsageError("--n must be positive and --steps at least 2")
        _set(self, out=_path(self.out))


@dataclass(frozen=True, kw_only=True)
class EvalOptions:
    """How to score a trained run; unset fields come from the recipe's ``[eval]`` section.

    Attributes:
        metrics: metric names from the metrics registry.
        extractor: ``auto`` or an installed extractor, ``NAME[:ARGUMENT]``.
        num_samples: generated samples to score.
        reference_split: the split of the reference data (default the recipe's).
        seed: the seed of the generated samples.
        checkpoint: a file in the run's ``checkpoints/`` (default the newest).
        batch_size: the batch size for sampling and features.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        data_dir: the data folder (default ``$GANZOO_DATA_DIR`` or the cache).
        inception_weights: the FID Inception weights file.
        extractor_params: the extractor's parameters, each replacing the recipe's
            ``[eval] extractor_params`` entry of that name.
        cache: reuse (and store) reference features in the feature cache.

    """

    metrics: tuple[str, ...] | None = None
    extractor: str | None = None
    num_samples: int | None = None
    reference_split: str | None = None
    seed: int | None = None
    checkpoint: str | None = None
    batch_size: int | None = None
    device: str = "auto"
    data_dir: Path | None = None
    inception_weights: Path | None = None
    extractor_params: dict[str, Any] = field(default_factory=dict)
    cache: bool = True

    def __post_init__(self) -> None:
        for name in ("num_samples", "batch_size"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise UsageError(f"--{name.replace('_', '-')} {value}: must be positive")
        _set(
            self,
            metrics=tuple(self.metrics) if self.metrics else None,
            data_dir=_path(self.data_dir),
            inception_weights=_path(self.inception_weights),
        )


def with_settings(cls: type[Options], options: Options | None, settings: dict[str, Any]) -> Options:
    """``options`` (or the defaults) with the keyword ``settings`` applied.

    Raises:
        TypeError: a setting that ``cls`` has no field for.

    """
    if options is None:
        return cls(**settings)
    return dataclasses.replace(options, **settings) if settings else options
