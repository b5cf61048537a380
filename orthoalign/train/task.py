"""A baseline bound to a dataset with the arrays the trainer feeds it: the trainer's view of it.

The model (orthoalign/models/baseline.py) knows its windows, init, loss, tables and scores; the
trainer adds what every model shares, here: the evaluation inputs (the model's windows of each
split with the frozen candidates and user groups, inputs/eval_cases.py), the GCA cell names it
reports, and the replica hyperparameters the loss reads (the model's, plus gca.orth_penalty's
weight where the run sets one).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections
import numpy as np

from orthoalign import models
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.inputs import eval_cases
from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib


@dataclasses.dataclass(frozen=True)
class Task:
  """A model and its host arrays.

  Attributes:
    model: the bound baseline (or item_shards' padded view of it).
    train_data: host arrays with a common leading dimension, one row per training sequence.
    eval_data: {"valid"|"test": the model's windows of the split's cases plus "cand" (the frozen
      candidates, target first), extra protocols' candidates and "group/<name>" masks}.
    cell_names: the cells the model reports, e.g. ("gca0_A", "gca0_B"): its GCA cells, then its
      own cross-attentions (Baseline.NATIVE_CELLS).
    cell_labels: {cell name: the name its statistics are reported under}: the cell's domain by
      its dataset name ("gca0_A" -> "gca0_<first domain>"; the same for two-domain data A, B).
    hparams: {name: config value} of the replica hyperparameters the loss reads as arrays.
  """

  model: Any
  train_data: dict[str, np.ndarray]
  eval_data: dict[str, dict[str, np.ndarray]]
  cell_names: tuple[str, ...]
  cell_labels: dict[str, str]
  hparams: dict[str, float]

  @property
  def name(self) -> str:
    return self.model.config.model.name

  @property
  def num_items_a(self) -> int:
    return self.model.ds.num_items_a

  @property
  def num_items_b(self) -> int:
    return self.model.ds.num_items_b

  @property
  def domain_names(self) -> tuple[str, ...]:
    """The dataset's domain names, which the metric keys use ("A", "B" for two-domain data)."""
    return self.model.ds.domain_names

  @property
  def length_buckets(self) -> bool:
    """Whether the model can train in length buckets (models.baseline.LengthBuckets)."""
    return isinstance(self.model, baseline.LengthBuckets)


def bind(ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict) -> Task:
  """Builds `config.model.name`'s baseline on `ds` and assembles its training and eval arrays.

  Raises:
    ConfigError: a config the model cannot be built from on this data (naming the key).
    DataError: inputs the model reads that are malformed.
  """
  model = models.baseline_class(config.model.name)(ds, config)
  return with_arrays(model, config)


def with_arrays(model: baseline.Baseline, config: ml_collections.ConfigDict) -> Task:
  """The Task of a bound model: its training windows, the evaluation inputs, the cells, hparams."""
  hparams, positions = dict(model.hparams), tuple(config.gca.positions)
  if gca_lib.orth_penalties(config):
    hparams[gca_lib.ORTH_PENALTY] = float(config.gca.orth_penalty)
  labels = dict(
    zip(gca_lib.cell_names(positions), gca_lib.cell_names(positions, model.ds.domain_names))
  )
  for name in model.NATIVE_CELLS:
    stem, _, domain = name.rpartition("_")
    index = {"A": 0, "B": 1}.get(domain)
    labels[name] = name if index is None else f"{stem}_{model.ds.domain_names[index]}"
  return Task(
    model=model,
    train_data=model.train_windows(),
    eval_data=eval_cases.eval_inputs(model.ds, config.eval, model.eval_windows),
    cell_names=tuple(labels),
    cell_labels=labels,
    hparams=hparams,
  )
