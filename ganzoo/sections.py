"""The sections of a recipe as pydantic models: the shell, ``[train]``, ``[eval]``.

A component section (``[generator]``, ``[data]``, ...) holds ``name`` and the component's own
parameters, which are validated against the component's ``Params`` once it is resolved
(:mod:`ganzoo.recipe`). Two sections also hold keys that ganzoo itself reads, whatever the
component: ``data.subset`` and the ``[augment]`` section's probability and ADA settings
(:data:`RESERVED_KEYS`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = 1

UnitFloat = Annotated[float, Field(ge=0.0, lt=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OptimizerConfig(_Strict):
    """An optimiser for one network (defaults: Adam, lr 2e-4, betas (0.5, 0.999))."""

    name: Literal["adam", "adamw", "rmsprop"] = Field("adam", description="The optimiser.")
    lr: float = Field(2e-4, gt=0, description="Learning rate.")
    betas: tuple[UnitFloat, UnitFloat] = Field(
        (0.5, 0.999), description="Adam/AdamW moment decay rates."
    )
    weight_decay: float = Field(0.0, ge=0, description="Weight decay (decoupled for AdamW).")
    schedule: Literal["constant", "linear", "cosine"] = Field(
        "constant",
        description="Learning-rate schedule over train.steps: constant, or a linear or cosine "
        "decay to zero.",
    )


class TrainConfig(_Strict):
    """The ``[train]`` section: the training loop's settings."""

    steps: int = Field(10_000, gt=0, description="Generator updates to train for.")
    batch_size: int = Field(64, gt=0, description="Samples per batch, real and generated.")
    d_steps: int | None = Field(
        None, gt=0, description="Discriminator updates per generator update; unset: the loss's."
    )
    generator_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    discriminator_optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    ema: UnitFloat = Field(
        0.0, description="Decay of an exponential moving average of G's weights; 0 is off."
    )
    log_every: int = Field(100, gt=0, description="Steps between metric lines.")
    sample_every: int = Field(1000, gt=0, description="Steps between sample grids.")
    checkpoint_every: int = Field(1000, gt=0, description="Steps between checkpoints.")
    keep_checkpoints: int = Field(3, ge=1, description="Numbered checkpoints kept besides last.")
    num_samples: int = Field(64, gt=0, description="Size of the fixed-noise sample grid.")
    data_on_device: Literal["auto", "always", "never"] = Field(
        "auto",
        description="Hold the whole dataset on the training device (auto: when it is small "
        "enough and the dataset offers it).",
    )
    num_workers: int = Field(2, ge=0, description="DataLoader workers for streamed datasets.")
    threads: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto", description="CPU threads to compute with; auto: see the user guide's Threads."
    )
    tensorboard: bool = Field(
        True, description="Write TensorBoard event files when the tensorboard package is installed."
    )
    compile: bool = Field(
        False, description="torch.compile the networks (the first steps are slow while compiling)."
    )
    amp: bool = Field(
        False,
        description="bf16 autocast for the forward passes on CUDA and on CPUs with native bf16 "
        "(AMX, AVX512-BF16); ignored with a warning elsewhere.",
    )
    channels_last: bool = Field(
        False, description="Keep convolutional networks and image batches in channels-last layout."
    )
    fake_labels: Literal["uniform", "data"] = Field(
        "uniform",
        description="Labels of the fakes in a labelled (conditional) run: uniform over the "
        "classes, or drawn as often as each class is in the data.",
    )


class EvalConfig(_Strict):
    """The ``[eval]`` section: metrics computed at the end of training."""

    metrics: list[str] = Field(
        [], description="Metric names from the metrics registry; empty: no evaluation."
    )
    num_samples: int = Field(10_000, gt=0, description="Generated samples to score.")
    batch_size: int = Field(250, gt=0, description="Batch size for sampling and features.")
    extractor: str = Field(
        "auto",
        description="Feature extractor: an installed one, NAME[:ARGUMENT] (inception-v3, "
        "classifier[:DATASET]: ganzoo list extractors), or auto (Inception when its weights are "
        "available, else the dataset's classifier).",
    )
    extractor_params: dict[str, Any] = Field(
        {},
        description="Parameters of the feature extractor (ganzoo show extractors NAME): "
        'resize = "clean" or precision = "bfloat16" for inception-v3. With extractor '
        "auto they are inception-v3's, and dropped when it falls back to the classifier.",
    )
    seed: int = Field(0, description="Seed of the generated samples and of KID's subsets.")
    params: dict[str, dict[str, Any]] = Field(
        {},
        description="Parameters of the metrics, by metric name: [eval.params.kid] subsets = 50.",
    )


class ComponentSection(BaseModel):
    """A component section: ``name`` picks the component, the other keys are its Params."""

    model_config = ConfigDict(extra="allow")
    name: str


class DataSection(ComponentSection):
    """The ``[data]`` section: the dataset's name and Params, and the subset to train on."""

    subset: int | float | None = Field(
        None,
        description="Train on a seeded subset of the data: a count of samples (an integer) or "
        "a fraction (a float in (0, 1]); each class keeps its share in a labelled dataset. "
        "Unset: all of it.",
    )

    @field_validator("subset", mode="before")
    @classmethod
    def _count_or_fraction(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("give a count of samples (an integer) or a fraction in (0, 1]")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"a count of samples must be 1 or more, not {value}")
        if isinstance(value, float) and not 0 < value <= 1:
            raise ValueError(f"a fraction must lie in (0, 1], not {value}")
        return value


class AugmentSection(ComponentSection):
    """The ``[augment]`` section: the augmentation's name and Params, and how often it applies."""

    p: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Probability that each operation of the augmentation is applied to a "
        "sample; with ada_target, its value at the start. Unset: 1, or 0 with ada_target.",
    )
    ada_target: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Adapt p as ADA does (Karras et al. 2020): raise it while the overfitting "
        "heuristic r_t = E[sign(D(real))] is above this target (0.6 in the paper), lower it "
        "below. Unset: p stays fixed.",
    )
    ada_interval: int = Field(
        4, gt=0, description="Discriminator updates between two adjustments of p."
    )
    ada_images: int = Field(
        500_000,
        gt=0,
        description="Real images shown for p to move by 1 (ADA's ada_kimg = 500, in images).",
    )

    @model_validator(mode="after")
    def _starting_p(self) -> AugmentSection:
        if self.p is None:
            self.p = 0.0 if self.ada_target is not None else 1.0
        return self


# the keys of a component section that ganzoo reads: the fields its model declares
RESERVED_KEYS: dict[str, tuple[str, ...]] = {
    section: tuple(key for key in model.model_fields if key != "name")
    for section, model in (("data", DataSection), ("augment", AugmentSection))
}


class RecipeShell(_Strict):
    """The top level of a recipe."""

    schema_version: int = Field(
        description=f"Recipe format version; this ganzoo reads {SCHEMA_VERSION}."
    )
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Run name.")
    seed: int = Field(0, description="Seed of every random choice of the run.")
    description: str = Field("", description="Free text.")
    generator: ComponentSection
    discriminator: ComponentSection | None = None
    loss: ComponentSection
    data: DataSection
    augment: AugmentSection | None = None
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"this ganzoo reads schema_version {SCHEMA_VERSION}, not {value}")
        return value
