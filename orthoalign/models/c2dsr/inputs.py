"""C2DSR's input arrays: the loader's training rows, evaluation rows and item graphs.

Ported from `cjx96/C2DSR` f23f18a `C2DSR_src/utils/loader.py` (`preprocess`,
`preprocess_for_predict`) and `utils/GraphMaker.py` (`preprocess`). Ids here are orthoalign's
global ids (0 = padding, A = 1..nA, B = nA+1..nA+nB); the original's are these minus 1, its
padding id nA+nB. Windows have `max_len` slots, left-padded; positions count forwards (1 = the
oldest item of the window), per stream. A sequence longer than the window keeps its most recent
items (the original's data never are: its loader would index past the position table).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import windows

# The arrays of a training row, each int32 [max_len] (module.C2DSR and loss.py read them).
TRAIN_KEYS = (
  "seq",  # the input items (the loader's `d` / `seq`)
  "seq_a",  # the A stream's items in place, 0 elsewhere (`xd`, after the loader's drop)
  "seq_b",
  "pos",  # 1..n over the window's items (`position`)
  "pos_a",  # 1..k over the A items (`x_position`; 0 at a dropped item)
  "pos_b",
  "target",  # the next item (`ground`)
  "target_a",  # the next A item of an A slot, 0 = none (`x_ground` where `x_ground_mask`)
  "target_b",
  "corrupt_a",  # A items kept, B items replaced by random B items (`corru_x`)
  "corrupt_b",  # B items kept, A items replaced by random A items (`corru_y`)
)


def _stream(items: np.ndarray, in_dom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """One domain's in-place stream: (its ids, 0 elsewhere; its positions 1..k, 0 elsewhere)."""
  return np.where(in_dom, items, 0), np.where(in_dom, np.cumsum(in_dom), 0)


def _stream_targets(
  items: np.ndarray, in_dom: np.ndarray, final: int, final_in: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """One domain's stream of a training row, the loader's backward loop over `x_position`.

  Returns:
    (ids [n] of the stream, 0 elsewhere; its positions 1..k, 0 elsewhere; targets [n]: each item's
    next item of the domain, the last one's the final target when `final_in`, else the last item
    is dropped from the stream (id and position 0) and has no target).
  """
  slots = np.flatnonzero(in_dom)
  ids, pos = _stream(items, in_dom)
  target = np.zeros(len(items), np.int64)
  target[slots[:-1]] = items[slots[1:]]
  if len(slots):
    if final_in:
      target[slots[-1]] = final
    else:
      ids[slots[-1]] = 0
      pos[slots[-1]] = 0
  return ids, pos, target


def train_row(
  sequence: np.ndarray,
  num_items_a: int,
  num_items_b: int,
  max_len: int,
  rng: np.random.Generator,
  final_b0_off_by_one: bool = True,
) -> dict[str, np.ndarray] | None:
  """The loader's `preprocess` for one training sequence (its last item the final target).

  Args:
    sequence: int [n + 1] global ids in time order; cut to its last max_len items.
    num_items_a, num_items_b: nA, nB.
    max_len: window slots.
    rng: draws the corrupted sequences' random items.
    final_b0_off_by_one: the loader's strict `ground[-1] > source_item_num` (Config).

  Returns:
    {TRAIN_KEYS: int32 [max_len]}, or None where the loader skips the row ("pass sequence x/y":
    no A target or no B target).
  """
  s = np.asarray(sequence, np.int64)[-max_len:]
  d, final = s[:-1], int(s[-1])
  in_a = d <= num_items_a
  final_in_a = final <= num_items_a
  final_in_b = final > num_items_a + (1 if final_b0_off_by_one else 0)
  seq_a, pos_a, target_a = _stream_targets(d, in_a, final, final_in_a)
  seq_b, pos_b, target_b = _stream_targets(d, ~in_a, final, final_in_b)
  if not target_a.any() or not target_b.any():
    return None
  random_b = rng.integers(num_items_a + 1, num_items_a + num_items_b + 1, len(d))
  random_a = rng.integers(1, num_items_a + 1, len(d))
  row = dict(
    seq=d,
    seq_a=seq_a,
    seq_b=seq_b,
    pos=np.arange(1, len(d) + 1),
    pos_a=pos_a,
    pos_b=pos_b,
    target=s[1:],
    target_a=target_a,
    target_b=target_b,
    corrupt_a=np.where(in_a, d, random_b),
    corrupt_b=np.where(in_a, random_a, d),
  )
  return {k: windows.right_align(row[k], max_len) for k in TRAIN_KEYS}


def train_sequences(ds: dataset_lib.CDSRDataset) -> tuple[np.ndarray, list[np.ndarray]]:
  """(users, their training sequences): the train part of every user with >= 2 training items
  (leave-one-out: all but the last two items; a user-level split: the training users' lines).
  """
  train_len = splits.train_lengths(ds)
  users = np.flatnonzero(train_len >= 2)
  return users, [ds.sequence(u)[: train_len[u]] for u in users]


def train_windows(
  ds: dataset_lib.CDSRDataset,
  max_len: int,
  corrupt_seed: int,
  final_b0_off_by_one: bool = True,
) -> dict[str, np.ndarray]:
  """Training arrays, one row per training sequence the loader keeps (`train_row`).

  Returns:
    {TRAIN_KEYS: int32 [R, max_len]} and user [R].
  """
  rng = np.random.default_rng(corrupt_seed)
  rows: dict[str, list[np.ndarray]] = {k: [] for k in TRAIN_KEYS}
  kept = []
  users, sequences = train_sequences(ds)
  for u, s in zip(users, sequences):
    row = train_row(s, ds.num_items_a, ds.num_items_b, max_len, rng, final_b0_off_by_one)
    if row is not None:
      kept.append(u)
      for k in TRAIN_KEYS:
        rows[k].append(row[k])
  out = windows.stack_rows(rows, max_len)
  out["user"] = np.asarray(kept, np.int32)
  return out


# The arrays of an evaluation row (`eval_row`): the training row's inputs and the slot each domain
# stream is read at.
EVAL_KEYS = ("seq", "seq_a", "seq_b", "pos", "pos_a", "pos_b", "idx_last_a", "idx_last_b")


def eval_row(history: np.ndarray, num_items_a: int, max_len: int) -> dict[str, np.ndarray]:
  """The loader's `preprocess_for_predict` for one history (its last max_len - 1 items).

  Returns:
    seq, seq_a, seq_b, pos, pos_a, pos_b (int32 [max_len], as in training, nothing dropped) and
    idx_last_a, idx_last_b: the slot of each domain's last item, max_len - 1 where the window has
    none (the original's index -1).
  """
  d = np.asarray(history, np.int64)[-(max_len - 1) :]
  in_a = d <= num_items_a
  (seq_a, pos_a), (seq_b, pos_b) = _stream(d, in_a), _stream(d, ~in_a)
  row = dict(
    seq=d, seq_a=seq_a, seq_b=seq_b, pos=np.arange(1, len(d) + 1), pos_a=pos_a, pos_b=pos_b
  )
  out = {k: windows.right_align(v, max_len) for k, v in row.items()}
  for key, stream in (("idx_last_a", "seq_a"), ("idx_last_b", "seq_b")):
    slots = np.flatnonzero(out[stream])
    out[key] = np.int32(slots[-1] if len(slots) else max_len - 1)
  return out


def eval_windows(
  ds: dataset_lib.CDSRDataset, split: splits.EvalSplit, max_len: int
) -> dict[str, np.ndarray]:
  """Inputs for next-item evaluation, one row per case of the split.

  Returns:
    `eval_row`'s arrays stacked, target (global id), domain (0 = A, 1 = B), hist (the whole input
    prefix, sorted, 0-padded; excluded from full ranking) and user.
  """
  width = int(split.input_len.max()) if split.num_cases else 1
  prefixes = [ds.sequence(u)[:n] for u, n in zip(split.users, split.input_len)]
  rows = [eval_row(p, ds.num_items_a, max_len) for p in prefixes]
  out = windows.stack_rows({k: [r[k] for r in rows] for k in EVAL_KEYS}, max_len)
  for key in ("idx_last_a", "idx_last_b"):
    out[key] = out[key].reshape(-1)  # scalars per row ([0] when there is no row)
  hist = [windows.right_align(np.sort(p), width) for p in prefixes]
  out["hist"] = windows.stack_rows({"h": hist}, width)["h"]
  out["target"] = split.targets.astype(np.int32)
  out["domain"] = split.target_domain.astype(np.int32)
  out["user"] = split.users.astype(np.int32)
  return out


class Graph(NamedTuple):
  """A row-normalised sparse item graph over the original's index space (row r = global id r + 1,
  row nA+nB = padding): entry (rows[e], cols[e]) = weights[e].

  Attributes:
    rows, cols: int32 [E] (sorted by row, then column; each pair once).
    weights: float64 [E]: count of the edge / count of the row's edges (`normalize`).
  """

  rows: np.ndarray
  cols: np.ndarray
  weights: np.ndarray


def _normalised(edges: list[tuple[int, int]]) -> Graph:
  """`normalize(coo_matrix(ones, edges))`: duplicates summed, then each row divided by its sum."""
  pairs = np.asarray(edges, np.int64).reshape(-1, 2)
  unique, counts = np.unique(pairs, axis=0, return_counts=True)
  unique = unique.reshape(-1, 2)
  row_sum = np.bincount(unique[:, 0], weights=counts)
  weights = counts / row_sum[unique[:, 0]]
  return Graph(unique[:, 0].astype(np.int32), unique[:, 1].astype(np.int32), weights)


def item_graphs(sequences: Iterable[Sequence[int]], num_items_a: int) -> tuple[Graph, Graph]:
  """GraphMaker's two graphs from the training sequences (global ids, time order).

  The original's `real_adj` is never filled, so its duplicate test never fires: every consecutive
  pair is an edge, repeats counted.

  Returns:
    (the merged graph: an edge from each item to the next item of the sequence; the single-domain
    graph: an edge from each item to the next item of its own domain), in the original's indices.
  """
  merged, single = [], []
  for seq in sequences:
    ids = np.asarray(seq, np.int64) - 1
    merged.extend(zip(ids[:-1].tolist(), ids[1:].tolist()))
    for in_dom in (ids < num_items_a, ids >= num_items_a):
      own = ids[in_dom]
      single.extend(zip(own[:-1].tolist(), own[1:].tolist()))
  return _normalised(merged), _normalised(single)
