"""Model registry: `model.name` -> its module (default_config, validate, build; models/task.py)."""

from __future__ import annotations

from collections.abc import Callable
import importlib

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
  """REPLICA_HPARAMS with the values each may take (config_lib.ANY / NON_NEGATIVE / POSITIVE)."""
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
    from orthoalign import config_lib  # config_lib imports this registry

    raise config_lib.ConfigError(
      f"config key model.name={name!r} is not a known model; valid choices: {list(names())}"
    )
  return importlib.import_module(_BUILDERS[name]).default_config()


def validate(config) -> None:
  """The model's own config checks (`validate(config)` in its module), before anything is traced.

  Raises:
    ConfigError: naming the key, its value and what the model allows.
  """
  if config.model.name in _BUILDERS:
    check = getattr(importlib.import_module(_BUILDERS[config.model.name]), "validate", None)
    if check is not None:
      check(config)


def get_builder(name: str) -> Callable:
  """Returns the `build(dataset, config) -> Task` function of a registered model."""
  if name not in _BUILDERS:
    raise ValueError(f"model.name={name!r} is not a known model; choose one of {list(names())}")
  return importlib.import_module(_BUILDERS[name]).build
