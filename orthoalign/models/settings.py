"""A baseline's settings written once: a frozen dataclass whose fields are its `model.*` keys.

Each baseline's `config.py` defines `Config`: its fields are the `model.*` keys, their defaults and
the Flax module's arguments (the module takes the `Config` itself), under names shared across
baselines where the concept is shared; upstream's names are in each docstring. The shared names,
so that grids, parameter matching and the analysis are written once:

  width     width of the item embeddings and of the encoder's hidden states
  heads     attention heads of the encoder's self-attention
  blocks    attention blocks of each encoder stack
  ffn       inner width of the blocks' feed-forward layers (0 = width, where a model allows it)
  max_len   positions of an input window (the position table's size)
  dropout   dropout rate of the encoder

This module turns a `Config` class into the `model` section of a ConfigDict and a validated section
back into a `Config`, and refuses keys the model does not have.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

import ml_collections

from orthoalign import errors
from orthoalign.config import upgrade

C = TypeVar("C")

# The `model.*` keys every section has besides its Config's fields: the registry's name, and an
# optional one-line label of what the implementation is.
FIXED = ("name", "label")


def section(cls: type, name: str, label: str = "") -> ml_collections.ConfigDict:
  """The `model` section of a config: `name` (and `label`), then every field of `cls()`."""
  m = ml_collections.ConfigDict()
  m.name = name
  if label:
    m.label = label
  for field in dataclasses.fields(cls):
    m[field.name] = getattr(cls(), field.name)
  return m


def keys(cls: type) -> tuple[str, ...]:
  """The dotted `model.<field>` keys of `cls`, in field order."""
  return tuple(f"model.{f.name}" for f in dataclasses.fields(cls))


def check_keys(cls: type, config: ml_collections.ConfigDict, who: str) -> None:
  """Every key of `config.model` is a field of `cls` (or name/label).

  Raises:
    ConfigError: a key the model does not read, naming its new name when it is an old one.
  """
  fields = {f.name for f in dataclasses.fields(cls)}
  for key in config.model:
    if key in fields or key in FIXED:
      continue
    new = upgrade.RENAMED_MODEL_KEYS.get(key)
    if new in fields:
      raise errors.ConfigError(f"config key model.{key} is now model.{new} (same meaning)")
    raise errors.ConfigError(
      f"config key model.{key}: {who} has no such setting; valid keys: {sorted(fields)}"
    )


def read(cls: type[C], model: ml_collections.ConfigDict) -> C:
  """The `Config` of a validated `model` section, each value cast to its field's type.

  The casts make the result hashable and exact (a Flax module's fields must be): ints stay ints,
  a float given as 1 becomes 1.0, a list becomes a tuple.
  """
  hints = typing.get_type_hints(cls)
  values: dict[str, Any] = {}
  for field in dataclasses.fields(cls):
    kind, value = hints[field.name], model[field.name]
    origin = typing.get_origin(kind) or kind
    values[field.name] = origin(value) if origin in (int, float, bool, tuple) else value
  return cls(**values)
