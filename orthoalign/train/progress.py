"""`Progress`: a run's state between epochs, which the hooks update and a checkpoint holds;
`restore` gets it back.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign import errors
from orthoalign.config import upgrade
from orthoalign.train import build
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import distributed
from orthoalign.train import selection as selection_lib
from orthoalign.train import timing as timing_lib


@dataclasses.dataclass
class Progress:
  """A run's state between epochs; all of it is checkpointed.

  Attributes:
    epoch: the last epoch trained (0 before the first).
    state: the R stacked replicas (train/state.TrainState).
    best: each replica's parameters at its best validation epoch.
    selection: early stopping and plateau state.
    timing: seconds per phase, over resumptions.
    last_train: per replica, the last epoch's training metrics ("train/<name>").
  """

  epoch: int
  state: Any
  best: Any
  selection: selection_lib.Selection
  timing: timing_lib.Timing
  last_train: list[dict[str, float]]

  def meta(self) -> dict[str, Any]:
    """The checkpoint's JSON item (read back by `config.upgrade.checkpoint_meta`)."""
    return {
      "selection": dataclasses.asdict(self.selection),
      "timing": self.timing.record(),
      "last_train": self.last_train,
    }


def restore(run: build.Run, ckpt: checkpoint_lib.Checkpointer, started: float) -> Progress:
  """The run's progress from the newest complete checkpoint, or that of a new run (epoch 0, the
  initialised replicas as their own best) when there is none; every process gets the same.

  Args:
    run: the run's `build.Run`.
    ckpt: the run's checkpointer.
    started: `time.time()` when this process started the run (its wall clock counts from there).

  Raises:
    RunError: checkpoints exist but none restores (checkpoint.Checkpointer.restore_latest).
  """
  best = jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=run.state_sharding.params)(
    run.state.params
  )
  num_r = run.num_replicas
  with errors.interrupts_held():
    restored = ckpt.restore_latest(run.state, best)
  if restored is None:
    progress = Progress(
      0, run.state, best, selection_lib.Selection.new(num_r), timing_lib.Timing(started=started), []
    )
  else:
    for line in restored.skipped:
      distributed.say(f"warning: {line}")
    meta = upgrade.checkpoint_meta(restored.meta, num_r)
    progress = Progress(
      restored.epoch,
      restored.state,
      restored.best,
      selection_lib.Selection(**meta["selection"]),
      timing_lib.Timing.from_record(meta["timing"], started),
      meta["last_train"],
    )
    distributed.say(f"Resumed from {ckpt.directory} at epoch {restored.epoch}")
  distributed.agree(progress.epoch + 1, "the epoch to resume from")
  return progress
