"""The one place a run's numbers go out: per epoch to history.jsonl, TensorBoard and the progress
line, at the end to results.jsonl. Only process 0 writes or prints.

Every number of an epoch is one (key, value) of one replica, keyed as metrics/keys.py says:
"train/<name>", "train/learning_rate", "perf/steps_per_s", "valid/...", "align/<cell>/<stat>" and,
with `eval.track_test`, "test/...". The same numbers reach every sink:

  history.jsonl   one row per (epoch, replica): {"epoch", "replica", <key>: value, ...}; the
                  analysis reads it (orthoalign.analysis.history.trajectory);
  tb/             TensorBoard scalars (tensorboardX, no TensorFlow), tag "<key>/r<replica>";
  stdout          one progress line per epoch (`report`), after the epoch's checkpoint;
  results.jsonl   one row per replica at the end (written atomically).

On resumption history.jsonl keeps only the rows up to the checkpoint's epoch (rewritten
atomically) and TensorBoard hides the points from the resumed epoch on, so replayed epochs are not
shown twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import json
import math
import os
from typing import Any

import jax

from orthoalign import errors
from orthoalign import fileio
from orthoalign.metrics import keys
from orthoalign.train import distributed

HISTORY = "history.jsonl"
RESULTS = "results.jsonl"
TENSORBOARD = "tb"


class History:
  """Appends rows to <workdir>/history.jsonl (process 0 only)."""

  def __init__(self, workdir: str, resume_epoch: int | None):
    """Starts a new history, or keeps the rows with epoch <= resume_epoch of an earlier one."""
    self.path = os.path.join(workdir, HISTORY)
    self._chief = jax.process_index() == 0
    if not self._chief:
      return
    kept = []
    if resume_epoch is not None and os.path.exists(self.path):
      with open(self.path, encoding="utf-8") as f:
        for line in f:
          try:
            row = json.loads(line)
          except json.JSONDecodeError:  # a line cut short by the interruption
            continue
          if isinstance(row, dict) and row.get("epoch", resume_epoch + 1) <= resume_epoch:
            kept.append(row)
    fileio.write_jsonl(self.path, kept)

  def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
    if not self._chief:
      return
    with open(self.path, "a", encoding="utf-8") as f:
      f.write(fileio.jsonl_text(rows))
      f.flush()


class ScalarWriter:
  """TensorBoard event files via tensorboardX (no TensorFlow); only process 0 writes."""

  def __init__(self, logdir: str, purge_step: int | None = None):
    """Opens a new event file in `logdir`.

    Args:
      logdir: the folder of the event files.
      purge_step: on resumption, the first epoch to be run again: TensorBoard then hides the
        points of that epoch and later ones that the interrupted run had written.

    Raises:
      RunError: the folder cannot be written.
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


class MetricWriter:
  """A run's numbers to history.jsonl, TensorBoard, the progress line and results.jsonl."""

  def __init__(self, workdir: str, resume_epoch: int | None, max_epochs: int):
    """Opens the sinks of `workdir`.

    Args:
      workdir: the run folder.
      resume_epoch: the epoch of the checkpoint the run resumed from; None for a new run.
      max_epochs: the run's last epoch (`train.max_epochs`), for the progress line.
    """
    self.workdir = workdir
    self.max_epochs = max_epochs
    self.chief = jax.process_index() == 0
    self._history = History(workdir, resume_epoch)
    self._tb = ScalarWriter(
      os.path.join(workdir, TENSORBOARD), None if resume_epoch is None else resume_epoch + 1
    )
    self._last: Sequence[Mapping[str, float]] = ()

  def write(self, epoch: int, numbers: Sequence[Mapping[str, float]]) -> None:
    """Writes one epoch's numbers, numbers[r] = {key: value} of replica r, to history.jsonl and
    TensorBoard; `report` prints them.
    """
    with errors.interrupts_held():  # a row is written whole
      self._history.append({"epoch": epoch, "replica": r, **n} for r, n in enumerate(numbers))
    self._tb.write_scalars(
      epoch, {keys.replica_tag(k, r): v for r, n in enumerate(numbers) for k, v in n.items()}
    )
    self._last = numbers

  def report(self, epoch: int, *parts: str) -> None:
    """Prints the progress line of the epoch last written: its replicas' mean training loss, then
    `parts` (e.g. the selection metric, the speed, the time left).
    """
    loss = sum(n[keys.train_key("loss")] for n in self._last) / len(self._last)
    distributed.say("  ".join((f"epoch {epoch}/{self.max_epochs}", f"loss {loss:.4f}", *parts)))

  def results(self, rows: Sequence[Mapping[str, Any]]) -> str:
    """Writes results.jsonl (atomically, process 0); returns its path."""
    path = os.path.join(self.workdir, RESULTS)
    if self.chief:
      fileio.write_jsonl(path, rows)
    return path

  def close(self) -> None:
    self._tb.close()
