"""Replicas: the vmappable hyperparameters of one run, stacked on a leading axis.

`config.sweep` lists values for seed, learning rate, weight decay and GCA gate init, and
`config.sweep.model.<k>` for each shape-keeping model hyperparameter the model declares
(`REPLICA_HPARAMS` in its module: LLM4CDSR's loss weights alpha, beta and temperatures tau, tau_reg;
ABXI's InfoNCE temperature temp). The run trains R = (product of the list lengths) models in one
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
from orthoalign.models import gca as gca_lib

# Replica axes every model has: config key -> the sweep list that makes it a replica axis.
COMMON_AXES = {
  "seed": "sweep.seeds",
  "train.learning_rate": "sweep.learning_rates",
  "train.weight_decay": "sweep.weight_decays",
  "gca.gate_init": "sweep.gate_inits",
  "gca.orth_penalty": "sweep.orth_penalties",
}

# sweep key -> (replica field, config fallback path)
SWEEPABLE = {
  "seeds": ("seed", None),
  "learning_rates": ("learning_rate", "train.learning_rate"),
  "weight_decays": ("weight_decay", "train.weight_decay"),
  "gate_inits": ("gate_init", "gca.gate_init"),
}


def replica_axes(config: ml_collections.ConfigDict) -> dict[str, str]:
  """Config keys that can be replicas of one compiled program -> their sweep list's dotted path.

  The common axes (seed, learning rate, weight decay, gate init) plus, for each shape-keeping model
  hyperparameter the model declares (e.g. LLM4CDSR's loss weights), `model.<k>` ->
  `sweep.model.<k>`.
  Every other key changes the compiled program: a grid makes it a separate run.
  """
  axes = dict(COMMON_AXES)
  model_lists = config.sweep.model
  for k in models.replica_hparams(config.model.name):
    if k in model_lists:
      axes[f"model.{k}"] = f"sweep.model.{k}"
  return axes


def replicas(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """The replicas of a run, in row-major order of `config.sweep`'s lists."""
  axes = []
  for key, (field, fallback) in SWEEPABLE.items():
    values = tuple(config.sweep[key])
    if not values:
      if fallback is None:
        raise ValueError(f"sweep.{key} must list at least one value")
      values = (dicts.get(config, fallback),)
    axes.append((field, values))
  penalties = gca_lib.orth_penalties(config)
  if penalties:  # only then: a run without the penalty keeps its state's structure (checkpoints)
    axes.append(("gca.orth_penalty", penalties))
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
