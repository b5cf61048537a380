"""What the trainer does around each epoch, one hook per concern, each with its `every`.

  Validate    the validation pass (and, with `eval.track_test`, the test metrics of the epoch's
              parameters): every `train.eval_every` epochs after the warm-up, and the last one;
  Select      model selection after each validation: early stopping, the learning-rate plateau
              and each replica's best parameters (train/selection.py);
  Checkpoint  state, best parameters, selection, timing and the last training metrics: every
              `train.checkpoint_every` epochs, the last one and when every replica has stopped;
  Report      the epoch's progress line (metric_writer.MetricWriter.report), every epoch.

The loop (loop.py) calls them in that order, each reading and updating the run's
`progress.Progress`.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign import fileio
from orthoalign.train import build as build_lib
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import metric_writer
from orthoalign.train import progress as progress_lib
from orthoalign.train import results
from orthoalign.train import selection as selection_lib


class Hook:
  """Runs every `every` epochs and at the run's last epoch."""

  def __init__(self, every: int, max_epochs: int):
    self.every, self.max_epochs = every, max_epochs

  def due(self, epoch: int, progress: progress_lib.Progress) -> bool:
    del progress
    return epoch % self.every == 0 or epoch == self.max_epochs


class Validate(Hook):
  """The validation metrics (and tracked test metrics) of the current parameters."""

  def __init__(self, run: build_lib.Run, config: ml_collections.ConfigDict, evaluate: Any):
    super().__init__(config.train.eval_every, config.train.max_epochs)
    self.run, self.evaluate = run, evaluate
    self.warmup_epochs = config.train.warmup_epochs
    self.track_test = config.eval.track_test

  def due(self, epoch: int, progress: progress_lib.Progress) -> bool:
    # As ABXI: no validation (so no early stopping or plateau) during warm-up.
    return epoch > self.warmup_epochs and super().due(epoch, progress)

  def __call__(self, progress: progress_lib.Progress) -> list[dict[str, float]]:
    """Per replica: "valid/..." and "align/..." (validation inputs), and "test/..." if tracked."""
    run, params = self.run, progress.state.params
    with progress.timing.phase("eval"):
      sums = jax.device_get(self.evaluate(params, run.frozen, run.eval_data["valid"]))
      numbers = [results.finalize_split(sums, r, "valid") for r in range(run.num_replicas)]
      if self.track_test:
        sums = jax.device_get(run.eval_fn(params, run.frozen, run.eval_data["test"]))
        for r, n in enumerate(numbers):
          n.update(results.test_metrics(sums, r))
    return numbers


@functools.partial(jax.jit, donate_argnums=0)
def _keep_best(best: Any, params: Any, improved: jax.Array) -> Any:
  """Per replica: best <- params where the replica improved."""
  return jax.tree.map(
    lambda b, p: jnp.where(improved.reshape((-1,) + (1,) * (b.ndim - 1)), p, b), best, params
  )


class Select:
  """Early stopping, the plateau and the best parameters, on `train.select_metric`."""

  def __init__(self, run: build_lib.Run, config: ml_collections.ConfigDict):
    tc = config.train
    self.run, self.key = run, tc.select_metric
    self.patience, self.plateau_patience, self.plateau_factor = (
      tc.early_stop_patience,
      tc.plateau_patience,
      tc.plateau_factor,
    )

  def __call__(
    self, epoch: int, valid: list[dict[str, float]], progress: progress_lib.Progress
  ) -> str:
    """Updates the selection and best parameters; returns the progress line's part."""
    selection = progress.selection
    improved = selection.update(
      epoch, valid, self.key, self.patience, self.plateau_patience, self.plateau_factor
    )
    progress.best = _keep_best(
      progress.best, progress.state.params, jax.device_put(improved, self.run.repl)
    )
    now = np.nanmean([selection_lib.select_value(v, self.key) for v in valid])
    return (
      f"{results.short_key(self.key)} {now:.4f} (best {np.mean(selection.best_value):.4f})"
      f"  early-stopped {sum(selection.stopped)}/{len(valid)} replicas"
    )


class Checkpoint(Hook):
  """Saves the run; also after the epoch in which every replica stopped."""

  def __init__(self, ckpt: checkpoint_lib.Checkpointer, config: ml_collections.ConfigDict):
    super().__init__(config.train.checkpoint_every, config.train.max_epochs)
    self.ckpt = ckpt

  def due(self, epoch: int, progress: progress_lib.Progress) -> bool:
    return super().due(epoch, progress) or progress.selection.all_stopped

  def __call__(self, epoch: int, progress: progress_lib.Progress) -> None:
    with progress.timing.phase("checkpoint"), errors.interrupts_held():
      self.ckpt.save(epoch, progress.state, progress.best, progress.meta())


class Report:
  """The progress line, every epoch: loss, selection, speed, seconds per epoch and the time left."""

  def __init__(self, run: build_lib.Run, writer: metric_writer.MetricWriter, max_epochs: int):
    self.steps, self.writer, self.max_epochs = run.steps, writer, max_epochs

  def __call__(
    self, epoch: int, epoch_s: float, status: str, progress: progress_lib.Progress
  ) -> None:
    timing = progress.timing
    left = (
      (self.max_epochs - epoch)
      * timing.seconds["train"]
      / max(timing.epochs_trained(self.steps), 1)
    )
    self.writer.report(
      epoch,
      *([status] if status else []),
      f"{self.steps / epoch_s:.1f} steps/s",
      f"{epoch_s:.1f}s/epoch",
      f"ETA <= {fileio.format_duration(left)}",
    )
