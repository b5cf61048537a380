"""Model selection of a run, per replica, on the host: early stopping and the learning-rate
plateau on the validation metric (`train.select_metric`).

The `Selection` is checkpointed as JSON with the run, so a resumed run keeps selecting as the
uninterrupted one would. The learning-rate schedule that reads its `lr_scale` is in schedule.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass
class Selection:
  """Per replica: the best validation value so far, and what follows from it.

  Attributes:
    best_value: the best selection value (`select_value`) of each replica.
    best_epoch: the epoch of that value; 0 before the first validation.
    bad_evals: validations since the last improvement (early stopping counts them).
    stopped: whether the replica stopped early; it then trains on but is never selected again.
    best_metrics: the validation metrics ("valid/...", "align/...") at the best epoch.
    lr_scale: the reduce-on-plateau factor of the replica's learning rate.
    plateau_bad: validations since the last improvement or learning-rate reduction.
  """

  best_value: list[float]
  best_epoch: list[int]
  bad_evals: list[int]
  stopped: list[bool]
  best_metrics: list[dict[str, float]]
  lr_scale: list[float]
  plateau_bad: list[int]

  @classmethod
  def new(cls, replicas: int) -> Selection:
    r = replicas
    return cls(
      [-math.inf] * r, [0] * r, [0] * r, [False] * r, [{} for _ in range(r)], [1.0] * r, [0] * r
    )

  @property
  def all_stopped(self) -> bool:
    return all(self.stopped)

  def update(
    self,
    epoch: int,
    metrics: list[dict[str, float]],
    key: str,
    patience: int,
    plateau_patience: int = 0,
    plateau_factor: float = 1.0,
  ) -> np.ndarray:
    """Records one validation; returns bool [R], True where the replica improved.

    Early stopping: a replica stops after `patience` validations without improvement. Reduce on
    plateau (ABXI's use of torch's ReduceLROnPlateau, stepped with "improved or not"): after more
    than `plateau_patience` validations without improvement the replica's learning rate is
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
