"""`validate`: one config's checks, composed from each layer's own, run once before anything runs.

The entry points (orthoalign.main through `train.loop.train_and_evaluate`, orthoalign.evaluate,
the grid expansion, the benchmarks through `train.build.setup`) call `validate` before writing or
tracing anything. It only composes: each section is checked by the layer that reads it.

  sections  every config has data, model, gca, train, eval and sweep (config.dicts)
  model     model.name first: the GCA and model checks depend on it (models)
  data      data.*                                                   (data.load)
  train     train.*, eval.*, the seed / learning-rate / weight-decay sweeps (train.checks)
  gca       gca.*, with the gca.kv values the model supports         (models.gca_checks)
  the model model.*, sweep.model.*, length buckets                   (models, the model's module)
"""

from __future__ import annotations

import ml_collections

from orthoalign import models
from orthoalign.config import dicts
from orthoalign.datasets import load as data_load
from orthoalign.models import gca_checks
from orthoalign.train import checks as train_checks


def validate(config: ml_collections.ConfigDict) -> None:
  """Checks a config (an upgraded one, if it was saved by a run) section by section.

  Raises:
    ConfigError: naming the first invalid key, its value and what is allowed.
  """
  dicts.check_sections(config)
  models.check_name(config)
  data_load.check_config(config)
  train_checks.check_config(config)
  gca_checks.check_config(config, models.gca_kv(config.model.name))
  models.check_config(config)
