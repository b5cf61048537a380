"""<workdir>/history.jsonl: one JSON row per (epoch, replica), for trajectories over training.

Each row holds "epoch", "replica", the epoch's mean training metrics ("train/*", incl. the learning
rate) and, on epochs with a validation pass, the validation metrics
("valid/<protocol>/<dom>/<metric>")
and the alignment statistics of every GCA cell on validation inputs ("align/<cell>/<stat>"); with
`eval.track_test` also the test metrics of that epoch's parameters ("test/..."). The analysis reads
it (`orthoalign.analysis.history.trajectory`) instead of parsing TensorBoard files.

Rows are appended once per epoch (flushed). A resumed run first rewrites the file atomically with
only the rows up to its checkpoint's epoch, so replayed epochs are not listed twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import json
import os
from typing import Any

import jax

from orthoalign import fileio

FILE = "history.jsonl"


class History:
  """Appends rows to <workdir>/history.jsonl (process 0 only)."""

  def __init__(self, workdir: str, resume_epoch: int | None):
    """Starts a new history, or keeps the rows with epoch <= resume_epoch of an earlier one."""
    self.path = os.path.join(workdir, FILE)
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
