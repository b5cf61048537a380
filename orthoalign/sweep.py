"""Replicas: the vmappable hyperparameters of one run, stacked on a leading axis.

`config.sweep` lists values for seed, learning rate, weight decay and GCA gate init; the run trains
R = (product of the list lengths) models in one compiled program. An empty list means "use the
single value from `train.*` / `gca.gate_init`". Shape-changing settings (width, depth, GCA
positions) are not here: they are separate runs.
"""

from __future__ import annotations

import itertools
from typing import Any

import ml_collections
import numpy as np

# sweep key -> (replica field, config fallback path)
SWEEPABLE = {
    "seeds": ("seed", None),
    "learning_rates": ("learning_rate", "train.learning_rate"),
    "weight_decays": ("weight_decay", "train.weight_decay"),
    "gate_inits": ("gate_init", "gca.gate_init"),
}


def _get(config: ml_collections.ConfigDict, path: str) -> Any:
  node = config
  for part in path.split("."):
    node = node[part]
  return node


def replicas(config: ml_collections.ConfigDict) -> list[dict[str, Any]]:
  """The replicas of a run, in row-major order of `config.sweep`'s lists."""
  axes = []
  for key, (field, fallback) in SWEEPABLE.items():
    values = tuple(config.sweep.get(key) or ())
    if not values:
      if fallback is None:
        raise ValueError(f"sweep.{key} must list at least one value")
      values = (_get(config, fallback),)
    axes.append((field, values))
  return [dict(zip([f for f, _ in axes], combo))
          for combo in itertools.product(*[v for _, v in axes])]


def stacked(reps: list[dict[str, Any]]) -> dict[str, np.ndarray]:
  """Replica hyperparameters as arrays with a leading replica axis."""
  return {"seed": np.asarray([r["seed"] for r in reps], np.uint32),
          "learning_rate": np.asarray([r["learning_rate"] for r in reps], np.float32),
          "weight_decay": np.asarray([r["weight_decay"] for r in reps], np.float32),
          "gate_init": np.asarray([r["gate_init"] for r in reps], np.float32)}
