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
atomically; a warning names epochs missing before it) and TensorBoard hides the points from the
resumed epoch on (from epoch 1 when no checkpoint was saved), so replayed epochs are not shown
twice.
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
    if resume_epoch is not None:
      self._warn_gaps(kept, resume_epoch)
    fileio.write_jsonl(self.path, kept)

  def _warn_gaps(self, kept: list[dict[str, Any]], resume_epoch: int) -> None:
    """Says which epochs up to the checkpoint have no row left (a damaged or deleted file): the
    resumed run cannot write them again, so the trajectory keeps a gap there.
    """
    have = {row.get("epoch") for row in kept}
    missing = [e for e in range(1, resume_epoch + 1) if e not in have]
    if missing:
      spans, start = [], missing[0]
      for prev, e in zip(missing, missing[1:] + [None]):
        if e != prev + 1:
          spans.append(str(start) if start == prev else f"{start}-{prev}")
          start = e
      print(
        f"warning: {self.path} has no rows for epoch(s) {', '.join(spans)} of the "
        f"{resume_epoch} before the checkpoint (the file was damaged or deleted); the resumed "
        "run appends from the next epoch and the trajectory keeps that gap",
        flush=True,
      )

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
    # From the first epoch to run on, TensorBoard hides what an earlier attempt wrote: the epochs
    # after the checkpoint resumed from, or every epoch of an attempt stopped before its first.
    self._tb = ScalarWriter(os.path.join(workdir, TENSORBOARD), (resume_epoch or 0) + 1)
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
