"""The trainer: the networks and their optimisers, one training step, the state of a checkpoint.

A step is ``d_steps`` discriminator updates followed by one generator update; the generator's
last batch of fakes is reused for its own update, as the classic implementations do. In a
labelled run (a conditional network, or a loss that reads labels) every real batch carries its
labels, the fakes get labels drawn as ``train.fake_labels`` says, and losses get the
discriminator bound to both (:class:`~ganzoo.api.LabelledDiscriminator`). Nothing
in a step waits for the device: logged values are summed on the device and read every
``log_every`` steps, and a NaN/inf is traced to its step without a host sync. What the loss
returns is checked against the contract by type and shape alone (:mod:`ganzoo.contract`), and
an exception from inside a plugin's component is reported as that plugin's failure. With an
``[augment]`` section every discriminator call sees augmented batches (:mod:`ganzoo.augment`).
The loop that drives the trainer and writes the run folder is :mod:`ganzoo.train`.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ganzoo import __version__, distributed
from ganzoo.api import Batch, DataSpec, Generator, LabelledDiscriminator
from ganzoo.augment import Augmenter
from ganzoo.build import Networks
from ganzoo.checkpoint import FORMAT, rng_state, set_rng_state
from ganzoo.contract import Provider, blame, describe, loss_terms
from ganzoo.data import Feeder, shard_slice
from ganzoo.device import autocast, autocast_device
from ganzoo.distributed import Distributed
from ganzoo.errors import CheckpointError, DivergenceError
from ganzoo.logwindow import LogWindow
from ganzoo.optim import make_optimizer, set_learning_rate
from ganzoo.recipe import Recipe, RecipeWarning


def uses_labels(nets: Networks) -> bool:
    """Whether a run of these networks needs labelled batches."""
    conditional_d = nets.discriminator is not None and nets.discriminator.num_classes > 0
    return nets.generator.num_classes > 0 or conditional_d or nets.loss.uses_labels


class Trainer:
    """Alternating discriminator and generator updates over a feeder of real batches.

    ``label_counts`` (the dataset's count of each class) is needed when ``train.fake_labels``
    is ``data``.
    """

    def __init__(
        self,
        recipe: Recipe,
        nets: Networks,
        spec: DataSpec,
        feeder: Feeder,
        device: torch.device,
        dist: Distributed | None = None,
        label_counts: Tensor | None = None,
    ) -> None:
        self.recipe, self.spec, self.feeder, self.device = recipe, spec, feeder, device
        self.dist = dist or Distributed()
        self.G: Generator = nets.generator
        self.D = nets.discriminator if nets.loss.uses_discriminator else None
        self.loss = nets.loss
        self.loss_by = Provider.of(recipe.components["loss"].entry)
        self.labelled = uses_labels(nets)
        self.label_weights = None
        if self.labelled and recipe.train.fake_labels == "data":
            assert label_counts is not None, "train.fake_labels = 'data' needs the label counts"
            self.label_weights = label_counts.float().to(device)
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
        self.augmenter = None
        if nets.augmentation is not None and self.D is not None:
            section = recipe.shell.augment
            assert section is not None
            self.augmenter = Augmenter(nets.augmentation, section, self.batch_size, device, dist)
        self.d_steps = train.d_steps or self.loss.default_d_steps
        self.g_opt = make_optimizer(list(self.G.parameters()), train.generator_optimizer)
        self.d_opt = (
            make_optimizer(list(self.D.parameters()), train.discriminator_optimizer)
            if self.D is not None
            else None
        )
        self.ema: Generator | None = None
        if train.ema > 0:
            self.ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self.step = 0
        self.seconds_before = 0.0  # training time of the processes before a resume
        self.fixed_noise, self.fixed_labels = self._fixed_inputs()
        self.log_window = LogWindow(device, dist)
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

    def unwrap(self) -> None:
        """Let go of the DDP and compiled wrappers; the step then calls the plain networks.

        A DDP wrapper's reducer holds the process group: freed here, while the group exists,
        it does not die later at a garbage collection or at interpreter exit, where gloo can
        abort the process.
        """
        self.G_train, self.D_train, self.D_for_g = self.G, self.D, self.D

    def _fixed_inputs(self) -> tuple[Tensor, Tensor | None]:
        """The sample grid's latent vectors (and, for a conditional G, one row per class)."""
        n = self.recipe.train.num_samples
        rng = torch.Generator().manual_seed(self.recipe.seed + 1)
        classes = self.G.num_classes
        columns = max(1, n // classes) if classes else n
        z = self.G.sample_latent(columns, generator=rng)
        if not isinstance(z, Tensor) or z.dim() == 0 or z.shape[0] != columns:
            raise Provider.of(self.recipe.components["generator"].entry).error(
                "sample_latent",
                f"returned {describe(z)}; expected {columns} latent vectors (N, ...)",
            )
        if not classes:
            return z.to(self.device), None
        z = z.repeat(classes, *[1] * (z.dim() - 1))
        labels = torch.arange(classes).repeat_interleave(columns)
        return z.to(self.device), labels.to(self.device)

    def _shard(self, global_batch: Tensor) -> Tensor:
        """This process's slice of a tensor drawn for the whole global batch."""
        if not self.dist.enabled:
            return global_batch
        return global_batch[shard_slice(0, self.batch_size, self.dist.shard)]

    def _latent(self) -> Tensor:
        """This process's slice of the global batch's latent vectors (same draw everywhere)."""
        return self._shard(self.G.sample_latent(self.batch_size, device=self.device))

    def _fake_labels(self) -> Tensor:
        """Labels for a batch of fakes: uniform over the classes, or as often as in the data."""
        n = self.batch_size
        if self.label_weights is not None:
            labels = torch.multinomial(self.label_weights, n, replacement=True)
        else:
            labels = torch.randint(self.spec.num_classes, (n,), device=self.device)
        return self._shard(labels)

    def _real(self) -> Batch:
        batch = self.feeder.next()
        real = batch.samples
        if self.recipe.train.channels_last and real.dim() == 4:
            return Batch(real.contiguous(memory_format=torch.channels_last), batch.labels)
        return batch

    def _generate(self, z: Tensor, labels: Tensor | None) -> Tensor:
        if labels is None or not self.G.num_classes:
            return self.G_train(z)
        return self.G_train(z, labels)

    def _bound(
        self, D: nn.Module, real: Batch, fake: Tensor, fake_labels: Tensor | None, d_step: bool
    ) -> nn.Module:
        """``D`` behind the augmentation, bound to the step's labels in a labelled run."""
        if self.augmenter is not None:
            D = self.augmenter.wrap(D, real.samples if d_step else None)
        if real.labels is None or fake_labels is None:
            return D
        return LabelledDiscriminator(D, real.labels, fake, fake_labels)

    # -- one step -------------------------------------------------------------------------
    def _set_learning_rates(self) -> None:
        train = self.recipe.train
        set_learning_rate(self.g_opt, train.generator_optimizer, self.step, train.steps)
        if self.d_opt is not None:
            set_learning_rate(self.d_opt, train.discriminator_optimizer, self.step, train.steps)

    def train_step(self) -> None:
        """One generator update, preceded by ``d_steps`` discriminator updates.

        Raises:
            PluginError: a plugin's component broke the contract or raised inside a method.

        """
        try:
            self._step()
        except Exception as exc:  # costs nothing until raised
            blamed = blame(exc)
            if blamed is None:
                raise
            raise blamed from exc

    def _step(self) -> None:
        self._set_learning_rates()
        logs: dict[str, Tensor] = {}
        fake: Tensor
        real: Batch
        fake_labels: Tensor | None = None
        if self.D is not None:
            assert self.d_opt is not None and self.D_train is not None
            self.D.requires_grad_(True)
            for i in range(self.d_steps):
                real = self._real()
                z = self._latent()
                fake_labels = self._fake_labels() if self.labelled else None
                with autocast(self.amp):
                    if i == self.d_steps - 1:
                        fake = self._generate(z, fake_labels)
                        fake_for_d = fake.detach()
                    else:
                        with torch.no_grad():
                            fake_for_d = self._generate(z, fake_labels)
                    D = self._bound(self.D_train, real, fake_for_d, fake_labels, True)
                    out = self.loss.discriminator_loss(D, real.samples, fake_for_d)
                value, d_logs = loss_terms(
                    out, self.loss_by, "discriminator_loss", "the discriminator"
                )
                self.d_opt.zero_grad(set_to_none=True)
                value.backward()
                self.d_opt.step()
                if self.augmenter is not None:
                    self.augmenter.discriminator_updated()
            logs["d_loss"] = value.detach()
            logs |= {k: v.detach() for k, v in d_logs.items()}
            self.D.requires_grad_(False)
        else:
            real = self._real()
            fake_labels = self._fake_labels() if self.labelled else None
            with autocast(self.amp):
                fake = self._generate(self._latent(), fake_labels)
        with autocast(self.amp):
            D_for_g = self.D_for_g
            if D_for_g is not None:
                D_for_g = self._bound(D_for_g, real, fake, fake_labels, False)
            out_g = self.loss.generator_loss(D_for_g, real.samples, fake)
        g_value, g_logs = loss_terms(out_g, self.loss_by, "generator_loss", "the generator")
        self.g_opt.zero_grad(set_to_none=True)
        g_value.backward()
        self.g_opt.step()
        logs["g_loss"] = g_value.detach()
        logs |= {k: v.detach() for k, v in g_logs.items() if k not in logs}
        if self.augmenter is not None:
            logs |= self.augmenter.logs()
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
        """Add this step's logged values to the window and watch them for NaN/inf (no sync)."""
        values = self.log_window.add(logs)
        bad = ~torch.isfinite(values.sum())
        self._first_bad = torch.where(bad & (self._first_bad < 0), self.step, self._first_bad)

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
        return record | self.log_window.means()

    # -- samples and checkpoints ------------------------------------------------------------
    def sampler(self) -> Generator:
        """The network that samples: the moving average when there is one."""
        return self.ema if self.ema is not None else self.G

    @contextmanager
    def sampling(self) -> Iterator[Generator]:
        """The sampling network in eval mode for the block; its mode is restored after."""
        net = self.sampler()
        was_training = net.training
        net.eval()
        try:
            yield net
        finally:
            net.train(was_training)

    def evaluation_generator(self) -> Generator:
        """A copy of the sampling network as a checkpoint rebuilds it: eval mode, default layout.

        Scores of this copy equal those ``ganzoo eval`` gives for the checkpoint of this step
        (a channels-last network would round differently).
        """
        net = copy.deepcopy(self.sampler()).eval()
        return net.to(memory_format=torch.contiguous_format)

    @torch.no_grad()
    def fixed_samples(self) -> Tensor:
        """Samples of the fixed noise batch, from the sampling network in eval mode.

        For a conditional generator: one row per class, the same latent vector per column.
        """
        with self.sampling() as net:
            if self.fixed_labels is None:
                return net(self.fixed_noise).float().cpu()
            return net(self.fixed_noise, self.fixed_labels).float().cpu()

    def state_dict(self, seconds: float = 0.0) -> dict[str, Any]:
        """Everything a resumed run needs to continue bit for bit.

        ``seconds`` is the run's training time so far, over all its processes. Under torchrun
        every process must call it (the logging window is averaged over them).
        """
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
            "class_names": list(self.spec.class_names),
            "log_window": self.log_window.state_dict(),
            "augment": self.augmenter.state_dict() if self.augmenter is not None else None,
            "seconds": float(seconds),
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
            set_rng_state(state["rng"])
            if state.get("log_window") is not None:  # older checkpoints have none
                self.log_window.load_state_dict(state["log_window"])
            if self.augmenter is not None:
                self.augmenter.load_state_dict(state["augment"])
        except (KeyError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
            raise CheckpointError(
                f"the checkpoint does not fit this run's networks: {str(exc).splitlines()[0]}"
            ) from None
        self.step = int(state["step"])
        self.seconds_before = float(state.get("seconds", 0.0))
