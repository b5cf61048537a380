"""What to do with a malformed input line: stop (default) or skip it, counted, never silently."""

from __future__ import annotations

import collections
import sys
from typing import Any

from orthoalign.errors import DataError

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
    # Unencodable characters (lone surrogates) replaced by U+FFFD, per file (see data.textio).
    self.replaced: collections.Counter[str] = collections.Counter()

  def note_replaced(self, path: Any, count: int, line: int | None = None) -> None:
    """Counts `count` characters of `path` replaced by U+FFFD (any policy) and logs a warning.

    The first replacement of each file is logged; the total goes into `report()` / `summary()`.
    """
    if count <= 0:
      return
    key = str(path) if path is not None else "<memory>"
    if key not in self.replaced:
      from orthoalign.datasets import textio  # pylint: disable=g-import-not-at-top

      textio.warn_replaced(key, count, line)
    self.replaced[key] += count

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
    return {
      "policy": self.policy,
      "skipped": self.total,
      "per_file": dict(self.counts),
      "examples": list(self.examples),
      "replaced_characters": sum(self.replaced.values()),
      "replaced_per_file": dict(self.replaced),
    }

  def summary(self) -> str:
    parts = []
    if self.total:
      files = ", ".join(f"{path}: {n}" for path, n in sorted(self.counts.items()))
      parts.append(f"skipped {self.total} bad line(s) ({files}); first: {self.examples[0]}")
    if self.replaced:
      files = ", ".join(f"{path}: {n}" for path, n in sorted(self.replaced.items()))
      parts.append(
        f"replaced {sum(self.replaced.values())} unencodable character(s) with U+FFFD ({files})"
      )
    return "; ".join(parts) or "no bad lines"

  def print_summary(self, file=sys.stderr) -> None:
    if self.total or self.replaced:
      print(f"warning: {self.summary()}", file=file)
