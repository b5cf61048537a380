"""MERIT's input arrays: left-padded merged windows with next-item and next-same-domain targets.

Ported from `DiMarzioBian/MERIT` 932ebee `models/data/dataloader.py` (`trim_seq`, `get_last_idx`,
`get_gt_spe`, `process_train`, `process_evaluate`). As the original, each user's sequence is first
cut to its last `len_max` items; windows have length `len_max - 3`, padded on the left. MERIT reads
the merged window only: its A and B streams are the window with the other domain's slots masked.
"""

from __future__ import annotations

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import windows


def next_same_domain(inputs: np.ndarray, part: np.ndarray, num_items_a: int) -> np.ndarray:
  """The original's `get_gt_spe`: per input slot, the next item of the same domain in `part`.

  Args:
    inputs: int [n] = part[:-1] (global ids, no padding).
    part: int [n + 1] the train part.
    num_items_a: nA (A = 1..nA, B > nA).

  Returns:
    int32 [n]: for the k-th item of a domain among `inputs`, the (k+1)-th item of that domain in
    `part`; 0 where there is none.
  """
  out = np.zeros(len(inputs), np.int32)
  for in_dom in (lambda x: x <= num_items_a, lambda x: x > num_items_a):
    following = part[in_dom(part)][1:]
    slots = np.nonzero(in_dom(inputs))[0]
    k = min(len(slots), len(following))
    out[slots[:k]] = following[:k]
  return out


def last_slots(window: np.ndarray, num_items_a: int, used: int) -> tuple[int, int]:
  """The original's `get_last_idx` for the A and B items of one left-padded window.

  Args:
    window: int [L] the window.
    num_items_a: nA.
    used: how many of its slots hold items (min(L, input length)).

  Returns:
    (slot of the last A item, slot of the last B item), each the window's first item slot
    (L - used) when the domain has no item in it.
  """
  length = len(window)
  out = []
  for in_dom in ((window > 0) & (window <= num_items_a), window > num_items_a):
    slots = np.nonzero(in_dom)[0]
    out.append(int(slots[-1]) if len(slots) else length - used)
  return out[0], out[1]


def train_windows(ds: dataset_lib.CDSRDataset, len_max: int) -> dict[str, np.ndarray]:
  """Seq2seq training arrays, one row per user whose train part has >= 2 items.

  Returns:
    Arrays with leading dimension U_train: seq (merged inputs), target (the next item per slot),
    target_ab (the next item of the input's domain, 0 = none), hist (the train part sorted, left-
    padded with 0; never drawn as a negative) and user.
  """
  length = len_max - 3
  train_len = splits.train_lengths(ds)
  users = np.nonzero(train_len >= 2)[0]
  # The train part of the cut sequence: sequence[-len_max:][:-2].
  parts = [ds.sequence(u)[: train_len[u]][-(len_max - 2) :] for u in users]
  width = max((len(p) for p in parts), default=1)
  rows: dict[str, list[np.ndarray]] = {k: [] for k in ("seq", "target", "target_ab", "hist")}
  for part in parts:
    inputs = part[:-1]
    rows["seq"].append(windows.right_align(inputs, length))
    rows["target"].append(windows.right_align(part[1:], length))
    rows["target_ab"].append(
      windows.right_align(next_same_domain(inputs, part, ds.num_items_a), length)
    )
    rows["hist"].append(windows.right_align(np.sort(part), width))
  out = windows.stack_rows(rows, length)
  out["user"] = users.astype(np.int32)
  return out


def eval_windows(
  ds: dataset_lib.CDSRDataset, split: splits.EvalSplit, len_max: int
) -> dict[str, np.ndarray]:
  """Inputs for next-item evaluation, one row per evaluated user.

  Returns:
    seq (the merged window), idx_last_a, idx_last_b (`last_slots`), target (global id), domain
    (0 = A, 1 = B), hist (the whole input prefix, sorted, 0-padded; excluded from full ranking)
    and user.
  """
  length = len_max - 3
  width = int(split.input_len.max()) if split.num_cases else 1
  rows: dict[str, list[np.ndarray]] = {k: [] for k in ("seq", "hist")}
  last = []
  for u, n in zip(split.users, split.input_len):
    full = ds.sequence(u)
    inputs = full[max(0, len(full) - len_max) : n]  # the original's cut to the last len_max
    window = windows.right_align(inputs, length)
    rows["seq"].append(window)
    last.append(last_slots(window, ds.num_items_a, min(length, len(inputs))))
    rows["hist"].append(windows.right_align(np.sort(full[:n]), width))
  out = windows.stack_rows(rows, length)
  idx = np.asarray(last, np.int32).reshape(-1, 2)
  out["idx_last_a"], out["idx_last_b"] = idx[:, 0], idx[:, 1]
  out["target"] = split.targets.astype(np.int32)
  out["domain"] = split.target_domain.astype(np.int32)
  out["user"] = split.users.astype(np.int32)
  return out
