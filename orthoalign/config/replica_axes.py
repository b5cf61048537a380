"""The replica axes, written once: the settings replicas of one compiled program may vary.

A run trains R replicas in one program (orthoalign/sweep.py): the product of the `sweep.*` lists
below, plus `sweep.model.<k>` for each shape-keeping hyperparameter a model declares
(`REPLICA_HPARAMS` in its package). An empty list means the single value of the setting itself.
Every reader of a replica axis (the sweep, the trainer's and the GCA cell's checks, the
benchmarks, the analysis) takes it from here.

Imports nothing of orthoalign: the table is data.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Axis:
  """One replica axis every model has.

  Attributes:
    key: the setting's dotted config key ("seed": only the list exists).
    sweep: the dotted key of the list that makes it an axis.
    field: its name in a replica's record (results rows, the train state's hyperparameters).
    owner: the layer that checks the list: "train" (train/checks.py) or "gca" (gca_checks.py).
  """

  key: str
  sweep: str
  field: str
  owner: str


COMMON = (
  Axis("seed", "sweep.seeds", "seed", "train"),
  Axis("train.learning_rate", "sweep.learning_rates", "learning_rate", "train"),
  Axis("train.weight_decay", "sweep.weight_decays", "weight_decay", "train"),
  Axis("gca.gate_init", "sweep.gate_inits", "gate_init", "gca"),
  # Only an axis where a run sets a penalty (orthoalign.models.gca.orth_penalties): a run without
  # one keeps its train state's structure, and so its checkpoints.
  Axis("gca.orth_penalty", "sweep.orth_penalties", "gca.orth_penalty", "gca"),
)

# The section of the per-model lists: sweep.model.<k> varies model.<k>.
MODEL_SECTION = "sweep.model"


def sweep_keys(owner: str) -> tuple[str, ...]:
  """The `sweep.*` lists checked by `owner` ("train" or "gca")."""
  return tuple(a.sweep for a in COMMON if a.owner == owner)


def one_replica(sweep: Any, seeds: tuple[int, ...] = (0,)) -> None:
  """Empties every replica list of a `sweep` section in place but the seeds, set to `seeds`.

  The benchmarks use it: a timed run has exactly len(seeds) replicas whatever the config swept.
  """
  for axis in COMMON:
    sweep[axis.sweep.split(".", 1)[1]] = tuple(seeds) if axis.field == "seed" else ()
  model_lists = sweep[MODEL_SECTION.split(".", 1)[1]]
  for k in list(model_lists):
    model_lists[k] = ()
