"""The learning-rate schedule of a run, per replica, on the host.

Linear warm-up (ABXI's torch LinearLR, stepped per epoch) times the reduce-on-plateau factor that
model selection keeps (selection.py, ABXI's ReduceLROnPlateau).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from orthoalign.train import state as state_lib


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


def learning_rates(
  base: np.ndarray, epoch: int, lr_scale: list[float], train_cfg: Any
) -> np.ndarray:
  """float32 [R]: each replica's learning rate for `epoch` (base x warm-up x plateau factor).

  Args:
    base: float32 [R], the replicas' configured learning rates.
    epoch: the epoch about to train, from 1.
    lr_scale: [R] plateau factors (`selection.Selection.lr_scale`).
    train_cfg: the config's `train` section (warmup_epochs, warmup_start_factor).
  """
  warm = warmup_factor(epoch, train_cfg.warmup_epochs, train_cfg.warmup_start_factor)
  return (base * warm * np.asarray(lr_scale, np.float32)).astype(np.float32)
