"""``ganzoo.run(recipe)``: what ``ganzoo run`` calls. It trains a recipe into a run folder.

It resolves the recipe (or the run to resume), builds the dataset, the networks and the
:class:`~ganzoo.trainer.Trainer`, lets the :class:`~ganzoo.loop.Loop` train and write the run
folder, and, when the recipe has an ``[eval]`` section, scores the trained generator held in
memory into ``eval.json``. The run folder stays locked (on rank 0, which alone writes it)
from before the first write to after the last, so that no other run writes into it meanwhile.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch

from ganzoo import distributed
from ganzoo.api import Dataset
from ganzoo.build import Networks, build_dataset, build_networks, check_networks
from ganzoo.data import make_feeder
from ganzoo.device import autocast_device, environment, resolve_device
from ganzoo.distributed import Distributed
from ganzoo.errors import FolderInUseError, UsageError
from ganzoo.evaluate import Report, evaluate_generator
from ganzoo.loop import Loop, RunResult
from ganzoo.options import EvalOptions, RunOptions, with_settings
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.recipe import Recipe, RecipeWarning
from ganzoo.resume import prepare_recipe, resume_recipe
from ganzoo.runs import RunFolder
from ganzoo.subset import training_set
from ganzoo.threads import ThreadBudget, step_macs
from ganzoo.trainer import Trainer, uses_labels


def run(
    recipe: str | Path | Recipe | None = None,
    options: RunOptions | None = None,
    **settings: Any,
) -> RunResult:
    """Train a recipe (a path, an installed recipe's name or a :class:`Recipe`) into a run folder.

    ``options`` (or its fields as keywords: ``overrides``, ``out``, ``device``, ``resume``...)
    say how; see :class:`~ganzoo.options.RunOptions`. With ``resume``, the run in that folder
    continues from its newest checkpoint (or ``checkpoint``); ``recipe`` may then be omitted,
    and may change only :data:`~ganzoo.resume.RESUMABLE_CHANGES` (e.g. ``train.steps``). A
    recipe with an ``[eval]`` section is evaluated at the end.
    """
    options = with_settings(RunOptions, options, settings)
    dist = distributed.from_environment()
    device = resolve_device(options.device, dist)
    own_group = distributed.start(dist, device)
    with ExitStack() as held:  # the run folder's lock
        try:
            folder, trainer, dataset, threads = _start(recipe, options, device, dist, held)
            mode = options.progress if dist.is_main else "none"
            loop = Loop(trainer, folder, dataset, mode, threads)
            with folder.keeping():
                try:
                    result = loop.run()
                finally:
                    trainer.unwrap()  # before the process group ends, whichever way it ends
        except BaseException:
            if own_group:
                torch.distributed.destroy_process_group()
            raise
        if own_group:
            distributed.finish()
        threads.close()  # scores computed as `ganzoo eval` computes them, on its threads
        if result.interrupted_by is None and trainer.recipe.shell.eval.metrics and dist.is_main:
            with folder.keeping():
                result.evaluation = _evaluate(trainer, folder, dataset, options, loop.progress)
    return result


def _lock(folder: RunFolder, held: ExitStack, dist: Distributed) -> None:
    """Lock a resumed run's folder until ``held`` closes (on rank 0 only: ranks never clash)."""

    def take() -> None:
        held.enter_context(folder.lock())

    distributed.from_main(dist, take)


def _lock_new(
    folder: RunFolder, name: str, out: Path | None, held: ExitStack, dist: Distributed
) -> RunFolder:
    """Lock a new run's folder until ``held`` closes (on rank 0); return the folder.

    A default-named folder that another run took meanwhile (two runs started in the same
    second) gives way to the next free name; a folder given as ``out`` does not.
    """

    def take() -> RunFolder:
        candidate = folder
        while True:
            try:
                held.enter_context(candidate.lock(new=True))
                return candidate
            except (FolderInUseError, UsageError):
                if out is not None:
                    raise
                candidate = RunFolder.new(name)

    return distributed.from_main(dist, take)


def _start(
    recipe: str | Path | Recipe | None,
    options: RunOptions,
    device: torch.device,
    dist: Distributed,
    held: ExitStack,
) -> tuple[RunFolder, Trainer, Dataset, ThreadBudget]:
    """The run folder, trainer (restored on resume), dataset and thread budget of a run.

    The folder's lock and the threads' claim are entered into ``held``.
    """
    if options.resume is not None:
        folder = RunFolder.open(options.resume)
        _lock(folder, held, dist)
        resolved = resume_recipe(folder, recipe, options.overrides)
        recipe_text = None
    else:
        if recipe is None:
            raise UsageError("give a recipe to run, or --resume RUN_DIR")
        resolved, recipe_text = prepare_recipe(recipe, options.overrides)
        check_networks(resolved)
        folder = distributed.from_main(dist, lambda: RunFolder.new(resolved.name, options.out))
    train = resolved.train
    if train.batch_size % dist.world:
        raise UsageError(
            f"train.batch_size = {train.batch_size} does not split over {dist.world} processes"
        )
    if train.amp and autocast_device(device) is None:
        warnings.warn(
            f"train.amp is ignored on this {device.type} (bf16 autocast runs on CUDA and on CPUs "
            "with native bf16, AMX or AVX512-BF16; emulated bf16 would be slower than fp32)",
            RecipeWarning,
            stacklevel=3,
        )
    dataset = build_dataset(resolved, resolve_data_dir(options.data_dir), options.download)
    training = training_set(dataset, resolved)
    if options.resume is None:  # locked only now, so that a failure before leaves no folder
        folder = _lock_new(folder, resolved.name, options.out, held, dist)
    state = folder.resume_state(options.checkpoint, device) if options.resume else None
    torch.manual_seed(resolved.seed)
    nets = build_networks(resolved, dataset.spec, device)
    threads = _use_threads(resolved, nets, dist, held)
    labelled = uses_labels(nets)
    feeder = make_feeder(
        training, train.batch_size, resolved.seed, device, train.data_on_device,
        train.num_workers, dist.shard, labels=labelled,
    )  # fmt: skip
    counts = None
    if labelled and train.fake_labels == "data":
        labels = training.labels()
        assert labels is not None  # make_feeder refused a labelled run without labels
        counts = torch.bincount(labels, minlength=dataset.spec.num_classes)
    trainer = Trainer(resolved, nets, dataset.spec, feeder, device, dist, counts)
    env = environment(device) | threads.choice.record()
    if state is not None:
        trainer.load_state_dict(state)
        distributed.from_main(dist, lambda: folder.record_resume(resolved, env, trainer.step))
    else:
        distributed.from_main(dist, lambda: folder.create(resolved, recipe_text, env))
    return folder, trainer, dataset, threads


def _use_threads(
    recipe: Recipe, nets: Networks, dist: Distributed, held: ExitStack
) -> ThreadBudget:
    """Compute with ``train.threads`` threads, claimed for other runs, until ``held`` closes."""
    setting = recipe.train.threads
    macs = None
    if setting == "auto":
        D = nets.discriminator if nets.loss.uses_discriminator else None
        macs = step_macs(nets.generator, D, recipe.train.batch_size // dist.world)
    budget = ThreadBudget(setting, macs, dist.world)
    held.callback(budget.close)
    return budget


def _evaluate(
    trainer: Trainer,
    folder: RunFolder,
    dataset: Dataset,
    options: RunOptions,
    say: Callable[[str], None],
) -> Report:
    """Score the trained generator in memory as ``ganzoo eval`` would score the run folder."""
    eval_options = EvalOptions(
        device=str(trainer.device),
        data_dir=options.data_dir,
        inception_weights=options.inception_weights,
    )
    report = evaluate_generator(
        trainer.evaluation_generator(), trainer.recipe, dataset, eval_options,
        run=folder.root, step=trainer.step, ema=trainer.ema is not None, report=say,
    )  # fmt: skip
    folder.write_eval(report.to_json())
    summary = ", ".join(f"{k} {v:.4g}" for k, v in report.scores.items())
    say(f"evaluation: {summary} (eval.json)")
    return report
