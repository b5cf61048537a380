"""Leak checks: evaluation targets never reach training, negatives never hit history.

`check_no_leakage` runs every time a stored dataset is loaded (`store.load_dataset`) and whenever
frozen candidates are read or computed (`inputs.candidates.cached`); anyone holding a
`CDSRDataset` (and, optionally, candidate arrays or their own training prefix lengths) can call it
too. Every check is vectorised over users, so it costs milliseconds on tens of thousands of users.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from orthoalign.datasets.dataset import USER_TRAIN
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.splits import SPLITS
from orthoalign.datasets.splits import EvalSplit
from orthoalign.datasets.splits import eval_split
from orthoalign.datasets.splits import train_lengths
from orthoalign.errors import DataError

# Cells of the per-chunk [rows, nA+nB+1] lookup tables of the candidate check: large enough that
# Python overhead is negligible, small enough to stay in cache.
_TABLE_CELLS = 1 << 20


def _where(ds: CDSRDataset, u: int, what: str = "") -> str:
  return f"dataset {ds.name!r}, " + (f"{what}, " if what else "") + f"user {u}"


def check_no_leakage(
  ds: CDSRDataset,
  candidates: Mapping[str, np.ndarray] | None = None,
  *,
  train_len: np.ndarray | None = None,
) -> None:
  """Checks that no evaluation target can leak into training or into the negatives.

  Checks, for every user:
    * the training prefix `sequence(u)[:train_len[u]]` lies within the sequence;
    * with a user-level split (`ds.user_split`), held-out users contribute no training items;
    * every valid and test target position is at or after the end of the training prefix, so the
      target is never in the training input (CSR rows are disjoint, so a target can only ever be
      inside its own user's prefix);
    * the valid target comes before the test target (model selection never sees the test item);
    * for each `candidates[split]` (int [E, 1+N], as from `sample_candidates`): one row per case of
      `eval_split(ds, split)`, column 0 is the target, and the negatives are in the target's
      domain, distinct, and never an item of the user's sequence.

  Positions, not item values, are compared for the prefix checks: a user who consumes the same
  item twice legitimately has the target's item id in their history.

  Args:
    ds: the dataset.
    candidates: optional {split name: candidate array}.
    train_len: optional int [U] training prefix lengths actually used; default
      `train_lengths(ds)`.

  Raises:
    DataError: naming the dataset, the user and the offending item.
  """
  lengths = ds.lengths
  t = train_lengths(ds) if train_len is None else np.asarray(train_len, np.int64)
  if t.shape != (ds.num_users,):
    raise DataError(
      f"train_len has shape {t.shape}; expected [{ds.num_users}]", key=f"dataset {ds.name!r}"
    )
  bad = (t < 0) | (t > lengths)
  if np.any(bad):
    u = int(np.argmax(bad))
    raise DataError(
      f"training prefix length {t[u]} outside 0..{lengths[u]} (the sequence length)",
      key=_where(ds, u),
    )

  if ds.user_split is not None:
    bad = (ds.user_split != USER_TRAIN) & (t > 0)
    if np.any(bad):
      u = int(np.argmax(bad))
      raise DataError(
        f"held-out user (split code {ds.user_split[u]}) contributes {t[u]} training items, "
        f"the first being item {ds.items[ds.offsets[u]]}; expected none",
        key=_where(ds, u),
      )

  splits = {name: eval_split(ds, name) for name in SPLITS}
  for name, split in splits.items():
    bad = t[split.users] > split.input_len
    if np.any(bad):
      i = int(np.argmax(bad))
      u = int(split.users[i])
      raise DataError(
        f"{name} target item {split.targets[i]} at position {split.input_len[i]} is inside the "
        f"training prefix of length {t[u]}; expected the prefix to end before the target",
        key=_where(ds, u),
      )

  valid, test = splits["valid"], splits["test"]
  both, vi, ti = np.intersect1d(valid.users, test.users, assume_unique=True, return_indices=True)
  bad = valid.input_len[vi] >= test.input_len[ti]
  if np.any(bad):
    k = int(np.argmax(bad))
    raise DataError(
      f"valid target item {valid.targets[vi[k]]} at position {valid.input_len[vi[k]]} is not "
      f"before the test target at position {test.input_len[ti[k]]}; the valid input would "
      "contain the test item",
      key=_where(ds, int(both[k])),
    )

  for name, cands in (candidates or {}).items():
    if name not in splits:
      raise DataError(
        f"unknown split {name!r}; expected one of {list(SPLITS)}",
        key=f"dataset {ds.name!r}, candidates",
      )
    _check_candidates(ds, splits[name], np.asarray(cands))


def _check_candidates(ds: CDSRDataset, split: EvalSplit, cands: np.ndarray) -> None:
  """The candidate part of `check_no_leakage` for one split."""
  what = f"{split.name} candidates"
  key = f"dataset {ds.name!r}, {what}"
  if cands.ndim != 2 or cands.shape[0] != split.num_cases or cands.shape[1] < 1:
    raise DataError(
      f"shape {cands.shape}; expected [{split.num_cases}, 1+N] (one row per "
      f"{split.name} case, target first)",
      key=key,
    )
  if cands.size and not np.issubdtype(cands.dtype, np.integer):
    raise DataError(f"dtype {cands.dtype}; expected integer item ids", key=key)
  bad = cands[:, 0] != split.targets
  if np.any(bad):
    i = int(np.argmax(bad))
    raise DataError(
      f"column 0 is item {cands[i, 0]} but the target is item {split.targets[i]}",
      key=_where(ds, int(split.users[i]), what),
    )
  negs = cands[:, 1:]
  if negs.size == 0:
    return
  n, n_a = ds.num_items, ds.num_items_a
  bad = (negs < 1) | (negs > n)
  if np.any(bad):
    i, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
    raise DataError(
      f"negative item {negs[i, j]} out of range 1..{n}", key=_where(ds, int(split.users[i]), what)
    )
  bad = (negs > n_a) != (split.target_domain[:, None] == 1)
  if np.any(bad):
    i, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
    target_dom = "AB"[split.target_domain[i]]
    raise DataError(
      f"negative item {negs[i, j]} is not in the target's domain {target_dom}",
      key=_where(ds, int(split.users[i]), what),
    )

  # Per chunk of cases: mark each user's items in a [rows, n+1] table and look the negatives up.
  # Table indices stay below _TABLE_CELLS, so int32 arithmetic suffices (half the memory traffic).
  negs = negs.astype(np.int32, copy=False)
  width = negs.shape[1]
  max_rows = max(1, _TABLE_CELLS // (n + 1))
  seen = np.zeros(max_rows * (n + 1), bool)
  # Never cleared: every cell read in a chunk was first written in that chunk.
  first_col = np.empty(max_rows * (n + 1), np.int32)
  all_cols = np.arange(width, dtype=np.int32)
  lengths = ds.lengths
  for lo in range(0, split.num_cases, max_rows):
    users = split.users[lo : lo + max_rows]
    rows = users.shape[0]
    count = lengths[users]
    row = np.repeat(np.arange(rows, dtype=np.int64), count)
    first = np.cumsum(count) - count
    position = ds.offsets[users][row] + (np.arange(row.shape[0]) - first[row])
    hist_cells = row * (n + 1) + ds.items[position]
    cells = negs[lo : lo + rows] + (np.arange(rows, dtype=np.int32) * np.int32(n + 1))[:, None]
    seen[hist_cells] = True
    first_col[cells] = all_cols
    bad = seen[cells] | (first_col[cells] != all_cols)
    seen[hist_cells] = False
    if np.any(bad):
      i, j = np.unravel_index(int(np.argmax(bad)), bad.shape)
      item, u = negs[lo + i, j], int(users[i])
      if item in ds.sequence(u):
        detail = (
          f"negative item {item} is in the user's own sequence; expected negatives outside it"
        )
      else:
        detail = f"negative item {item} appears twice; expected distinct negatives"
      raise DataError(detail, key=_where(ds, u, what))
