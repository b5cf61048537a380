"""The learning-rate schedule and model selection of a run, on the host.

Per replica: linear warm-up (ABXI's torch LinearLR, stepped per epoch), reduce-on-plateau (ABXI's
ReduceLROnPlateau) and early stopping on the validation metric (`train.select_metric`). The
`Tracker` is checkpointed as JSON with the run, so a resumed run continues the same schedule.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from orthoalign.train import state as state_lib


@dataclasses.dataclass
class Tracker:
  """Per-replica early stopping on the validation metric (host side, checkpointed as JSON)."""

  best_value: list[float]
  best_epoch: list[int]
  bad_evals: list[int]
  stopped: list[bool]
  best_metrics: list[dict[str, float]]
  last_epoch: int = 0
  last_train: list[dict[str, float]] = dataclasses.field(default_factory=list)
  lr_scale: list[float] = dataclasses.field(default_factory=list)  # reduce-on-plateau factor
  plateau_bad: list[int] = dataclasses.field(default_factory=list)
  train_time_s: float = 0.0  # seconds per phase, over resumptions (loop.Phases)
  train_steps: int = 0
  eval_time_s: float = 0.0
  checkpoint_time_s: float = 0.0
  compile_time_s: float = 0.0  # every process's compilation of the run's programs
  wall_time_s: float = 0.0  # wall clock of every process, up to its last checkpoint

  @classmethod
  def new(cls, r: int) -> Tracker:
    return cls(
      [-math.inf] * r,
      [0] * r,
      [0] * r,
      [False] * r,
      [{} for _ in range(r)],
      lr_scale=[1.0] * r,
      plateau_bad=[0] * r,
    )

  def update(
    self,
    epoch: int,
    metrics: list[dict[str, float]],
    key: str,
    patience: int,
    plateau_patience: int = 0,
    plateau_factor: float = 1.0,
  ) -> np.ndarray:
    """Records one evaluation; returns bool [R], True where the replica improved.

    Early stopping: a replica stops after `patience` evaluations without improvement. Reduce on
    plateau (ABXI's use of torch's ReduceLROnPlateau, stepped with "improved or not"): after more
    than `plateau_patience` evaluations without improvement the replica's learning rate is
    multiplied by `plateau_factor` and the count restarts.
    """
    improved = np.zeros(len(metrics), bool)
    for r, m in enumerate(metrics):
      if self.stopped[r]:
        continue
      value = select_value(m, key)
      if math.isfinite(value) and value > self.best_value[r]:
        self.best_value[r], self.best_epoch[r], self.bad_evals[r] = value, epoch, 0
        self.best_metrics[r] = dict(m)
        self.plateau_bad[r] = 0
        improved[r] = True
      else:
        self.bad_evals[r] += 1
        self.stopped[r] = self.bad_evals[r] >= patience
        self.plateau_bad[r] += 1
        if plateau_patience and self.plateau_bad[r] > plateau_patience:
          self.lr_scale[r] *= plateau_factor
          self.plateau_bad[r] = 0
    return improved


def select_value(metrics: dict[str, float], key: str) -> float:
  """The model-selection value: one metric key, or a '+'-joined sum (ABXI: MRR_A + MRR_B)."""
  return float(sum(metrics.get(k, math.nan) for k in key.split("+")))


def warmup_factor(epoch: int, warmup_epochs: int, start_factor: float) -> float:
  """torch LinearLR stepped once per epoch: epoch 1 trains at start_factor, epoch n+1 at 1."""
  if warmup_epochs <= 0:
    return 1.0
  return start_factor + (1.0 - start_factor) * min(epoch - 1, warmup_epochs) / warmup_epochs


@functools.partial(jax.jit, donate_argnums=0)
def set_learning_rates(state: state_lib.TrainState, lrs: jax.Array) -> state_lib.TrainState:
  """Writes per-replica learning rates [R] into the (stacked) optimizer states."""
  opt_state = state.opt_state
  hyper = dict(opt_state.hyperparams, learning_rate=lrs.astype(jnp.float32))
  return state.replace(opt_state=opt_state._replace(hyperparams=hyper))


def learning_rates(base: np.ndarray, epoch: int, tracker: Tracker, train_cfg) -> np.ndarray:
  """float32 [R]: each replica's learning rate for `epoch` (base x warm-up x plateau factor)."""
  warm = warmup_factor(epoch, train_cfg.warmup_epochs, train_cfg.warmup_start_factor)
  return (base * warm * np.asarray(tracker.lr_scale, np.float32)).astype(np.float32)
