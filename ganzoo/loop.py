"""The training loop: drives a :class:`~ganzoo.trainer.Trainer` and writes its run folder.

It logs ``metrics.jsonl`` (and TensorBoard, when installed), writes fixed-noise sample grids
and checkpoints on the recipe's schedule, and turns SIGINT/SIGTERM into a checkpoint and a
clean stop. Under torchrun every process runs the loop; rank 0 alone writes.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ganzoo import distributed
from ganzoo.api import Dataset, to_model_space
from ganzoo.checkpoint import save_checkpoint
from ganzoo.errors import DivergenceError
from ganzoo.plots import class_labels, save_class_grid, save_loss_curves, save_samples, tile
from ganzoo.progress import Progress, ProgressMode
from ganzoo.runs import RunFolder
from ganzoo.stopping import StopRequest
from ganzoo.threads import ThreadBudget
from ganzoo.trainer import Trainer
from ganzoo.writes import Guarded, guarded, quiet_writer_threads

if TYPE_CHECKING:
    from ganzoo.evaluate import Report


@dataclass
class RunResult:
    """What a run did: where its folder is, how far it got and how fast, and its scores."""

    run_dir: Path
    step: int
    total_steps: int
    seconds: float
    images_per_s: float
    checkpoint: Path | None
    interrupted_by: str | None = None
    evaluation: Report | None = None
    start_step: int = 0
    run_seconds: float = 0.0

    def summary(self) -> str:
        """Steps and time of this process and, after a resume, of the whole run, in one line."""
        done = self.step - self.start_step
        line = f"{done:,} steps in {self.seconds:.1f} s ({self.images_per_s:,.0f} images/s)"
        if self.start_step:
            line = (
                f"this process {line}, from step {self.start_step:,}; the whole run "
                f"{self.step:,} steps in {self.run_seconds:.1f} s"
            )
        return line


class Loop:
    """Runs the trainer to the recipe's step count, writing the run folder as it goes."""

    def __init__(
        self,
        trainer: Trainer,
        folder: RunFolder,
        dataset: Dataset,
        mode: ProgressMode,
        threads: ThreadBudget | None = None,
    ) -> None:
        self.trainer, self.folder, self.dataset = trainer, folder, dataset
        self.threads = threads
        self.train = trainer.recipe.train
        self.main = trainer.dist.is_main
        self.progress = Progress(self.train.steps, trainer.step, mode)
        self.last_checkpoint: Path | None = None
        self.checkpoint_step = trainer.step
        self._started = time.perf_counter()  # set again when training starts
        self.writer = self._tensorboard()

    def _tensorboard(self) -> Any:
        if not self.train.tensorboard or not self.main:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        with guarded(self.folder.tensorboard):
            writer = SummaryWriter(log_dir=str(self.folder.tensorboard))
        return Guarded(writer, self.folder.tensorboard)

    def run(self) -> RunResult:
        """Train to the recipe's step count or a stop request; return what was done.

        Under torchrun the processes agree on a stop request at the next logging step.
        """
        t = self.trainer
        dist = t.dist
        start_step, started = t.step, time.perf_counter()
        self._started = started
        window_start, window_step = started, t.step
        stop = StopRequest()
        stopping = False
        images_per_s = 0.0
        log_file = self.folder.open_metrics() if self.main else nullcontext()
        with stop.installed(), quiet_writer_threads(), log_file as log:
            try:
                while t.step < self.train.steps and not stopping:
                    t.train_step()
                    self.progress.step(t.step)
                    logging = t.step % self.train.log_every == 0 or t.step == self.train.steps
                    if logging:
                        now = time.perf_counter()
                        images_per_s = (t.step - window_step) * t.batch_size / (now - window_start)
                        record = t.flush(t.seconds_before + now - started)
                        if self.main:
                            self._log(log, record, images_per_s)
                        window_start, window_step = now, t.step
                        if self.threads is not None:
                            self.threads.adjust()  # other runs may have come or gone
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
                    f"{exc}; training stopped. {self.folder.last_good()} A resumed run would "
                    "repeat the same steps: start a new run with lower learning rates or another "
                    "loss."
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
                save_loss_curves(records, self.folder.loss_curve)
        overall = (t.step - start_step) * t.batch_size / seconds if seconds > 0 else 0.0
        return RunResult(
            self.folder.root,
            t.step,
            self.train.steps,
            seconds,
            overall or images_per_s,
            self.last_checkpoint,
            interrupted_by,
            start_step=start_step,
            run_seconds=t.seconds_before + seconds,
        )

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
        path = self.folder.sample_grid(t.step)
        if t.fixed_labels is not None:
            columns = len(samples) // t.G.num_classes
            save_class_grid(samples, path, columns, class_labels(self.dataset.spec))
        else:
            real = None
            if not t.spec.is_image:
                data = self.dataset.tensor()
                real = to_model_space(data[:2000]) if data is not None else None
            save_samples(samples, t.spec, path, real=real)
        if self.writer is not None and t.spec.is_image:
            self.writer.add_image("samples", tile(samples.add(1).div(2).clamp(0, 1), 8), t.step)

    def _checkpoint(self) -> None:
        t = self.trainer
        t.check_finite()
        state = t.state_dict(t.seconds_before + time.perf_counter() - self._started)
        if self.main:
            self.last_checkpoint = save_checkpoint(
                self.folder.checkpoints, state, t.step, self.train.keep_checkpoints
            )
        self.checkpoint_step = t.step
