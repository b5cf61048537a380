"""Run outputs: TensorBoard scalars (tensorboardX)."""

from __future__ import annotations

from collections.abc import Mapping
import math

import jax

from orthoalign import errors


class ScalarWriter:
  """TensorBoard event files via tensorboardX (no TensorFlow); only process 0 writes."""

  def __init__(self, logdir: str, purge_step: int | None = None):
    """Opens a new event file in `logdir`.

    Args:
      logdir: the folder of the event files.
      purge_step: on resumption, the first epoch to be run again: TensorBoard then hides the
        points of that epoch and later ones that the interrupted run had written, so the replayed
        epochs are not shown twice.
    """
    self._tb = None
    if jax.process_index() == 0:
      import tensorboardX  # imported lazily: only the chief needs it

      try:
        self._tb = tensorboardX.SummaryWriter(logdir, purge_step=purge_step)
      except OSError as e:
        raise errors.RunError(
          f"cannot write TensorBoard events to {logdir}: {e.strerror or e}"
        ) from None

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
