"""The training command of a grid point.

`python -m orthoalign.main --config=<grid> --workdir=... --config.k=v`.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import shlex
import sys
from typing import Any

from orthoalign.experiments import expand


def trainer() -> list[str]:
  """The training entry point, run with this interpreter."""
  return [sys.executable, "-m", "orthoalign.main"]


def format_value(value: Any) -> str:
  """A flag value that ml_collections parses back to `value` (for a key of the same type).

  Strings are passed bare; tuples as Python literals (ml_collections evaluates them); floats by
  repr, the shortest text that round-trips.
  """
  if isinstance(value, bool):
    return "true" if value else "false"
  if isinstance(value, (tuple, list)):
    return repr(_tuples(value))
  if isinstance(value, (int, float, str)):
    return value if isinstance(value, str) else repr(value)
  raise TypeError(f"cannot pass a {type(value).__name__} ({value!r}) as a --config flag")


def _tuples(value: Any) -> Any:
  return tuple(_tuples(v) for v in value) if isinstance(value, (tuple, list)) else value


def config_flags(point: expand.Point) -> list[str]:
  """`--config.<key>=<value>` for every override and replica list of the point."""
  return [f"--config.{k}={format_value(v)}" for k, v in point.flags().items()]


def train_argv(
  point: expand.Point, grid_path: str, root: str, entry: Sequence[str] | None = None
) -> list[str]:
  """The argv that trains `point` in `<root>/<name>` (`entry` replaces the trainer in tests)."""
  return [
    *(entry or trainer()),
    f"--config={grid_path}",
    f"--workdir={os.path.join(root, point.name)}",
    *config_flags(point),
  ]


def shell(argv: Sequence[str], cwd: str) -> str:
  """The command as one line a user can paste into a shell (it cds to where the grid ran)."""
  return f"cd {shlex.quote(cwd)} && {shlex.join(argv)}"
