"""Replicas: the vmappable hyperparameters of one run, stacked on a leading axis.

`config.sweep` lists values for the common axes (config/replica_axes.py: seed, learning rate,
weight decay, GCA gate init and orthogonality penalty), and `config.sweep.model.<k>` for each
shape-keeping model hyperparameter the model declares (its Baseline's `REPLICA_HPARAMS`:
LLM4CDSR's loss weights alpha, beta and temperatures tau, tau_reg; ABXI's InfoNCE temperature
temp; CDSRNP's KL weight beta). The run trains R = (product of the list lengths) models in one
compiled program. An empty list means "use the single value from `train.*` / `gca.gate_init` /
`model.<k>`". Shape-changing settings (width, depth, GCA positions) are not here: they are separate
runs.
"""

from __future__ import annotations

import itertools
from typing import Any

import ml_collections
import numpy as np

from orthoalign import models
from orthoalign.config import dicts
from orthoalign.config import replica_axes as axis_table
from orthoalign.ctr import config as ctr_config
from orthoalign.models import gca as gca_lib


def replica_axes(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Config keys that can be replicas of one compiled program -> their sweep list's dotted path.

  The common axes (seed, learning rate, weight decay, gate init) plus, for each shape-keeping model
  hyperparameter the model declares (e.g. LLM4CDSR's loss weights), `model.<k>` ->
  `sweep.model.<k>`.
  Every other key changes the compiled program: a grid makes it a separate run.
  """
  if ctr_config.is_ctr(config):  # click prediction: seeds are its replicas
    return {"seed": "sweep.seeds"}
  axes = {a.key: a.sweep for a in axis_table.COMMON}  # every model's (config/replica_axes.py)
  model_lists = config.sweep.model
  for k in models.replica_hparams(config.model.name):
    if k in model_lists:
      axes[f"model.{k}"] = f"sweep.model.{k}"
  return axes


def replicas(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """The replicas of a run, in row-major order of `config.sweep`'s lists."""
  axes = []
  for axis in axis_table.COMMON:
    if axis.key == "gca.orth_penalty":
      penalties = gca_lib.orth_penalties(config)
      if penalties:  # only then: a run without one keeps its state's structure (checkpoints)
        axes.append((axis.field, penalties))
      continue
    values = tuple(dicts.get(config, axis.sweep))
    if not values:
      if axis.key == "seed":
        raise ValueError(f"{axis.sweep} must list at least one value")
      values = (dicts.get(config, axis.key),)
    axes.append((axis.field, values))
  model_lists = config.sweep.model  # checked by models.check_config
  for k in models.replica_hparams(config.model.name):
    values = tuple(model_lists.get(k, ())) or (dicts.get(config, f"model.{k}"),)
    axes.append((f"model.{k}", tuple(float(v) for v in values)))
  return [
    dict(zip([f for f, _ in axes], combo)) for combo in itertools.product(*[v for _, v in axes])
  ]


def stacked(reps: list[dict[str, Any]]) -> dict[str, np.ndarray]:
  """Replica hyperparameters as arrays with a leading replica axis ("model": {k: [R]}).

  gca.orth_penalty, where the run sets one, goes with the model's hyperparameters (it enters the
  model's loss, `gca.orth_penalty_loss`) as "model": {gca.ORTH_PENALTY: [R]}.
  """
  model_keys = [k for k in reps[0] if k.startswith("model.")]
  model = {k[len("model.") :]: np.asarray([r[k] for r in reps], np.float32) for k in model_keys}
  if "gca.orth_penalty" in reps[0]:
    model[gca_lib.ORTH_PENALTY] = np.asarray([r["gca.orth_penalty"] for r in reps], np.float32)
  return {
    "seed": np.asarray([r["seed"] for r in reps], np.uint32),
    "learning_rate": np.asarray([r["learning_rate"] for r in reps], np.float32),
    "weight_decay": np.asarray([r["weight_decay"] for r in reps], np.float32),
    "gate_init": np.asarray([r["gate_init"] for r in reps], np.float32),
    "model": model,
  }
