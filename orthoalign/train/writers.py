"""Run outputs: TensorBoard scalars (tensorboardX); atomic files and `format_duration` re-exported
from orthoalign.fileio."""

from __future__ import annotations

import math
from typing import Mapping

import jax

from orthoalign.fileio import atomic_write_text, jsonable, write_json, write_jsonl  # noqa: F401
from orthoalign.fileio import format_duration  # noqa: F401


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
