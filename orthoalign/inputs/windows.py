"""Right-aligned fixed-length windows for three-stream models (mixed, A-only, B-only sequences).

LLM4CDSR (and any model that encodes the merged sequence plus one sequence per domain) is fed
these arrays. They are built once on the host and uploaded; every epoch then gathers rows on device.

Conventions (as LLM4CDSR's `CDSRSeq2SeqDataset`): a training window is the last `max_len + 1`
items of the training prefix; the mixed stream is its seq2seq pair (inputs w[:-1], targets w[1:]);
each domain stream is the seq2seq pair of the window's items of that domain. `time_*` is the index
of each input token in the window, used by the causal cross-domain mask of GCA cells.
"""

from __future__ import annotations

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits


def right_align(values: np.ndarray, length: int, fill: int = 0) -> np.ndarray:
  """int32 [length]: the last `length` entries of `values`, left-padded with `fill` (ABXI's
  `trim_seq`; LLM4CDSR's windows likewise keep the most recent items).
  """
  values = np.asarray(values)
  out = np.full(length, fill, np.int32)
  tail = values[-length:] if len(values) else values
  if len(tail):
    out[length - len(tail) :] = tail
  return out


# The arrays of `train_windows` whose last axis is the window (max_len positions, right-aligned).
WINDOW_KEYS = (
  "seq",
  "pos",
  "positions",
  "in_dom",
  "seq_a",
  "pos_a",
  "positions_a",
  "time_a",
  "mix_idx_a",
  "seq_b",
  "pos_b",
  "positions_b",
  "time_b",
  "mix_idx_b",
)


def window_lengths(arrays: dict[str, np.ndarray]) -> np.ndarray:
  """int32 [rows]: real (non-padding) positions of each window's mixed stream, for the arrays of
  `train_windows` or `eval_windows`.

  The domain streams hold a subset of the mixed window's items, so no stream of a row is longer.
  """
  return (arrays["seq"] > 0).sum(axis=1).astype(np.int32)


def crop_windows(batch: dict, length: int) -> dict:
  """`batch` with every window array cut to its last `length` positions.

  Windows are right-aligned, so a row with at most `length` real positions loses only padding;
  positions and times are stored per item and do not change, and `mix_idx_*` (indices into the
  mixed axis) shift by the columns removed (-1 where they fall off). Works on numpy and jax arrays
  of shape [B, max_len] (other keys pass through).

  Raises:
    ValueError: `length` is not in [1, max_len].
  """
  full = batch["seq"].shape[-1]
  if not 1 <= length <= full:
    raise ValueError(f"crop length {length} must be in [1, {full}]")
  cut = full - length
  out = dict(batch)
  for key in WINDOW_KEYS:
    if key in batch:
      out[key] = batch[key][..., cut:]
  for key in ("mix_idx_a", "mix_idx_b"):
    if key in batch:
      idx = out[key] - cut
      out[key] = idx * (idx >= 0) - (idx < 0)  # -1 where the mixed position was cut off
  return out


def stack_rows(rows: dict[str, list[np.ndarray]], length: int) -> dict[str, np.ndarray]:
  """{key: int32 [N, ...]} from per-row lists; [0, length] arrays when there are no rows."""
  return {
    k: np.stack(v).astype(np.int32) if v else np.zeros((0, length), np.int32)
    for k, v in rows.items()
  }


def _positions(n: int, length: int) -> np.ndarray:
  """Ascending positions 1..n (1 = oldest item in the window), right-aligned, 0 = padding."""
  return right_align(np.arange(1, n + 1, dtype=np.int32), length)


def _stream(
  items: np.ndarray, times: np.ndarray, length: int, offset: int
) -> dict[str, np.ndarray]:
  """Input arrays of one stream: ids (shifted by -offset for domain-local ids), positions, times."""
  ids = np.where(items > 0, items - offset, 0).astype(np.int32)
  return dict(
    seq=right_align(ids, length),
    positions=_positions(len(items), length),
    time=right_align(times.astype(np.int32), length, fill=-1),
  )


def train_windows(
  ds: dataset_lib.CDSRDataset, max_len: int, min_prefix: int = 2
) -> dict[str, np.ndarray]:
  """Seq2seq training arrays, one row per user whose training prefix has >= `min_prefix` items.

  Returns a dict of arrays with leading dimension U_train:
    user: user index; seq/pos/positions/in_dom: mixed inputs, targets (global ids), positions and
    the
    domain of each input item; seq_a/pos_a/positions_a/time_a and the same for b: domain streams
    with
    local ids; mix_idx_a/mix_idx_b: for each domain-stream position with a target, the mixed-stream
    position predicting the same item (-1 for padding); hist: the whole training prefix (global ids,
    sorted ascending, left-padded with 0) whose items are never drawn as negatives.
  """
  na = ds.num_items_a
  prefix_len = splits.train_lengths(ds)
  users = np.nonzero(prefix_len >= min_prefix)[0]
  h = int(prefix_len[users].max()) if len(users) else 1
  rows: dict[str, list[np.ndarray]] = {k: [] for k in WINDOW_KEYS + ("hist",)}
  L = max_len
  for u in users:
    prefix = ds.sequence(u)[: prefix_len[u]]
    w = prefix[-(L + 1) :]
    dom = (w > na).astype(np.int8)
    n_mix = len(w) - 1
    rows["seq"].append(right_align(w[:-1], L))
    rows["pos"].append(right_align(w[1:], L))
    rows["positions"].append(_positions(n_mix, L))
    rows["in_dom"].append(right_align(dom[:-1].astype(np.int32), L, fill=-1))
    for d, name, offset in ((0, "a", 0), (1, "b", na)):
      idx = np.nonzero(dom == d)[0]  # window indices of this domain's items
      stream = _stream(w[idx[:-1]], idx[:-1], L, offset)
      rows[f"seq_{name}"].append(stream["seq"])
      rows[f"positions_{name}"].append(stream["positions"])
      rows[f"time_{name}"].append(stream["time"])
      tgt = w[idx[1:]]
      rows[f"pos_{name}"].append(
        right_align(np.where(tgt > 0, tgt - offset, 0).astype(np.int32), L)
      )
      # The mixed position predicting window item i is (L - n_mix) + i - 1.
      rows[f"mix_idx_{name}"].append(
        right_align((L - n_mix + idx[1:] - 1).astype(np.int32), L, fill=-1)
      )
    rows["hist"].append(right_align(np.sort(prefix), h))
  out = stack_rows(rows, L)
  out["user"] = users.astype(np.int32)
  return out


def eval_windows(
  ds: dataset_lib.CDSRDataset, split: splits.EvalSplit, max_len: int
) -> dict[str, np.ndarray]:
  """Inputs for next-item evaluation, one row per evaluated user.

  The window is the last `max_len` items of the input prefix; each domain stream holds that
  window's items of its domain (LLM4CDSR also drops the last item of the non-target stream, which
  its scoring never reads; we keep it because a GCA cell does read it).

  Returns seq/positions (mixed), seq_a/positions_a/time_a, seq_b/positions_b/time_b, target
  (global),
  domain (0 = A, 1 = B) and hist (the whole input prefix, sorted, 0-padded, excluded from full
  ranking).
  """
  na = ds.num_items_a
  L = max_len
  h = int(split.input_len.max()) if len(split.users) else 1
  rows: dict[str, list[np.ndarray]] = {
    k: []
    for k in (
      "seq",
      "positions",
      "seq_a",
      "positions_a",
      "time_a",
      "seq_b",
      "positions_b",
      "time_b",
      "hist",
    )
  }
  for u, n in zip(split.users, split.input_len):
    prefix = ds.sequence(u)[:n]
    w = prefix[-L:]
    dom = w > na
    rows["seq"].append(right_align(w, L))
    rows["positions"].append(_positions(len(w), L))
    for d, name, offset in ((False, "a", 0), (True, "b", na)):
      idx = np.nonzero(dom == d)[0]
      stream = _stream(w[idx], idx, L, offset)
      rows[f"seq_{name}"].append(stream["seq"])
      rows[f"positions_{name}"].append(stream["positions"])
      rows[f"time_{name}"].append(stream["time"])
    rows["hist"].append(right_align(np.sort(prefix), h))
  out = stack_rows(rows, L)
  out["target"] = split.targets.astype(np.int32)
  out["domain"] = split.target_domain.astype(np.int32)
  out["user"] = split.users.astype(np.int32)
  return out


def mean_text_profiles(item_text_emb: np.ndarray, hist: np.ndarray) -> np.ndarray:
  """User profile vectors: the mean text embedding of each user's training items.

  orthoalign's substitute for LLM4CDSR's LLM-written user profiles (not available here).

  Args:
    item_text_emb: float [nA + nB + 1, D] text embedding per global item id (row 0 = padding).
    hist: int [U, H] each user's training items (global ids, 0 = padding), e.g. `train_windows`'s.

  Returns:
    float32 [U, D]; zeros for a user without items.
  """
  counts = np.maximum((hist > 0).sum(1, keepdims=True), 1)
  out = np.empty((hist.shape[0], item_text_emb.shape[1]), np.float32)
  # In row chunks: the gathered [U, H, D] block of a real dataset is gigabytes (Food-Kitchen:
  # 51k x 156 x 384 float32, 12 GB); a chunk keeps it near 64 MB.
  step = max(1, (1 << 24) // max(1, hist.shape[1] * item_text_emb.shape[1]))
  for lo in range(0, hist.shape[0], step):
    rows = slice(lo, lo + step)
    out[rows] = item_text_emb[hist[rows]].sum(1) / counts[rows]
  return out
