"""Train state of one replica and its (vmappable) initialisation."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from orthoalign.models import gca as gca_lib
from orthoalign.train import task as task_lib

Array = jax.Array


@flax.struct.dataclass
class TrainState:
  """Everything that changes during training, for one replica (stacked on axis 0 for R replicas).

  `hparams` holds the replica's values of the model's replica hyperparameters (Task.hparams).
  `rng` is the replica's base key: shuffling and per-step randomness are derived from it with
  fold_in(epoch / step), so a resumed run replays exactly the same randomness.
  """

  step: Array
  params: Any
  opt_state: Any
  rng: Array
  hparams: dict[str, Array] = flax.struct.field(default_factory=dict)


def make_optimizer() -> optax.GradientTransformation:
  """Adam(W) with learning rate and weight decay held in the optimizer state (so replicas differ).

  torch Adam defaults (b1=0.9, b2=0.999, eps=1e-8); weight decay is decoupled (AdamW). With the
  baselines' weight decay 0 this is exactly Adam.
  """
  return optax.inject_hyperparams(optax.adamw)(
    learning_rate=1e-3, weight_decay=0.0, b1=0.9, b2=0.999, eps=1e-8
  )


def init_replica(
  task: task_lib.Task,
  tx: optax.GradientTransformation,
  seed: Array,
  learning_rate: Array,
  weight_decay: Array,
  gate_init: Array,
  hparams: dict[str, Array] | None = None,
) -> TrainState:
  """Initialises one replica from its hyperparameters; vmap over them for R replicas.

  `hparams` overrides Task.hparams (the model's loss weights, temperatures) for this replica.
  """
  key = jax.random.key(seed)
  init_key, train_key = jax.random.split(key)
  params = gca_lib.set_gate_init(task.model.init(init_key), gate_init)
  opt_state = tx.init(params)
  # copy=True: a view of a caller's array inside a donated state would be deleted with it.
  opt_state.hyperparams["learning_rate"] = jnp.array(learning_rate, jnp.float32, copy=True)
  opt_state.hyperparams["weight_decay"] = jnp.array(weight_decay, jnp.float32, copy=True)
  values = {k: jnp.asarray((hparams or {}).get(k, v), jnp.float32) for k, v in task.hparams.items()}
  return TrainState(
    step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, rng=train_key, hparams=values
  )


def count_params(tree: Any) -> int:
  """Number of scalars in the leaves of `tree`."""
  return int(sum(x.size for x in jax.tree.leaves(tree)))
