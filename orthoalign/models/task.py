"""What a baseline hands to the generic trainer: a `Task`.

A model file (e.g. `models/llm4cdsr.py`) turns a dataset + config into a Task: pure functions for
init / loss / evaluation scores plus the host arrays they read. The trainer in `orthoalign.train`
knows nothing model-specific: it stacks replicas, shards batches, scans epochs and turns eval
scores into ranks, metrics and alignment statistics.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import flax.struct
import jax
import numpy as np

Array = jax.Array


@flax.struct.dataclass
class EvalOutputs:
  """Per-batch evaluation outputs of a model.

  Attributes:
    sampled_scores: [B, 1+N] scores of the frozen candidates, column 0 = the target.
    full_scores: [B, nA+nB+1] scores of every item by global id (the trainer masks the catalog down
      to the target's domain, minus history and the target).
    cells: {cell name: intermediates of a GCA cell} (see models/gca.py).
  """
  sampled_scores: Array
  full_scores: Array
  cells: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Task:
  """A baseline bound to a dataset.

  Attributes:
    name: model name (`model.name`).
    init_params: rng -> trainable params of one replica.
    frozen: non-trainable variable collections shared by every replica (e.g. frozen LLM tables).
    train_data: host arrays with a common leading dimension (one row per training sequence).
    eval_data: {"valid"|"test": host arrays with a leading dimension of eval cases; they must hold
      "domain" (0 = A, 1 = B), "target" (global id) and "hist" (sorted items excluded from full ranking)}.
    loss_fn: (params, frozen, batch, rng, hparams=None) -> (loss, metrics); batch["row_valid"] masks
      padded rows; `hparams` holds this replica's values of the model's replica hyperparameters
      (scalars, traced under vmap), None = the config's values (`hparams` below).
    tables_fn: (params, frozen) -> whatever eval_fn needs once per evaluation (e.g. item tables).
    eval_fn: (params, frozen, tables, batch) -> EvalOutputs.
    num_items_a, num_items_b: catalog sizes.
    cell_names: GCA cells the model reports, e.g. ("gca0_A", "gca0_B").
    hparams: {name: config value} of the shape-keeping hyperparameters the loss reads as arrays
      (e.g. LLM4CDSR's loss weights), so that replicas of one program may differ in them.
  """
  name: str
  init_params: Callable[[Array], Any]
  frozen: Any
  train_data: dict[str, np.ndarray]
  eval_data: dict[str, dict[str, np.ndarray]]
  loss_fn: Callable[..., tuple[Array, dict[str, Array]]]
  tables_fn: Callable[..., Any]
  eval_fn: Callable[..., EvalOutputs]
  num_items_a: int
  num_items_b: int
  cell_names: tuple[str, ...] = ()
  hparams: dict[str, float] = dataclasses.field(default_factory=dict)
