"""Model registry: `model.name` -> its baseline (a `models.baseline.Baseline` subclass).

A baseline is one folder, `models/<name>/`, whose package exposes `Baseline`; registering it is one
line in _BASELINES below (or `register(name, cls)`, e.g. from a test). Everything else the config
layer and the trainer need (keys and defaults, checks, replica hyperparameters, `gca.kv` values,
length buckets) is read from the class.
"""

from __future__ import annotations

import importlib

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import baseline
from orthoalign.models import settings

_BASELINES: dict[str, str | type[baseline.Baseline]] = {
  "abxi": "orthoalign.models.abxi",
  "c2dsr": "orthoalign.models.c2dsr",
  "cdsrnp": "orthoalign.models.cdsrnp",
  "llm4cdsr": "orthoalign.models.llm4cdsr",
  "merit": "orthoalign.models.merit",
  "sasrec": "orthoalign.models.sasrec",
}


def register(name: str, cls: type[baseline.Baseline]) -> None:
  """Registers a baseline class under `model.name` = `name` (in this process).

  Raises:
    ValueError: `name` is taken, or `cls` is not a Baseline subclass.
  """
  if name in _BASELINES:
    raise ValueError(f"model name {name!r} is already registered")
  if not (isinstance(cls, type) and issubclass(cls, baseline.Baseline)):
    raise ValueError(f"{cls!r} is not a subclass of orthoalign.models.baseline.Baseline")
  _BASELINES[name] = cls


def unregister(name: str) -> None:
  """Removes a baseline registered with `register` (tests clean up with it)."""
  if not isinstance(_BASELINES.get(name), type):
    raise ValueError(f"model name {name!r} was not registered with register()")
  del _BASELINES[name]


def names() -> tuple[str, ...]:
  """The registered `model.name` values, sorted."""
  return tuple(sorted(_BASELINES))


def baseline_class(name: str) -> type[baseline.Baseline]:
  """The Baseline class of a registered model.

  Raises:
    ConfigError: an unknown model name.
  """
  target = _BASELINES.get(name)
  if target is None:
    raise errors.ConfigError(
      f"config key model.name={name!r} is not a known model; valid choices: {list(names())}"
    )
  if isinstance(target, str):
    return importlib.import_module(target).Baseline
  return target


def replica_hparams(name: str) -> tuple[str, ...]:
  """The shape-keeping `model.<k>` hyperparameters of a model that replicas may vary."""
  return tuple(replica_bounds(name))


def replica_bounds(name: str) -> dict[str, tuple]:
  """REPLICA_HPARAMS with the values each may take (dicts.ANY / NON_NEGATIVE / POSITIVE /
  FRACTION).
  """
  if name not in _BASELINES:
    return {}
  return dict(baseline_class(name).REPLICA_HPARAMS)


def default_config(name: str) -> ml_collections.ConfigDict:
  """The `model.*` ConfigDict of a registered model, with its documented defaults.

  Raises:
    ConfigError: an unknown model name.
  """
  cls = baseline_class(name)
  return settings.section(cls.Config, name, cls.LABEL)


def check_name(config: ml_collections.ConfigDict) -> None:
  """model.name must be a registered model (checked first: the other checks depend on it)."""
  dicts.choice("model.name", dicts.get(config, "model.name"), names())


def gca_kv(name: str) -> tuple[str, ...]:
  """The `gca.kv` values a registered model supports (its GCA_KV)."""
  return tuple(baseline_class(name).GCA_KV)


def check_config(config: ml_collections.ConfigDict) -> None:
  """The model's checks: its `validate`, its replica sweeps and its length buckets.

  Run after `check_name` (orthoalign.config.validation runs that first).

  Raises:
    ConfigError: naming the key, its value and what the model allows.
  """
  cls = baseline_class(config.model.name)
  cls.validate(config)
  _check_model_sweeps(config)
  if tuple(config.sweep.gate_inits) and not cls.learned_gates(config):
    raise errors.ConfigError(
      f"config key sweep.gate_inits={tuple(config.sweep.gate_inits)}: the runs have no learned "
      "gate to initialise (gca.positions=() configures no GCA cell); set e.g. "
      "--config.gca.positions='(0,)'"
    )
  if config.train.length_buckets:
    if not issubclass(cls, baseline.LengthBuckets):
      able = [n for n in names() if issubclass(baseline_class(n), baseline.LengthBuckets)]
      raise errors.ConfigError(
        f"config key train.length_buckets={tuple(config.train.length_buckets)}: "
        f"model.name={config.model.name!r} cannot train in length buckets (models that can: "
        f"{able}); set it to ()"
      )
    cls.check_length_buckets(config)


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
