"""Run outputs: TensorBoard scalars (tensorboardX), atomic JSON/JSONL files, the progress line."""

from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any, Iterable, Mapping

import jax
import numpy as np


def atomic_write_text(path: str, text: str) -> None:
  """Writes `text` to `path` via a temp file in the same folder and a rename (never half-written)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def _jsonable(value: Any) -> Any:
  if isinstance(value, (np.floating, float)):
    v = float(value)
    return None if math.isnan(v) or math.isinf(v) else v
  if isinstance(value, (np.integer,)):
    return int(value)
  if isinstance(value, (np.ndarray,)):
    return [_jsonable(v) for v in value.tolist()]
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, Mapping):
    return {str(k): _jsonable(v) for k, v in value.items()}
  return value


def write_json(path: str, obj: Any) -> None:
  atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str, rows: Iterable[Mapping[str, Any]]) -> None:
  atomic_write_text(path, "".join(json.dumps(_jsonable(r), sort_keys=True) + "\n" for r in rows))


class ScalarWriter:
  """TensorBoard event files via tensorboardX (no TensorFlow); only process 0 writes."""

  def __init__(self, logdir: str):
    self._tb = None
    if jax.process_index() == 0:
      import tensorboardX  # imported lazily: only the chief needs it
      self._tb = tensorboardX.SummaryWriter(logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    if self._tb is None:
      return
    for k, v in scalars.items():
      v = float(v)
      if math.isfinite(v):
        self._tb.add_scalar(k, v, step)
    self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()


def format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
