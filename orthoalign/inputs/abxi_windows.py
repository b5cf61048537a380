"""ABXI's input arrays: left-padded windows with task-guided aligned domain sequences.

Ported from the data pipeline of `DiMarzioBian/ABXI` v2.1 (`models/data/dataloader.py`:
`trim_seq`, `get_spe_seq`, `process_train`, `process_evaluate`); see reference/baselines.md §1.1.

Conventions (as the original):
  * Each user's sequence is first cut to its last `len_max` items (the original reads
    `line[1:][-len_max:]`); every window has length `len_trim = len_max - 3`, padded on the LEFT.
  * Training uses the train part T = sequence[:-2]: inputs T[:-1], targets T[1:] (seq2seq, every
    position supervised). `seq_x` is the merged input; `seq_a` / `seq_b` are TASK-GUIDED ALIGNED
    (`aligned_domain_sequences`): at a slot whose target is in A, `seq_a` holds the A item that
    precedes that target in the A-only subsequence, and 0 elsewhere (B likewise).
  * Evaluation inputs are the prefix before the target (valid: sequence[:-2], test: [:-1]);
    `seq_x` is its last `len_trim` items. `seq_a` / `seq_b` (no alignment at evaluation) follow
    `layout`: "inplace" (the original code, `trainer.evaluate_batch` at 10075a4 and later:
    `seq_x` with the other domain's items set to 0, slot for slot) or "compact" (the prefix's A (B)
    items, compacted and left-padded: reference/baselines.md's description, which the code does
    not do). They differ when the last input is from the other domain: in place, that stream's last
    slot is then padding.

Merged-sequence times for GCA's causal cross-mask (`time_*`, -1 on padding), counted from the first
input item of the (cut) sequence:
  * training: an aligned token at slot t stands for the domain history up to the merged input at
    slot t, so x, a and b all carry the slot's time;
  * evaluation: every token carries its item's time. The last token of each domain stream is the
    one that predicts the target, so as a QUERY (`qtime_a`, `qtime_b`) it carries the time of the
    last input item: like a training slot, it may see the whole input of the other stream.
"""

from __future__ import annotations

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import windows


def aligned_domain_sequences(
  inputs: np.ndarray, targets: np.ndarray, num_items_a: int
) -> tuple[np.ndarray, np.ndarray]:
  """Task-guided aligned A and B sequences of one training sequence (ABXI's `get_spe_seq`).

  Slot i of `seq_a` is non-zero only where targets[i] is an A item; it then holds the last A item
  among inputs[:i + 1], i.e. the A item just before targets[i] in the A-only subsequence, or 0 when
  there is none (the original zeroes the first A-target slot when the sequence starts with a B
  item). `seq_b` likewise. This is the original's rule written per slot; unlike the original (which
  raises IndexError) it also accepts sequences in which a domain never occurs among the targets.

  Args:
    inputs: int [n] merged inputs T[:-1] (global ids, no padding).
    targets: int [n] targets T[1:].
    num_items_a: nA (A = 1..nA, B > nA).

  Returns:
    (seq_a, seq_b), int32 [n] each.
  """
  inputs = np.asarray(inputs, np.int64)
  targets = np.asarray(targets, np.int64)
  idx = np.arange(len(inputs))
  out = []
  for in_dom, tgt_dom in (
    ((inputs > 0) & (inputs <= num_items_a), (targets > 0) & (targets <= num_items_a)),
    (inputs > num_items_a, targets > num_items_a),
  ):
    last = np.maximum.accumulate(np.where(in_dom, idx, -1)) if len(idx) else idx
    held = np.where(last >= 0, inputs[np.maximum(last, 0)], 0)
    out.append(np.where(tgt_dom, held, 0).astype(np.int32))
  return out[0], out[1]


def train_windows(ds: dataset_lib.CDSRDataset, len_max: int) -> dict[str, np.ndarray]:
  """Seq2seq training arrays, one row per user whose train part has >= 2 items.

  Args:
    ds: the dataset.
    len_max: ABXI's `len_max` (50); windows have length len_max - 3.

  Returns:
    Arrays with leading dimension U_train: seq_x, seq_a, seq_b (global ids), target (global id of
    the next item per slot, 0 = padding), time_x, time_a, time_b (merged time of each slot, -1 on
    padding), hist (the train part T sorted ascending, left-padded with 0; never drawn as a
    negative) and user.
  """
  length = len_max - 3
  na = ds.num_items_a
  train_len = splits.train_lengths(ds)
  users = np.nonzero(train_len >= 2)[0]
  # The train part of the cut sequence: sequence[-len_max:][:-2] = train prefix[-(len_max - 2):].
  parts = [ds.sequence(u)[: train_len[u]][-(len_max - 2) :] for u in users]
  width = max((len(p) for p in parts), default=1)
  rows: dict[str, list[np.ndarray]] = {
    k: [] for k in ("seq_x", "seq_a", "seq_b", "target", "time_x", "time_a", "time_b", "hist")
  }
  for part in parts:
    inputs, targets = part[:-1], part[1:]
    seq_a, seq_b = aligned_domain_sequences(inputs, targets, na)
    time = np.arange(len(inputs))
    rows["seq_x"].append(windows.right_align(inputs, length))
    rows["seq_a"].append(windows.right_align(seq_a, length))
    rows["seq_b"].append(windows.right_align(seq_b, length))
    rows["target"].append(windows.right_align(targets, length))
    rows["time_x"].append(windows.right_align(time, length, fill=-1))
    rows["time_a"].append(windows.right_align(np.where(seq_a > 0, time, -1), length, fill=-1))
    rows["time_b"].append(windows.right_align(np.where(seq_b > 0, time, -1), length, fill=-1))
    rows["hist"].append(windows.right_align(np.sort(part), width))
  out = windows.stack_rows(rows, length)
  out["user"] = users.astype(np.int32)
  return out


EVAL_LAYOUTS = ("inplace", "compact")


def eval_windows(
  ds: dataset_lib.CDSRDataset, split: splits.EvalSplit, len_max: int, layout: str = "inplace"
) -> dict[str, np.ndarray]:
  """Inputs for next-item evaluation, one row per evaluated user.

  Args:
    ds: the dataset.
    split: the leave-one-out cases (`splits.eval_split`).
    len_max: ABXI's `len_max` (50); windows have length len_max - 3.
    layout: domain sequences "inplace" (the original code) or "compact" (see the module docstring).

  Returns:
    seq_x, seq_a, seq_b (merged window; its A and B items per `layout`), time_x, time_a,
    time_b (key times), qtime_a, qtime_b (query times: the last domain token takes the last input's
    time), target (global id), domain (0 = A, 1 = B), hist (the whole input prefix, sorted,
    0-padded; excluded from full ranking) and user.
  """
  if layout not in EVAL_LAYOUTS:
    raise ValueError(f"model.eval_domain_seq={layout!r}; expected one of {list(EVAL_LAYOUTS)}")
  length = len_max - 3
  na = ds.num_items_a
  width = int(split.input_len.max()) if split.num_cases else 1
  rows: dict[str, list[np.ndarray]] = {
    k: []
    for k in ("seq_x", "seq_a", "seq_b", "time_x", "time_a", "time_b", "qtime_a", "qtime_b", "hist")
  }
  for u, n in zip(split.users, split.input_len):
    full = ds.sequence(u)
    start = max(0, len(full) - len_max)  # the original's cut to the last len_max items
    inputs = full[start:n]
    time = np.arange(len(inputs))
    seq_x, time_x = windows.right_align(inputs, length), windows.right_align(time, length, fill=-1)
    rows["seq_x"].append(seq_x)
    rows["time_x"].append(time_x)
    for name, lo, hi in (("a", 1, na), ("b", na + 1, np.inf)):
      if layout == "inplace":
        in_dom = (seq_x >= lo) & (seq_x <= hi)
        rows[f"seq_{name}"].append(np.where(in_dom, seq_x, 0))
        t = np.where(in_dom, time_x, -1)
      else:
        in_dom = (inputs >= lo) & (inputs <= hi)
        rows[f"seq_{name}"].append(windows.right_align(inputs[in_dom], length))
        t = windows.right_align(time[in_dom], length, fill=-1)
      rows[f"time_{name}"].append(t)
      q = t.copy()
      if q[-1] >= 0:
        q[-1] = len(inputs) - 1
      rows[f"qtime_{name}"].append(q)
    rows["hist"].append(windows.right_align(np.sort(full[:n]), width))
  out = windows.stack_rows(rows, length)
  out["target"] = split.targets.astype(np.int32)
  out["domain"] = split.target_domain.astype(np.int32)
  out["user"] = split.users.astype(np.int32)
  return out


# The arrays of `train_windows` / `eval_windows` with a window axis (the evaluation's `target` is
# one id per case and has none).
WINDOW_KEYS = (
  "seq_x",
  "seq_a",
  "seq_b",
  "target",
  "time_x",
  "time_a",
  "time_b",
  "qtime_a",
  "qtime_b",
)


def window_lengths(arrays: dict[str, np.ndarray]) -> np.ndarray:
  """int32 [rows]: the real (non-padding) positions of each row's merged window `seq_x`.

  The domain streams hold a subset of the merged window's slots (aligned in training, in place or
  compacted at evaluation), so no stream of a row is longer.
  """
  return (arrays["seq_x"] > 0).sum(axis=1).astype(np.int32)


def crop_windows(batch: dict, length: int) -> dict:
  """`batch` with every window array cut to its last `length` positions.

  Windows are left-padded, so a row with at most `length` real positions loses only padding; ABXI's
  positions count backwards from the last item and the times are stored per slot, so neither
  changes. Works on numpy and jax arrays [B, L] (other keys, and a 1-D `target`, pass through).

  Raises:
    ValueError: `length` is not in [1, L].
  """
  full = batch["seq_x"].shape[-1]
  if not 1 <= length <= full:
    raise ValueError(f"crop length {length} must be in [1, {full}]")
  out = dict(batch)
  for key in WINDOW_KEYS:
    if key in batch and batch[key].ndim == 2:
      out[key] = batch[key][:, full - length :]
  return out
