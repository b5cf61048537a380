"""Model registry: `model.name` -> its module (default_config, validate, build; models/task.py).

A model module defines `default_config()`, `validate(config)` (its own `model.*` checks) and
`build(dataset, config) -> Task`, and may declare `REPLICA_HPARAMS` (its shape-keeping
hyperparameters with their bounds), `GCA_KV` (the `gca.kv` values it supports; default
("other",)) and `check_length_buckets(config)` (it can train in length buckets).
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
from types import ModuleType

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts

_BUILDERS = {
  "abxi": "orthoalign.models.abxi",
  "cdsrnp": "orthoalign.models.cdsrnp",
  "llm4cdsr": "orthoalign.models.llm4cdsr",
  "sasrec": "orthoalign.models.sasrec",
}


def names() -> tuple[str, ...]:
  """The registered `model.name` values, sorted."""
  return tuple(sorted(_BUILDERS))


def replica_hparams(name: str) -> tuple[str, ...]:
  """The shape-keeping `model.<k>` hyperparameters of a model that replicas may vary (loss weights,
  temperatures): the model module's REPLICA_HPARAMS.
  """
  if name not in _BUILDERS:
    return ()
  return tuple(getattr(importlib.import_module(_BUILDERS[name]), "REPLICA_HPARAMS", ()))


def replica_bounds(name: str) -> dict[str, tuple[float | None, bool]]:
  """REPLICA_HPARAMS with the values each may take (dicts.ANY / NON_NEGATIVE / POSITIVE)."""
  if name not in _BUILDERS:
    return {}
  declared = getattr(importlib.import_module(_BUILDERS[name]), "REPLICA_HPARAMS", {})
  return dict(declared) if isinstance(declared, dict) else {k: (None, False) for k in declared}


def default_config(name: str):
  """The `model.*` ConfigDict of a registered model, with its documented defaults.

  Raises:
    ConfigError: an unknown model name.
  """
  if name not in _BUILDERS:
    raise errors.ConfigError(
      f"config key model.name={name!r} is not a known model; valid choices: {list(names())}"
    )
  return importlib.import_module(_BUILDERS[name]).default_config()


def _module(name: str) -> ModuleType:
  return importlib.import_module(_BUILDERS[name])


def check_name(config: ml_collections.ConfigDict) -> None:
  """model.name must be a registered model (checked first: the other checks depend on it)."""
  dicts.choice("model.name", dicts.get(config, "model.name"), names())


def gca_kv(name: str) -> tuple[str, ...]:
  """The `gca.kv` values a registered model supports (its module's GCA_KV; default ("other",))."""
  return tuple(getattr(_module(name), "GCA_KV", ("other",)))


def check_config(config: ml_collections.ConfigDict) -> None:
  """The model's checks: its module's `validate`, its replica sweeps and its length buckets.

  Run after `check_name` (orthoalign.config.validation runs that first).

  Raises:
    ConfigError: naming the key, its value and what the model allows.
  """
  module = _module(config.model.name)
  module.validate(config)
  _check_model_sweeps(config)
  if config.train.length_buckets:
    check = getattr(module, "check_length_buckets", None)
    if check is None:
      raise errors.ConfigError(
        f"config key train.length_buckets={tuple(config.train.length_buckets)}: "
        f"model.name={config.model.name!r} cannot train in length buckets (models that can: "
        f"{[n for n in names() if hasattr(_module(n), 'check_length_buckets')]}); set it to ()"
      )
    check(config)


def _check_model_sweeps(config: ml_collections.ConfigDict) -> None:
  """sweep.model.<k>: only the model's replica hyperparameters, each value within its bounds."""
  dicts.check_section(config, "sweep.model")
  model_lists = config.sweep.model
  bounds = replica_bounds(config.model.name)
  unknown = sorted(set(model_lists) - set(bounds))
  if unknown:
    raise errors.ConfigError(
      f"config key sweep.model.{unknown[0]}: {config.model.name} has no replica "
      f"hyperparameter {unknown[0]!r}; valid: {list(bounds)}"
    )
  for k, bound in bounds.items():
    if k in config.model:
      dicts.check_number(config, f"model.{k}", bound)
    dicts.check_number_list(f"sweep.model.{k}", model_lists.get(k, ()), bound)


def get_builder(name: str) -> Callable:
  """Returns the `build(dataset, config) -> Task` function of a registered model."""
  if name not in _BUILDERS:
    raise ValueError(f"model.name={name!r} is not a known model; choose one of {list(names())}")
  return importlib.import_module(_BUILDERS[name]).build
