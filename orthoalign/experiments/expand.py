r"""Grid files -> named programs: each Point is one workdir with its overrides and replica lists.

A grid file is a config file (its `get_config()` is what `orthoalign.main --config=` loads) that
also has `get_grid()` (or `get_grid(config)`, which receives the base config with the runner's
`--set` values applied, for a grid that reads the data), returning one dict of axes, a list of
such dicts (the grid is the union of each dict's product), or `Grid(blocks=[...], names={...})` to
give axes short names:

  def get_grid():
    return Grid(blocks=[{
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},   # labelled values
        "model.width": [64, 128],                                     # labels "64", "128"
        "seed": [0, 1, 2],                                                  # replicas of each run
    }], names={"gca.positions": "gca", "model.width": "hidden"})

Axes whose key `orthoalign.sweep.replica_axes` lists (seed, learning rate, ...) become the replica
lists of every program; the others are run axes: one program per combination, named from their
labels in declaration order (`gca=early_hidden=64`; "main" if there is none). A scalar instead of a
list sets that key in every run without naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import importlib.util
import inspect
import itertools
import os
import re
import sys
import traceback
import types
from typing import Any

import ml_collections

from orthoalign import errors
from orthoalign import sweep
from orthoalign.config import dicts
from orthoalign.config import validation
from orthoalign.ctr import config as ctr_config

ConfigError = errors.ConfigError
# Value types ml_collections can parse back from a `--config.<key>=<value>` flag.
FLAG_TYPES = (bool, int, float, str, tuple)
MAX_NAME_LEN = 200  # run names are folder names (255 bytes at most)


@dataclasses.dataclass(frozen=True)
class Grid:
  """A grid: the union of the products of `blocks`; `names` maps config keys to short axis names.

  `meta` is free-form JSON-able information written into grid.json (e.g. the parameter matching
  of a scaling grid: targets and achieved counts).
  """

  blocks: Sequence[Mapping[str, Any]]
  names: Mapping[str, str] = dataclasses.field(default_factory=dict)
  meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Point:
  """One program of a grid (one workdir).

  Attributes:
    name: run name = workdir folder name, from the run axes' labels.
    overrides: dotted config key -> value, for every run axis and fixed setting.
    replicas: dotted sweep path (e.g. "sweep.seeds") -> the tuple of values trained together.
    axes: short axis name -> label, for the run axes.
    config: the base config with overrides and replicas applied (validated).
  """

  name: str
  overrides: dict[str, Any]
  replicas: dict[str, tuple[Any, ...]]
  axes: dict[str, str]
  config: ml_collections.ConfigDict = dataclasses.field(compare=False, repr=False)

  def flags(self) -> dict[str, Any]:
    """Every config key this point sets (overrides, then replica lists)."""
    return {**self.overrides, **self.replicas}


def sanitise(text: str) -> str:
  """Keeps a label usable in a folder name: other characters become '_'."""
  return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def label(value: Any) -> str:
  """Compact readable label of an axis value: 64, 0.001, tanh, 0-1-2, none (empty tuple)."""
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (int, float)):
    return sanitise(repr(value))  # repr: the shortest form that round-trips (1e-05)
  if isinstance(value, (tuple, list)):
    return "-".join(label(v) for v in value) or "none"
  if value is None:
    return "none"
  return sanitise(str(value)) or "empty"


def load_module(path: str) -> types.ModuleType:
  """Imports a grid file by path (cwd on sys.path, as `from configs import base` needs)."""
  if not os.path.isfile(path):
    what = "is a folder, not a grid file" if os.path.isdir(path) else "does not exist"
    raise ConfigError(f"grid file {path!r} {what}")
  if os.getcwd() not in sys.path:
    sys.path.insert(0, os.getcwd())
  spec = importlib.util.spec_from_file_location("_orthoalign_grid", path)
  if spec is None or not path.endswith(".py"):
    raise ConfigError(
      f"grid file {path!r} is not a Python file with get_config() and get_grid(), "
      "e.g. configs/grids/synthetic_table1_llm4cdsr.py"
    )
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise ConfigError(f"grid file {path}{_where(e, path)}: {type(e).__name__}: {e}") from e
  for fn in ("get_config", "get_grid"):
    if not callable(getattr(module, fn, None)):
      raise ConfigError(
        f"grid file {path} has no {fn}(); a grid file defines get_config() (the "
        "base config) and get_grid() (the axes)"
      )
  return module


def _where(error: BaseException, path: str) -> str:
  """', line N' of the innermost frame in the grid file, so a user's mistake points at its line."""
  lines = [
    f.lineno
    for f in traceback.extract_tb(error.__traceback__)
    if os.path.abspath(f.filename) == os.path.abspath(path)
  ]
  return f", line {lines[-1]}" if lines else ""


def _call(module: types.ModuleType, fn: str, path: str, *args: Any) -> Any:
  try:
    return getattr(module, fn)(*args)
  except ConfigError:
    raise
  except Exception as e:
    raise ConfigError(
      f"grid file {path}{_where(e, path)}: {fn}() raised {type(e).__name__}: {e}"
    ) from e


def _blocks(grid: Any, path: str) -> tuple[list[Mapping[str, Any]], dict[str, str]]:
  if isinstance(grid, Grid):
    blocks, names = list(grid.blocks), dict(grid.names)
  elif isinstance(grid, Mapping):
    blocks, names = [grid], {}
  elif isinstance(grid, (list, tuple)):
    blocks, names = list(grid), {}
  else:
    raise ConfigError(
      f"grid file {path}: get_grid() returned a {type(grid).__name__}; expected a "
      "dict of axes, a list of such dicts, or expand.Grid(blocks=..., names=...)"
    )
  for i, block in enumerate(blocks):
    if not isinstance(block, Mapping):
      raise ConfigError(
        f"grid file {path}: block {i} of get_grid() is a {type(block).__name__}; "
        "expected a dict {config key: values}"
      )
  return blocks, names


def _choices(key: str, spec: Any, path: str) -> tuple[list[tuple[str, Any]], bool]:
  """An axis' (label, value) pairs, and whether it names runs (a scalar is a fixed setting)."""
  if isinstance(spec, Mapping):
    pairs = [(sanitise(str(k)), v) for k, v in spec.items()]
  elif isinstance(spec, (list, tuple)):
    pairs = [(label(v), v) for v in spec]
  else:
    return [(label(spec), spec)], False
  if not pairs:
    raise ConfigError(f"grid file {path}: axis {key!r} has no values; give at least one")
  return pairs, True


def _set(config: ml_collections.ConfigDict, key: str, value: Any, path: str) -> Any:
  """Sets a dotted key that must exist; returns the value as stored (lists become tuples)."""
  try:
    node = dicts.parent_of(config, key)
  except ConfigError as e:
    raise ConfigError(f"grid file {path}: {e}") from None
  parts = key.split(".")
  default = node[parts[-1]]
  if not isinstance(default, FLAG_TYPES):
    raise ConfigError(
      f"grid file {path}: config key {key!r} is a {type(default).__name__}; a grid "
      "can only set keys whose default is a bool, int, float, str or tuple (the "
      "types ml_collections parses from --config flags)"
    )
  expected = (
    f"grid file {path}: config key {key}={value!r}: expected a value of type "
    f"{type(default).__name__} like its default {default!r}"
  )
  if isinstance(value, bool) != isinstance(default, bool):  # ConfigDict stores True in an int key
    raise ConfigError(expected)
  try:
    node[parts[-1]] = tuple(value) if isinstance(value, list) else value
  except (TypeError, ValueError) as e:
    raise ConfigError(expected) from e
  return node[parts[-1]]  # as stored: an int given for a float key is a float


def _point(
  base: ml_collections.ConfigDict,
  overrides: dict[str, Any],
  replicas: dict[str, tuple[Any, ...]],
  axes: dict[str, str],
  path: str,
) -> Point:
  name = "_".join(f"{k}={v}" for k, v in axes.items()) or "main"
  if len(name) > MAX_NAME_LEN:
    raise ConfigError(
      f"grid file {path}: run name {name[:60]}... is {len(name)} characters; give "
      "the axes shorter labels (dict values) or short names (Grid(names=...))"
    )
  config = base.copy_and_resolve_references()
  overrides = {k: _set(config, k, v, path) for k, v in overrides.items()}
  replicas = {k: _set(config, k, v, path) for k, v in replicas.items()}
  try:
    if ctr_config.is_ctr(config):  # click prediction: its own keys and checks
      ctr_config.check_config(config)
    else:
      validation.validate(config)
  except ConfigError as e:
    raise ConfigError(f"grid file {path}, run {name}: {e}") from e
  return Point(name, overrides, replicas, axes, config)


def expand(path: str) -> list[Point]:
  """Expands a grid file into its programs, in declaration order, each config validated.

  Raises:
    ConfigError: the file or its get_grid() is malformed, a key is unknown or gets a value of the
      wrong type, an expanded config is invalid, or two different points get the same name.
  """
  return expand_with_meta(path)[0]


def parse_sets(base: ml_collections.ConfigDict, sets: Sequence[str], path: str) -> dict[str, Any]:
  """`KEY=VALUE` strings (the grid CLI's --set) -> {key: value typed like the key's default}.

  Parsed as `--config.<key>` flags are (dicts.parse_value): tuples as Python literals
  ('(0,1)'),
  bools true/false, everything else as its default's type.

  Raises:
    ConfigError: not KEY=VALUE, an unknown key, or a value that is not of the default's type.
  """
  out = {}
  for item in sets:
    key, eq, raw = item.partition("=")
    if not eq or not key:
      raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.max_epochs=3")
    try:
      default = dicts.parent_of(base, key)[key.rsplit(".", 1)[-1]]
    except ConfigError as e:
      raise ConfigError(f"--set {item!r}: {e} (grid file {path})") from None
    value = dicts.parse_value(key, raw, default, f" (in --set, grid file {path})")
    out[key] = value
  return out


def expand_with_meta(path: str, sets: Sequence[str] = ()) -> tuple[list[Point], dict[str, Any]]:
  """`expand`, plus the grid's `meta` ({} unless get_grid() returns a Grid with one).

  `sets` (`KEY=VALUE`, see parse_sets) are applied to every run after its axes, without changing
  its name: e.g. a reduced check (`train.max_epochs=3`) or another data path.
  """
  module = load_module(path)
  base = _call(module, "get_config", path)
  if not isinstance(base, ml_collections.ConfigDict):
    raise ConfigError(
      f"grid file {path}: get_config() returned a {type(base).__name__}; expected "
      "an ml_collections.ConfigDict"
    )
  extra = parse_sets(base, sets, path)
  if inspect.signature(module.get_grid).parameters:
    # get_grid(config) reads the base config as the runs will see it: with the --set values (a
    # grid that loads the data, e.g. parameter matching, needs --set data.path).
    with_sets = ml_collections.ConfigDict(base.to_dict())
    for key, value in extra.items():
      _set(with_sets, key, value, path)
    grid = _call(module, "get_grid", path, with_sets)
  else:
    grid = _call(module, "get_grid", path)
  meta = dict(grid.meta) if isinstance(grid, Grid) else {}
  blocks, names = _blocks(grid, path)
  replica_axes = sweep.replica_axes(base)
  base_keys = set(dicts.flatten(base.to_dict()))
  short_of: dict[str, str] = {}  # short name -> the key it names (for collisions)
  points: dict[str, Point] = {}
  for block in blocks:
    run_axes, fixed, rep = [], {}, {}
    for key, spec in block.items():
      pairs, named = _choices(key, spec, path)
      if key in replica_axes:
        rep[key] = pairs
      elif named:
        short = sanitise(names.get(key, key.rsplit(".", 1)[-1]))
        if short_of.setdefault(short, key) != key:
          raise ConfigError(
            f"grid file {path}: axes {short_of[short]!r} and {key!r} both have the "
            f"short name {short!r}; set distinct ones with Grid(names={{...}})"
          )
        if key in extra:  # the runs would keep names that no longer hold
          raise ConfigError(
            f"--set {key}: {key} is an axis of grid file {path} (it names the "
            "runs); pick runs with --only, or change the grid file"
          )
        run_axes.append((key, short, pairs))
      else:
        fixed[key] = pairs[0][1]
    replicas, single = {}, {}
    for key, pairs in rep.items():
      values = tuple(v for _, v in pairs)
      if len(values) > 1 or key not in base_keys:
        replicas[replica_axes[key]] = values
      else:  # one value: the plain key (its sweep list emptied)
        single[key] = values[0]
        if replica_axes[key] not in base_keys or dicts.get(base, replica_axes[key]):
          single[replica_axes[key]] = ()
    for combo in itertools.product(*[pairs for _, _, pairs in run_axes]):
      overrides = {key: value for (key, _, _), (_, value) in zip(run_axes, combo)}
      axes = {short: lab for (_, short, _), (lab, _) in zip(run_axes, combo)}
      point = _point(
        base,
        {**overrides, **fixed, **single, **extra},
        {k: v for k, v in replicas.items() if k not in extra},
        axes,
        path,
      )
      other = points.setdefault(point.name, point)
      if other.flags() != point.flags():
        raise ConfigError(
          f"grid file {path}: two different runs are named {point.name!r}: "
          f"{other.flags()} and {point.flags()}; give their axes distinct labels"
        )
  return list(points.values()), meta
