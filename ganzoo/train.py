"""The training loop and the run folder: ``ganzoo.run(recipe)`` is what ``ganzoo run`` calls.

A step is ``d_steps`` discriminator updates followed by one generator update; the generator's
last batch of fakes is reused for its own update, as the classic implementations do. Nothing
in a step waits for the device: losses are summed on the device and read every
``log_every`` steps, and a NaN/inf is traced to its step without a host sync.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ganzoo import __version__, distributed
from ganzoo.api import Dataset, DataSpec, Generator, to_model_space
from ganzoo.build import Networks, build_dataset, build_networks, check_networks
from ganzoo.checkpoint import (
    FORMAT,
    LAST,
    latest_checkpoint,
    load_checkpoint,
    remove_partial_writes,
    rng_state,
    save_checkpoint,
)
from ganzoo.checkpoint import set_rng_state as restore_rng_state
from ganzoo.data import Feeder, make_feeder, shard_slice
from ganzoo.distributed import Distributed
from ganzoo.errors import CheckpointError, DivergenceError, GanzooError, UsageError
from ganzoo.paths import data_dir as resolve_data_dir
from ganzoo.plots import save_loss_curves, save_samples
from ganzoo.progress import Progress, ProgressMode
from ganzoo.recipe import OptimizerConfig, Recipe, RecipeWarning, load_recipe, recipe_from_dict

if TYPE_CHECKING:
    from ganzoo.evaluate import Report

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
    "train.tensorboard",
    "train.data_on_device",
    "train.compile",
    "train.amp",
    "train.channels_last",
    "eval",
)


@dataclass
class RunResult:
    """What a run did: where its folder is, how far it got and how fast."""

    run_dir: Path
    step: int
    total_steps: int
    seconds: float
    images_per_s: float
    checkpoint: Path | None
    interrupted_by: str | None = None
    evaluation: Report | None = None


def resolve_device(name: str, dist: Distributed | None = None) -> torch.device:
    """``auto`` is CUDA when available, else the CPU; ``cuda`` without a GPU is an error.

    Under torchrun, plain ``cuda`` means this process's GPU (``cuda:LOCAL_RANK``).
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise UsageError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: CUDA is not available on this machine")
    if device.type == "cuda" and device.index is None and dist is not None and dist.enabled:
        device = torch.device("cuda", dist.local_rank)
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AMX or AVX512-BF16)."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def autocast_device(device: torch.device) -> str | None:
    """The device type that ``train.amp`` runs bf16 autocast on, or None where it cannot.

    CUDA always; the CPU only where it has native bf16 (on other CPUs bf16 is emulated and
    slower than fp32).
    """
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return device.type
    return None


def environment(device: torch.device) -> dict[str, Any]:
    """The software and hardware a run used: python, torch, CUDA, ganzoo and plugin versions."""
    from ganzoo.registry import plugin_distributions

    env: dict[str, Any] = {
        "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "ganzoo": __version__,
        "plugins": [f"{d.name}=={d.version}" for d in plugin_distributions(load=False)],
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        ),
        "threads": torch.get_num_threads(),
        "bf16_autocast": autocast_device(device) is not None,
        "world_size": distributed.from_environment().world,
    }
    return env


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


def _new_run_dir(name: str, out: Path | None) -> Path:
    if out is not None:
        if out.exists() and any(out.iterdir()):
            raise UsageError(
                f"{out} is not empty; continue the run in it with --resume {out}, "
                "or choose another --out"
            )
        return out
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / name / stamp
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{stamp}-{n}")
    return candidate


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The learning-rate multiplier of ``schedule`` at ``step`` (0-based) of ``total`` steps."""
    progress = min(step / total, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def _make_optimizer(params: list[nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    """The configured optimiser; Adam and AdamW use their fused kernels (CPU and CUDA)."""
    fused = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
    if config.name in ("adam", "adamw"):
        optimizer = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
        return optimizer(
            params,
            lr=config.lr,
            betas=config.betas,
            weight_decay=config.weight_decay,
            fused=fused or None,
        )
    return torch.optim.RMSprop(params, lr=config.lr, weight_decay=config.weight_decay, foreach=True)


class _StopRequest:
    """Turns SIGINT/SIGTERM into a request to checkpoint and stop after the current step."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.signal_name = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[_StopRequest]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


class _RunFolder:
    """The files of a run folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = root / "checkpoints"
        self.samples = root / "samples"
        self.metrics = root / "metrics.jsonl"
        self.resolved = root / "resolved.toml"

    def create(self, recipe: Recipe, recipe_text: str | None, env: dict[str, Any]) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.checkpoints.mkdir(exist_ok=True)
            self.samples.mkdir(exist_ok=True)
            (self.root / "recipe.toml").write_text(recipe_text or recipe.to_toml())
            self.resolved.write_text(recipe.to_toml())
            (self.root / "env.json").write_text(json.dumps(env, indent=2) + "\n")
            self.metrics.touch()
        except OSError as exc:
            raise GanzooError(f"cannot write the run folder {self.root}: {exc}") from None

    def record_resume(self, recipe: Recipe, env: dict[str, Any], step: int) -> None:
        self.resolved.write_text(recipe.to_toml())
        env_file = self.root / "env.json"
        old = json.loads(env_file.read_text()) if env_file.is_file() else {}
        env["resumed_from_step"] = step
        env["history"] = [*old.pop("history", []), old] if old else []
        env_file.write_text(json.dumps(env, indent=2) + "\n")
        if self.metrics.is_file():
            kept = [
                line
                for line in self.metrics.read_text().splitlines()
                if line.strip() and _line_step(line) <= step
            ]
            self.metrics.write_text("".join(line + "\n" for line in kept))

    def records(self) -> list[dict[str, Any]]:
        if not self.metrics.is_file():
            return []
        return [json.loads(line) for line in self.metrics.read_text().splitlines() if line.strip()]


def _line_step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return sys.maxsize  # an unreadable (half-written) line is dropped


class Trainer:
    """Alternating discriminator and generator updates over a feeder of real batches."""

    def __init__(
        self,
        recipe: Recipe,
        nets: Networks,
        spec: DataSpec,
        feeder: Feeder,
        device: torch.device,
        dist: Distributed | None = None,
    ) -> None:
        self.recipe, self.spec, self.feeder, self.device = recipe, spec, feeder, device
        self.dist = dist or Distributed()
        self.G: Generator = nets.generator
        self.D = nets.discriminator if nets.loss.uses_discriminator else None
        self.loss = nets.loss
        train = recipe.train
        self.batch_size = train.batch_size
        self.amp = autocast_device(device) if train.amp else None
        if train.channels_last:
            for net in (self.G, self.D):
                if net is not None:
                    net.to(memory_format=torch.channels_last)
        compile_d = train.compile and not self.loss.differentiates_gradients
        if train.compile and not compile_d and self.D is not None:
            loss_name = recipe.components["loss"].name
            warnings.warn(
                f"train.compile: the discriminator is not compiled, since loss '{loss_name}' "
                "differentiates its gradients (double backward), which torch.compile does not "
                "support; the generator is compiled",
                RecipeWarning,
                stacklevel=2,
            )
        self.G_train, self.D_train, self.D_for_g = self._wrap(train.compile, compile_d)
        self.d_steps = train.d_steps or type(self.loss).default_d_steps
        self.g_opt = _make_optimizer(list(self.G.parameters()), train.generator_optimizer)
        self.d_opt = (
            _make_optimizer(list(self.D.parameters()), train.discriminator_optimizer)
            if self.D is not None
            else None
        )
        self.ema: Generator | None = None
        if train.ema > 0:
            self.ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self.step = 0
        rng = torch.Generator().manual_seed(recipe.seed + 1)
        self.fixed_noise = self.G.sample_latent(train.num_samples, generator=rng).to(device)
        self._sums: dict[str, tuple[Tensor, int]] = {}
        self._run_keys: tuple[str, ...] = ()
        self._run_sum = torch.zeros(0, device=device)
        self._run_steps = 0
        self._first_bad = torch.full((), -1, dtype=torch.long, device=device)

    def _wrap(
        self, compile_g: bool, compile_d: bool
    ) -> tuple[nn.Module, nn.Module | None, nn.Module | None]:
        """The networks as the step calls them: under DDP across processes, compiled."""

        def wrap(net: nn.Module | None, parallel: bool, compile_net: bool) -> nn.Module | None:
            if net is None:
                return None
            if parallel and self.dist.enabled:
                ids = [self.device.index] if self.device.type == "cuda" else None
                net = DistributedDataParallel(net, device_ids=ids)
            return torch.compile(net) if compile_net else net

        generator = wrap(self.G, True, compile_g)
        assert generator is not None
        discriminator = wrap(self.D, True, compile_d)
        # the generator's step reads D without training it: no DDP hooks there
        d_for_g = wrap(self.D, False, compile_d) if self.dist.enabled else discriminator
        return generator, discriminator, d_for_g

    def _latent(self) -> Tensor:
        """This process's slice of the global batch's latent vectors (same draw everywhere)."""
        z = self.G.sample_latent(self.batch_size, device=self.device)
        return z[shard_slice(0, self.batch_size, self.dist.shard)] if self.dist.enabled else z

    def _real(self) -> Tensor:
        real = self.feeder.next()
        if self.recipe.train.channels_last and real.dim() == 4:
            real = real.contiguous(memory_format=torch.channels_last)
        return real

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.amp is None:
            return nullcontext()
        return torch.autocast(self.amp, dtype=torch.bfloat16)

    # -- one step -------------------------------------------------------------------------
    def _set_learning_rates(self) -> None:
        train = self.recipe.train
        pairs = [
            (self.g_opt, train.generator_optimizer),
            (self.d_opt, train.discriminator_optimizer),
        ]
        for optimizer, config in pairs:
            if optimizer is not None and config.schedule != "constant":
                lr = config.lr * lr_factor(config.schedule, self.step, train.steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr

    def train_step(self) -> None:
        """One generator update, preceded by ``d_steps`` discriminator updates."""
        self._set_learning_rates()
        logs: dict[str, Tensor] = {}
        fake: Tensor
        real: Tensor
        if self.D is not None:
            assert self.d_opt is not None and self.D_train is not None
            self.D.requires_grad_(True)
            for i in range(self.d_steps):
                real = self._real()
                z = self._latent()
                with self._autocast():
                    if i == self.d_steps - 1:
                        fake = self.G_train(z)
                        fake_for_d = fake.detach()
                    else:
                        with torch.no_grad():
                            fake_for_d = self.G_train(z)
                    out = self.loss.discriminator_loss(self.D_train, real, fake_for_d)
                self.d_opt.zero_grad(set_to_none=True)
                out.value.backward()
                self.d_opt.step()
            logs["d_loss"] = out.value.detach()
            logs |= {k: v.detach() for k, v in out.logs.items()}
            self.D.requires_grad_(False)
        else:
            real = self._real()
            with self._autocast():
                fake = self.G_train(self._latent())
        with self._autocast():
            out_g = self.loss.generator_loss(self.D_for_g, real, fake)
        self.g_opt.zero_grad(set_to_none=True)
        out_g.value.backward()
        self.g_opt.step()
        logs["g_loss"] = out_g.value.detach()
        logs |= {k: v.detach() for k, v in out_g.logs.items() if k not in logs}
        if self.ema is not None:
            self._update_ema()
        self.step += 1
        self._accumulate(logs)

    def _update_ema(self) -> None:
        assert self.ema is not None
        decay = self.recipe.train.ema
        with torch.no_grad():
            ema_params = list(self.ema.parameters())
            torch._foreach_lerp_(ema_params, list(self.G.parameters()), 1.0 - decay)
            for ema_buffer, buffer in zip(self.ema.buffers(), self.G.buffers(), strict=True):
                ema_buffer.copy_(buffer)

    def _accumulate(self, logs: dict[str, Tensor]) -> None:
        """Add this step's logged values to the window's sums (device ops only, no sync)."""
        keys = tuple(logs)
        values = torch.stack([v.float() for v in logs.values()])
        if keys != self._run_keys:  # a loss may log other terms on some steps
            self._fold_run()
            self._run_keys, self._run_sum, self._run_steps = keys, torch.zeros_like(values), 0
        self._run_sum += values
        self._run_steps += 1
        bad = ~torch.isfinite(values.sum())
        self._first_bad = torch.where(bad & (self._first_bad < 0), self.step, self._first_bad)

    def _fold_run(self) -> None:
        """Move the sums of the current run of steps with the same log keys into the window."""
        for i, key in enumerate(self._run_keys):
            total, steps = self._sums.get(key, (0.0, 0))
            self._sums[key] = (self._run_sum[i] + total, steps + self._run_steps)
        self._run_keys = ()

    # -- reading the device ---------------------------------------------------------------
    def check_finite(self) -> None:
        """Raise :class:`DivergenceError` if a loss went NaN/inf (syncs with the device).

        Under torchrun every process must call it at the same step.
        """
        never = torch.iinfo(torch.long).max
        first = torch.where(self._first_bad < 0, never, self._first_bad)
        first_bad = int(distributed.minimum_(first, self.dist).item())
        if first_bad != never:
            raise DivergenceError(f"a loss became NaN or infinite at step {first_bad}")
        params = [p for net in (self.G, self.D) if net is not None for p in net.parameters()]
        if not bool(torch.stack([p.isfinite().all() for p in params]).all()):
            raise DivergenceError(f"the weights became NaN or infinite by step {self.step}")

    def flush(self, seconds: float) -> dict[str, Any]:
        """The window's mean of every logged value, as a metrics record; starts a new window."""
        self.check_finite()
        record: dict[str, Any] = {"step": self.step, "time": round(seconds, 3)}
        self._fold_run()
        means = torch.stack([total / steps for total, steps in self._sums.values()])
        values = distributed.average_(means, self.dist).tolist()
        record |= dict(zip(self._sums, values, strict=True))
        self._sums = {}
        return record

    # -- samples and checkpoints ------------------------------------------------------------
    def sampler(self) -> Generator:
        """The network that samples: the moving average when there is one."""
        return self.ema if self.ema is not None else self.G

    @torch.no_grad()
    def fixed_samples(self) -> Tensor:
        """Samples of the fixed noise batch, from the sampling network in eval mode."""
        net = self.sampler()
        was_training = net.training
        net.eval()
        try:
            return net(self.fixed_noise).float().cpu()
        finally:
            net.train(was_training)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit."""
        return {
            "format": FORMAT,
            "ganzoo": __version__,
            "step": self.step,
            "recipe": self.recipe.to_toml(),
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict() if self.D is not None else None,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "generator_optimizer": self.g_opt.state_dict(),
            "discriminator_optimizer": self.d_opt.state_dict() if self.d_opt else None,
            "rng": rng_state(),
            "data": self.feeder.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state_dict`."""
        try:
            self.G.load_state_dict(state["generator"])
            self.g_opt.load_state_dict(state["generator_optimizer"])
            if self.D is not None:
                assert self.d_opt is not None
                self.D.load_state_dict(state["discriminator"])
                self.d_opt.load_state_dict(state["discriminator_optimizer"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            self.feeder.load_state_dict(state["data"])
            restore_rng_state(state["rng"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"the checkpoint does not fit this run's networks: {str(exc).splitlines()[0]}"
            ) from None
        self.step = int(state["step"])


def _prepare_recipe(
    recipe: str | Path | Recipe, overrides: list[str] | tuple[str, ...]
) -> tuple[Recipe, str | None]:
    if isinstance(recipe, Recipe):
        if overrides:
            return recipe_from_dict(recipe.to_dict(), recipe.source, overrides), None
        return recipe, None
    loaded = load_recipe(recipe, overrides)
    return loaded, Path(loaded.source).read_text(encoding="utf-8")


def _resume_recipe(
    run_dir: Path, recipe: str | Path | Recipe | None, overrides: list[str] | tuple[str, ...]
) -> Recipe:
    folder = _RunFolder(run_dir)
    if not folder.resolved.is_file():
        raise UsageError(f"--resume {run_dir}: not a run folder (no resolved.toml)")
    stored = load_recipe(folder.resolved)
    if recipe is None:
        new = load_recipe(folder.resolved, overrides)
    else:
        new, _ = _prepare_recipe(recipe, overrides)
    changed = recipe_changes(stored, new)
    if changed:
        raise UsageError(
            f"--resume {run_dir}: the recipe differs from the one the run was started with, in "
            + "; ".join(changed)
            + ". A resumed run may change only "
            + ", ".join(RESUMABLE_CHANGES)
            + "; start a new run for other changes."
        )
    return new


def run(
    recipe: str | Path | Recipe | None = None,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    out: str | Path | None = None,
    device: str = "auto",
    resume: str | Path | None = None,
    checkpoint: str | None = None,
    data_dir: str | Path | None = None,
    download: bool = False,
    progress: ProgressMode = "auto",
    inception_weights: str | Path | None = None,
) -> RunResult:
    """Train a recipe (a path, a bundled recipe name or a :class:`Recipe`) into a run folder.

    With ``resume``, continue the run in that folder from its last checkpoint (or from
    ``checkpoint``, a file name in its ``checkpoints/``); ``recipe`` may then be omitted,
    and may change only :data:`RESUMABLE_CHANGES` (e.g. ``train.steps``). A recipe with an
    ``[eval]`` section is evaluated at the end (``inception_weights`` as for
    :func:`ganzoo.evaluate.evaluate_run`).
    """
    dist = distributed.from_environment()
    torch_device = resolve_device(device, dist)
    own_group = distributed.start(dist, torch_device)
    try:
        result, loop = _train(
            recipe, overrides, out, torch_device, resume, checkpoint, data_dir, download,
            progress, dist,
        )  # fmt: skip
    except BaseException:
        if own_group:
            torch.distributed.destroy_process_group()
        raise
    if own_group:
        distributed.finish()
    resolved = loop.trainer.recipe
    if result.interrupted_by is None and resolved.shell.eval.metrics and dist.is_main:
        from ganzoo.evaluate import evaluate_run

        result.evaluation = evaluate_run(
            result.run_dir, device=str(torch_device), data_dir=data_dir,
            inception_weights=inception_weights, report=loop.progress.message,
        )  # fmt: skip
        summary = ", ".join(f"{k} {v:.4g}" for k, v in result.evaluation.scores.items())
        loop.progress.message(f"evaluation: {summary} (eval.json)")
    return result


def _train(
    recipe: str | Path | Recipe | None,
    overrides: list[str] | tuple[str, ...],
    out: str | Path | None,
    device: torch.device,
    resume: str | Path | None,
    checkpoint: str | None,
    data_dir: str | Path | None,
    download: bool,
    progress: ProgressMode,
    dist: Distributed,
) -> tuple[RunResult, _Loop]:
    if resume is not None:
        resolved = _resume_recipe(Path(resume), recipe, overrides)
        recipe_text = None
    else:
        if recipe is None:
            raise UsageError("give a recipe to run, or --resume RUN_DIR")
        resolved, recipe_text = _prepare_recipe(recipe, overrides)
        check_networks(resolved)
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
    if resume is not None:
        run_dir = Path(resume)
    else:
        out_dir = Path(out) if out is not None else None
        run_dir = distributed.from_main(dist, lambda: _new_run_dir(resolved.name, out_dir))
    dataset = build_dataset(resolved, resolve_data_dir(data_dir), download)
    folder = _RunFolder(run_dir)
    state = _resume_state(folder, checkpoint, device) if resume is not None else None
    torch.manual_seed(resolved.seed)
    spec = dataset.spec
    nets = build_networks(resolved, spec, device)
    feeder = make_feeder(
        dataset, train.batch_size, resolved.seed, device, train.data_on_device,
        train.num_workers, dist.shard,
    )  # fmt: skip
    trainer = Trainer(resolved, nets, spec, feeder, device, dist)
    env = environment(device)
    if state is not None:
        trainer.load_state_dict(state)
        distributed.from_main(dist, lambda: folder.record_resume(resolved, env, trainer.step))
    else:
        distributed.from_main(dist, lambda: folder.create(resolved, recipe_text, env))
    loop = _Loop(trainer, folder, dataset, progress if dist.is_main else "none")
    return loop.run(), loop


def _resume_state(
    folder: _RunFolder, checkpoint: str | None, device: torch.device
) -> dict[str, Any] | None:
    if checkpoint is not None:
        return load_checkpoint(folder.checkpoints / checkpoint, device)
    if not folder.checkpoints.is_dir():
        return None
    remove_partial_writes(folder.checkpoints)
    path = latest_checkpoint(folder.checkpoints)
    if path is None:
        return None  # stopped before its first checkpoint: start again from step 0
    return load_checkpoint(path, device)


class _Loop:
    """Runs the trainer to the recipe's step count, writing the run folder as it goes."""

    def __init__(
        self, trainer: Trainer, folder: _RunFolder, dataset: Dataset, mode: ProgressMode
    ) -> None:
        self.trainer, self.folder, self.dataset = trainer, folder, dataset
        self.train = trainer.recipe.train
        self.main = trainer.dist.is_main
        self.progress = Progress(self.train.steps, trainer.step, mode)
        self.last_checkpoint: Path | None = None
        self.checkpoint_step = trainer.step
        self.writer = self._tensorboard()

    def _tensorboard(self) -> Any:
        if not self.train.tensorboard or not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(log_dir=str(self.folder.root / "tensorboard"))

    def run(self) -> RunResult:
        """Train to the recipe's step count or a stop request; return what was done.

        Under torchrun the processes agree on a stop request at the next logging step.
        """
        t = self.trainer
        dist = t.dist
        start_step, started = t.step, time.perf_counter()
        window_start, window_step = started, t.step
        stop = _StopRequest()
        stopping = False
        images_per_s = 0.0
        log_file = self.folder.metrics.open("a", encoding="utf-8") if self.main else nullcontext()
        with stop.installed(), log_file as log:
            try:
                while t.step < self.train.steps and not stopping:
                    t.train_step()
                    self.progress.step(t.step)
                    logging = t.step % self.train.log_every == 0 or t.step == self.train.steps
                    if logging:
                        now = time.perf_counter()
                        images_per_s = (t.step - window_step) * t.batch_size / (now - window_start)
                        record = t.flush(now - started)
                        if self.main:
                            self._log(log, record, images_per_s)
                        window_start, window_step = now, t.step
                    if t.step % self.train.sample_every == 0 and self.main:
                        self._samples()
                    if t.step % self.train.checkpoint_every == 0:
                        self._checkpoint()
                    requested = stop.signal_name is not None
                    if dist.enabled:
                        stopping = logging and distributed.any_process(requested, dist, t.device)
                    else:
                        stopping = requested
                if t.step > self.checkpoint_step:
                    self._checkpoint()
            except DivergenceError as exc:
                self.progress.close()
                raise DivergenceError(
                    f"{exc}; training stopped. {self._last_good()} A resumed run would repeat "
                    "the same steps: start a new run with lower learning rates or another loss."
                ) from None
            finally:
                self.progress.close()
                if self.writer is not None:
                    self.writer.close()
        seconds = time.perf_counter() - started
        interrupted_by = stop.signal_name or ("SIGTERM" if stopping else None)
        if interrupted_by is None and self.main:
            self._samples()
            records = self.folder.records()
            if records:
                save_loss_curves(records, self.folder.root / "loss_curve.png")
        overall = (t.step - start_step) * t.batch_size / seconds if seconds > 0 else 0.0
        return RunResult(
            self.folder.root,
            t.step,
            self.train.steps,
            seconds,
            overall or images_per_s,
            self.last_checkpoint,
            interrupted_by,
        )

    def _last_good(self) -> str:
        last = self.folder.checkpoints / LAST
        if last.exists():
            step = torch.load(last, map_location="cpu", weights_only=True)["step"]
            return f"The last good checkpoint is {last} (step {step})."
        return "No checkpoint was written before it."

    def _log(self, log: Any, record: dict[str, Any], images_per_s: float) -> None:
        record["images_per_s"] = round(images_per_s, 1)
        log.write(json.dumps(record) + "\n")
        log.flush()
        self.progress.record(record)
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "time"):
                    self.writer.add_scalar(key, value, record["step"])

    def _samples(self) -> None:
        t = self.trainer
        samples = t.fixed_samples()
        path = self.folder.samples / f"step_{t.step:08d}.png"
        real = None
        if not t.spec.is_image:
            data = self.dataset.tensor()
            real = to_model_space(data[:2000]) if data is not None else None
        save_samples(samples, t.spec, path, real=real)
        if self.writer is not None and t.spec.is_image:
            from torchvision.utils import make_grid

            grid = make_grid(samples.add(1).div(2).clamp(0, 1), nrow=8)
            self.writer.add_image("samples", grid, t.step)

    def _checkpoint(self) -> None:
        t = self.trainer
        t.check_finite()
        if self.main:
            self.last_checkpoint = save_checkpoint(
                self.folder.checkpoints, t.state_dict(), t.step, self.train.keep_checkpoints
            )
        self.checkpoint_step = t.step
