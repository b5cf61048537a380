"""Config dict helpers: get, flatten, diff, parse, and the `check_*` helpers of every layer.

A leaf: it imports nothing of orthoalign but `errors`, so every layer (data, models, train) can
use it without an import cycle. The checks of each section live in its layer (see
`orthoalign.config.validation`); each raises `errors.ConfigError` naming the key, its value and
what is allowed.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

from absl import flags
import ml_collections
from ml_collections.config_flags import tuple_parser

from orthoalign import errors

ConfigError = errors.ConfigError
# The sections every config has (configs/base.py).
SECTIONS = ("data", "model", "gca", "train", "eval", "sweep")

# How a `--config.<key>=text` flag parses its text, by the type of the key's current value
# (ml_collections' own parsers); other types keep the text. `parse_value` applies them.
_PARSERS: dict[type, flags.ArgumentParser] = {
  bool: flags.BooleanParser(),
  int: flags.IntegerParser(),
  float: flags.FloatParser(),
  tuple: tuple_parser.TupleParser(),
  list: tuple_parser.TupleParser(),
}


def is_finite_number(value: Any) -> bool:
  """True for an int or float (not a bool) that is neither NaN nor infinite."""
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# What a number may be: (its lowest value or None for none, whether that value is excluded[, its
# highest value, included]).
ANY = (None, False)
NON_NEGATIVE = (0.0, False)
POSITIVE = (0.0, True)
FRACTION = (0.0, False, 1.0)  # a loss weight in [0, 1]
SEED_LIMIT = 2**32  # numpy's and JAX's seeds are uint32


def _describe(bound: tuple, integer: bool) -> str:
  low, open_low, *high = bound
  kind = "an int" if integer else "a finite number"
  if high and low is not None and not open_low:
    return f"{kind} in [{low:g}, {high[0]:g}]"
  text = kind if low is None else f"{kind} {'>' if open_low else '>='} {low:g}"
  return text + (f" and <= {high[0]:g}" if high else "")


def _number_ok(value: Any, bound: tuple, integer: bool) -> bool:
  if integer and (isinstance(value, bool) or not isinstance(value, int)):
    return False
  if not is_finite_number(value):
    return False
  low, open_low, *high = bound
  if high and value > high[0]:
    return False
  return low is None or value > low or (value == low and not open_low)


def check_number(config: ml_collections.ConfigDict, key: str, bound: tuple = ANY) -> None:
  """The value at dotted `key` must be a finite number within `bound` (ANY, NON_NEGATIVE, POSITIVE,
  FRACTION).

  Raises:
    ConfigError: naming the key, the value and what it must be.
  """
  value = get(config, key)
  if not _number_ok(value, bound, False):
    raise ConfigError(f"config key {key}={value!r} must be {_describe(bound, False)}")


def check_number_list(
  key: str,
  values: Any,
  bound: tuple = ANY,
  *,
  integer: bool = False,
  high: int | None = None,
  at_least: int = 0,
  what: str = "",
) -> None:
  """Every element of a list-valued key is a number within `bound` (and below `high`), no value
  twice (two equal values of a sweep list train identical replicas), at least `at_least` of them.

  Args:
    key: the dotted key, for the message.
    values: its value (a tuple or list).
    bound: ANY, NON_NEGATIVE, POSITIVE or FRACTION.
    integer: the elements must be ints.
    high: an exclusive upper limit.
    at_least: the fewest elements.
    what: what the values are, for the message ("learning rates").

  Raises:
    ConfigError: naming the key, the offending element and what every element must be.
  """
  must = _describe(bound, integer) + ("" if high is None else f" below {high}")
  example = f"; {what}" if what else ""
  if not isinstance(values, (tuple, list)):
    raise ConfigError(f"config key {key}={values!r} must be a tuple, each element {must}{example}")
  for i, v in enumerate(values):
    if not _number_ok(v, bound, integer) or (high is not None and v >= high):
      raise ConfigError(
        f"config key {key}={tuple(values)!r}: element {i} ({v!r}) is not {must}{example}"
      )
  twice = sorted({v for v in values if list(values).count(v) > 1}, key=str)
  if twice:
    raise ConfigError(
      f"config key {key}={tuple(values)!r} lists {twice[0]!r} twice; replicas with "
      "equal values would train the same model"
    )
  if len(values) < at_least:
    raise ConfigError(f"config key {key}={tuple(values)!r} must list at least {at_least} value(s)")


def choice(key: str, value: Any, choices: tuple[Any, ...]) -> None:
  """`value` of dotted `key` must be one of `choices`; ConfigError listing them otherwise."""
  if value not in choices:
    raise ConfigError(f"config key {key}={value!r} is invalid; valid choices: {list(choices)}")


def check_sections(config: ml_collections.ConfigDict, where: str = "") -> None:
  """The config has every section of SECTIONS, each a ConfigDict; ConfigError naming one if not."""
  for key in SECTIONS:
    if key not in config:
      raise ConfigError(
        f"{where}the config has no section {key!r}; start from "
        "configs/base.py, which has every section"
      )
    check_section(config, key, where)


def check_section(config: ml_collections.ConfigDict, key: str, where: str = "") -> None:
  """The value at dotted `key` exists and is a section (a ConfigDict of keys).

  Raises:
    ConfigError: naming the key (and `where`) when it is missing or holds a plain value.
  """
  value = get(config, key, where)
  if not isinstance(value, ml_collections.ConfigDict):
    raise ConfigError(
      f"{where}config key {key}={value!r} must be a section of keys (see configs/base.py)"
    )


def check_fraction(config: ml_collections.ConfigDict, key: str) -> None:
  """A dropout rate: a number in [0, 1)."""
  value = get(config, key)
  if not is_finite_number(value) or not 0.0 <= value < 1.0:
    raise ConfigError(f"config key {key}={value!r} must be a number in [0, 1)")


def require(
  config: ml_collections.ConfigDict, keys: tuple[str, ...], who: str, start: str = ""
) -> None:
  """Raises ConfigError naming the first of `keys` (dotted) missing in `config` (`who` reads it).

  Args:
    config: the config.
    keys: dotted keys.
    who: what reads them, for the message ("LLM4CDSR", "the trainer").
    start: the config file to start from (default: `configs/<who, lower case>.py`).
  """
  start = start or f"that model's config file, e.g. configs/{who.lower()}.py"
  for key in keys:
    try:
      parent_of(config, key)
    except ConfigError:
      raise ConfigError(
        f"config key {key} is missing; {who} reads it (start from {start})"
      ) from None


def check_int(
  config: ml_collections.ConfigDict, key: str, low: int, high: int | None = None
) -> int:
  """The int at `key`, which must lie in [low, high]; ConfigError naming the key otherwise."""
  value = get(config, key)
  if (
    isinstance(value, bool)
    or not isinstance(value, int)
    or value < low
    or (high is not None and value > high)
  ):
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ConfigError(f"config key {key}={value!r} must be an int {bound}")
  return value


def check_divides(config: ml_collections.ConfigDict, key: str, width_key: str) -> None:
  """Attention heads must divide the width they split."""
  if get(config, width_key) % get(config, key):
    raise ConfigError(
      f"config key {key}={get(config, key)} must divide {width_key}="
      f"{get(config, width_key)} (each head gets an equal share of the width)"
    )


def get(config: ml_collections.ConfigDict, dotted: str, where: str = "") -> Any:
  """The value at dotted key `dotted` ("train.max_epochs"), which must exist.

  Raises:
    ConfigError: an unknown key, naming the valid keys where it goes wrong (see `parent_of`).
  """
  return parent_of(config, dotted, where)[dotted.rsplit(".", 1)[-1]]


def parent_of(
  config: ml_collections.ConfigDict, key: str, where: str = ""
) -> ml_collections.ConfigDict:
  """The ConfigDict holding dotted `key`'s last part, which must exist.

  Raises:
    ConfigError: an unknown key, naming the valid keys at the level where it goes wrong (and
      `where`, e.g. the flag or file that named it).
  """
  node: Any = config
  parts = key.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      parent = ".".join(parts[:depth]) or "<root>"
      valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      raise ConfigError(f"unknown config key {key!r}{where}; valid keys under {parent}: {valid}")
    if depth < len(parts) - 1:
      node = node[part]
  return node


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}; tuples become lists (JSON-friendly)."""
  out: dict[str, Any] = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, key + "."))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def differences(
  old: Mapping[str, Any], new: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> list[str]:
  """Dotted keys whose values differ between two flattened configs, apart from `ignore`.

  Both are compared as they are: upgrade a saved config first (`orthoalign.config.upgrade`).
  """
  keys = sorted(set(old) | set(new))
  return [k for k in keys if k not in ignore and old.get(k) != new.get(k)]


def parse_value(key: str, text: str, default: Any, where: str = "") -> Any:
  """Command-line `text` as a value of the type of `default`, `key`'s current value.

  Parses the way ml_collections parses `--config.<key>=text`: bools true/false/t/f/1/0 (any case),
  ints and floats as Python numbers (ints also 0x..), tuples as Python literals ('(0,1)'; a single
  value becomes a 1-tuple; a list default gets a list), anything else as the text itself.

  Raises:
    ConfigError: the text does not parse as that type; names the key, the text, the type and the
      default (and `where`, e.g. the flag that gave it).
  """
  parser = _PARSERS.get(type(default))
  if parser is None:
    return text
  try:
    value = parser.parse(text)
  except (TypeError, ValueError):
    raise ConfigError(
      f"config key {key}={text!r}{where}: expected a value of type "
      f"{type(default).__name__} (default {default!r})"
    ) from None
  return list(value) if isinstance(default, list) else value
