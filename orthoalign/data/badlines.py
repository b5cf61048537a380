"""What to do with a malformed input line: stop (default) or skip it, counted, never silently."""

from __future__ import annotations

import collections
import sys
from typing import Any

from orthoalign.data.errors import DataError

POLICIES = ("error", "skip")


class BadLines:
  """Collects the DataErrors of one load under the `--on-bad-line` policy.

  With "error" the first bad line raises its DataError (which names file, line and expectation).
  With "skip" it is counted per file, the first few messages are kept, and `report()` goes into
  the dataset manifest; `summary()` is printed by the CLIs.
  """

  def __init__(self, policy: str = "error", max_examples: int = 5):
    if policy not in POLICIES:
      raise DataError(f"expected one of {list(POLICIES)}, got {policy!r}", key="on_bad_line")
    self.policy = policy
    self.max_examples = max_examples
    self.counts: collections.Counter[str] = collections.Counter()
    self.examples: list[str] = []

  def handle(self, error: DataError) -> None:
    """Raises `error` under "error"; records it under "skip"."""
    if self.policy == "error":
      raise error
    self.counts[error.path or "<memory>"] += 1
    if len(self.examples) < self.max_examples:
      self.examples.append(str(error))

  @property
  def total(self) -> int:
    return sum(self.counts.values())

  def report(self) -> dict[str, Any]:
    return {"policy": self.policy, "skipped": self.total, "per_file": dict(self.counts),
            "examples": list(self.examples)}

  def summary(self) -> str:
    if not self.total:
      return "no bad lines"
    files = ", ".join(f"{path}: {n}" for path, n in sorted(self.counts.items()))
    return f"skipped {self.total} bad line(s) ({files}); first: {self.examples[0]}"

  def print_summary(self, file=sys.stderr) -> None:
    if self.total:
      print(f"warning: {self.summary()}", file=file)
