"""Interactions as parallel integer columns, from raw files to a CDSRDataset: the machinery the
recipes (recipes.py) share.

Ids are interned once (`Interner`), so memory stays a few dozen bytes per interaction; the
duplicate policy (`apply_duplicates`) and the final grouping into a validated dataset
(`build_dataset`) are the same for every recipe. Progress goes to stderr (`log`).
"""

from __future__ import annotations

import array
from collections.abc import Callable
import dataclasses
import os
import sys
from typing import Any

import numpy as np

from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.readers import amazon
from orthoalign.errors import DataError

PathLike = str | os.PathLike[str]


def log(message: str) -> None:
  """A progress line on stderr (stdout stays for what a command prints as its result)."""
  print(message, file=sys.stderr, flush=True)


class Interner:
  """Maps strings to dense int codes 0, 1, ... in first-seen order."""

  def __init__(self):
    self.index: dict[str, int] = {}  # Filled with index.setdefault(k, len).
    self._keys: list[str] | None = None

  @property
  def keys(self) -> list[str]:
    """The key of each code (dicts keep insertion order)."""
    if self._keys is None or len(self._keys) != len(self.index):
      self._keys = list(self.index)
    return self._keys

  def __len__(self) -> int:
    return len(self.index)


@dataclasses.dataclass
class Columns:
  """Interactions as parallel integer columns, in read order."""

  user: np.ndarray  # int64 user codes.
  item: np.ndarray  # int64 item codes.
  ts: np.ndarray  # int64 unix seconds.
  domain: np.ndarray  # int8, 0 = A, 1 = B.
  # int64 unix MILLISECONDS, the sort key: the 2023 dumps are more precise
  # than seconds, and sorting on floored seconds would reorder two events of
  # one second by file / domain order.
  ts_ms: np.ndarray

  def take(self, index: np.ndarray) -> Columns:
    return Columns(
      self.user[index], self.item[index], self.ts[index], self.domain[index], self.ts_ms[index]
    )

  def __len__(self) -> int:
    return self.user.shape[0]


def read_domains(
  paths: tuple[PathLike, PathLike],
  bad: BadLines,
  users: Interner,
  items: Interner,
  keep: Callable[[amazon.Interaction], bool] | None = None,
) -> Columns:
  """Reads both domain files (A rows first, each in file order)."""
  user, item, ts = array.array("q"), array.array("q"), array.array("q")
  ts_ms = array.array("q")
  sizes = []
  # Bound methods hoisted out of the per-line loop (it runs ~10^7 times).
  add_user, add_item, add_ts = user.append, item.append, ts.append
  add_ms = ts_ms.append
  user_code, item_code = users.index.setdefault, items.index.setdefault
  user_index, item_index = users.index, items.index
  for path in paths:
    start = len(user)
    read = 0
    for record, millis in amazon.read_interactions_ms(path, bad):
      read += 1
      if keep is not None and not keep(record):
        continue
      add_user(user_code(record.user, len(user_index)))
      add_item(item_code(record.item, len(item_index)))
      add_ts(record.timestamp)
      add_ms(millis)
    sizes.append(len(user) - start)
    log(
      f"read {read} interactions from {os.fspath(path)}"
      + (f" ({sizes[-1]} kept)" if keep is not None else "")
    )
  domain = np.repeat(np.array([0, 1], np.int8), sizes)
  as_array = lambda a: np.frombuffer(a, np.int64) if len(a) else np.zeros(0, np.int64)
  return Columns(as_array(user), as_array(item), as_array(ts), domain, as_array(ts_ms))


def duplicate_rows(cols: Columns) -> np.ndarray:
  """bool [len(cols)]: rows repeating an EARLIER row's (user, item, domain,
  full-precision timestamp); the first of each group is False.
  """
  n = len(cols)
  if not n:
    return np.zeros(0, bool)
  order = np.lexsort((np.arange(n), cols.ts_ms, cols.domain, cols.item, cols.user))
  same = np.zeros(n, bool)
  s = order
  same[1:] = (
    (cols.user[s][1:] == cols.user[s][:-1])
    & (cols.item[s][1:] == cols.item[s][:-1])
    & (cols.domain[s][1:] == cols.domain[s][:-1])
    & (cols.ts_ms[s][1:] == cols.ts_ms[s][:-1])
  )
  out = np.zeros(n, bool)
  out[order] = same
  return out


def apply_duplicates(
  cols: Columns, policy: str, recipe: str, report: dict[str, Any] | None
) -> Columns:
  """Counts exact duplicate rows, then keeps or drops them (`policy`).

  A duplicate repeats an earlier row's user, item, domain and timestamp (to
  the file's precision). The originals keep them; when they are a user's last
  two rows, the validation and test targets are the same item, hence the
  warning.
  """
  dup = duplicate_rows(cols)
  found = int(dup.sum())
  if report is not None:
    report.update(policy=policy, found=found, dropped=found if policy == "drop" else 0)
  if not found:
    return cols
  if policy == "drop":
    log(
      f"{recipe}: dropping {found} exact duplicate (user, item, timestamp) row(s) (duplicates=drop)"
    )
    return cols.take(~dup)
  log(
    f"warning: {recipe}: keeping {found} exact duplicate (user, item, "
    "timestamp) row(s) as the original does (duplicates=keep); a user "
    "whose last two rows repeat gets the same validation and test target. "
    "Pass --param duplicates=drop to remove them."
  )
  return cols


def log_counts(step: str, cols: Columns) -> None:
  """Logs users, items and interactions per domain after a filtering step."""
  a = cols.domain == 0
  log(
    f"{step}: {np.unique(cols.user).size} users, "
    f"{np.unique(cols.item[a]).size} A items / {int(a.sum())} A "
    f"interactions, {np.unique(cols.item[~a]).size} B items / "
    f"{int((~a).sum())} B interactions"
  )


def titles_array(
  keys: np.ndarray,
  num_items_a: int,
  titles_a: PathLike | None,
  titles_b: PathLike | None,
  bad: BadLines,
) -> np.ndarray | None:
  """Titles by global id from the optional metadata files ('' = none)."""
  if titles_a is None and titles_b is None:
    return None
  titles = np.full(keys.shape[0], "", dtype=object)
  for path, lo, hi in ((titles_a, 1, num_items_a + 1), (titles_b, num_items_a + 1, keys.shape[0])):
    if path is None:
      continue
    wanted = set(keys[lo:hi].tolist())
    found = amazon.read_titles(path, bad, wanted=wanted)
    log(f"titles: {len(found)} of {len(wanted)} items found in {os.fspath(path)}")
    titles[lo:hi] = [found.get(k, "") for k in keys[lo:hi]]
  return titles.astype(str)


def build_dataset(
  name: str,
  cols: Columns,
  user_keys: list[str],
  item_keys: list[str],
  num_a: int,
  titles_a: PathLike | None,
  titles_b: PathLike | None,
  bad: BadLines,
) -> CDSRDataset:
  """Builds the dataset from rows grouped by user, items as GLOBAL ids.

  Args:
    name: dataset name.
    cols: rows already in output order, users contiguous; `cols.user` is the
      output user index (0..U-1, ascending) and `cols.item` the global id.
    user_keys: original user id per output user.
    item_keys: original item id per global id, row 0 = ''.
    num_a: nA; global ids 1..nA are domain A.
    titles_a: optional domain-A metadata file.
    titles_b: optional domain-B metadata file.
    bad: bad-line policy for the metadata files.

  Returns:
    The validated dataset.
  """
  num_items = len(item_keys) - 1
  num_b = num_items - num_a
  if num_a < 1 or num_b < 1:
    empty = "A" if num_a < 1 else "B"
    raise DataError(
      f"no domain-{empty} items are left after the filters; expected both "
      "domains to keep items (are the inputs the right files, and the "
      "thresholds / time window sensible?)",
      key=f"dataset {name!r}",
    )
  offsets = np.concatenate([[0], np.cumsum(np.bincount(cols.user, minlength=len(user_keys)))])
  keys = np.asarray(item_keys, dtype=str)
  return CDSRDataset(
    name=name,
    num_items_a=num_a,
    num_items_b=num_b,
    offsets=offsets,
    items=cols.item,
    domains=cols.domain,
    timestamps=cols.ts,
    user_ids=np.asarray(user_keys, dtype=str),
    item_keys=keys,
    item_titles=titles_array(keys, num_a, titles_a, titles_b, bad),
  )
