"""Atomic file writes, JSON helpers and duration text (no JAX import: the data CLIs and the grid
runner use them too).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
import json
import math
import os
import re
import tempfile
from typing import Any, BinaryIO

import numpy as np

from orthoalign import errors


def cache_root() -> str:
  """Where orthoalign caches (datasets, compiled programs): $ORTHOALIGN_CACHE, else
  ~/.cache/orthoalign.
  """
  return os.environ.get("ORTHOALIGN_CACHE") or os.path.join(
    os.path.expanduser("~"), ".cache", "orthoalign"
  )


def atomic_write_binary(path: str | os.PathLike[str], write: Callable[[BinaryIO], None]) -> None:
  """Calls `write(f)` on a temp file beside `path`, fsyncs it and renames it to `path`.

  A reader never sees a half-written file, and a crash leaves at most a `.tmp-*` file behind.
  """
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make results unreadable to others
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def local_folder(path: str, flag: str) -> None:
  """Refuses a URL where a folder of this machine's file system is needed.

  Run folders are written with local file operations (the run lock, config.json, history.jsonl,
  TensorBoard events), so a bucket must be mounted (gcsfuse, s3fs) or the storage shared (NFS).

  Raises:
    ConfigError: naming `flag` and the URL.
  """
  if _URL.match(str(path)):
    raise errors.ConfigError(
      f"{flag}={path}: expected a folder of this machine's file system; URLs are not written "
      "to: mount the bucket (e.g. gcsfuse) or use shared storage (NFS) and give its path"
    )


def writable_dir(
  path: str | os.PathLike[str], what: str, error: Callable[[str], Exception] = OSError
) -> str:
  """Creates folder `path` (with its parents) and checks that a file can be written in it.

  Args:
    path: the folder.
    what: what is to be written there, for the message ("checkpoints", "the dataset cache").
    error: the exception type raised (the callers pass the project's one-line user errors).

  Returns:
    `path` as a string.

  Raises:
    `error("cannot write <what> to <path>: <reason>")` when the folder cannot be made (a path
    through a regular file, a read-only file system) or a file in it cannot be created.
  """
  path = os.fspath(path)
  try:
    os.makedirs(path, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".tmp-write-check-")
    os.close(fd)
    os.unlink(probe)
  except OSError as e:
    raise error(f"cannot write {what} to {path}: {e.strerror or e}") from None
  return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
  """Writes UTF-8 `text` to `path` atomically (temp file + rename)."""
  atomic_write_binary(path, lambda f: f.write(text.encode("utf-8")))


def jsonable(value: Any) -> Any:
  """numpy scalars/arrays -> Python; NaN/inf -> None (JSON has neither)."""
  if isinstance(value, (np.floating, float)):
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v
  if isinstance(value, np.integer):
    return int(value)
  if isinstance(value, np.bool_):
    return bool(value)
  if isinstance(value, np.ndarray):
    return [jsonable(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [jsonable(v) for v in value]
  if isinstance(value, Mapping):
    return {str(k): jsonable(v) for k, v in value.items()}
  return value


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
  """Writes `obj` as indented, key-sorted JSON, atomically."""
  atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=True) + "\n")


def jsonl_text(rows: Iterable[Mapping[str, Any]]) -> str:
  """JSON lines: one sorted-key object per row, numpy values made plain (NaN/inf -> null)."""
  return "".join(json.dumps(jsonable(r), sort_keys=True) + "\n" for r in rows)


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
  """Writes one JSON object per line, atomically."""
  atomic_write_text(path, jsonl_text(rows))


def format_duration(seconds: float) -> str:
  """Seconds -> "42s", "3m07s" or "2h05m" (rounded to the second; hours drop the seconds)."""
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
