"""Per-domain right-aligned windows for models with one encoder per domain (CDSRNP).

Unlike `inputs/windows.py` (whose domain streams are the items of one merged window), each domain
stream here is the last `max_len` items of that domain's own history, so a user whose history is
dominated by one domain still gives the other domain's encoder its full window.

Training (one row per user whose training prefix, `splits.train_lengths`, has >= `min_prefix`
items): each domain stream is a seq2seq pair over the domain's items of the prefix. The inputs are
the last `max_len` domain items (ALL of them, including the last one, so that the last position's
state summarises the whole domain history; CDSRNP reads it as the user's context representation)
and the target of position t is the next item of the same domain (0 after the last item and on
padding). Evaluation (one row per case of `splits.eval_split`): each domain stream is the last
`max_len` domain items of the input prefix; the model scores the target at the last position of
the target domain's stream.

Times (`time_a`, `time_b`): the index of each token's item in the merged sequence (the training or
input prefix), -1 on padding. A GCA cell lets a query token at time t see the key tokens at time
<= t (models/gca.py: `y_time <= x_time`). A dataset without a merged timeline
(`CDSRDataset.merged_timeline` False: the open-world CSV files store the non-target domain's list
followed by the target domain's list, so positions across the two lists say nothing about order)
gets time 0 on every valid token: the causal cross-mask then lets every query token see every valid
key of the other stream. Per-domain order stays valid there. Caveat: with two or more GCA
exchanges the second exchange can carry a domain's later items back into its own earlier training
positions through the other stream (evaluation inputs never hold the target, so evaluation is
unaffected); with a merged timeline the causal mask rules this out.

Mixed stream (`mixed=True`, merged timeline only): `seq_m`/`positions_m` are the last `max_len`
items of the merged prefix (global ids). In training they are taken from the prefix minus its last
item and `mix_idx_a`/`mix_idx_b` give, for each domain token with a target, the mixed position of
the merged item just before that target (-1 when it lies before the mixed window, on padding and on
the last token): the mixed state there has read all history before the target and nothing after.
At evaluation the mixed stream's last position is the state before the target.
"""

from __future__ import annotations

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import windows

_DOMAINS = ((0, "a"), (1, "b"))


def has_merged_timeline(ds: dataset_lib.CDSRDataset) -> bool:
  """Whether positions in a user's sequence order items across domains (default True)."""
  return bool(getattr(ds, "merged_timeline", True))


def _positions(n: int, length: int) -> np.ndarray:
  """Ascending positions 1..n (1 = oldest kept item), right-aligned, 0 = padding."""
  return windows.right_align(np.arange(1, n + 1), length)


def _domain_inputs(
  prefix: np.ndarray, dom: np.ndarray, d: int, offset: int, length: int, timeline: bool
) -> tuple[dict[str, np.ndarray], np.ndarray]:
  """Input arrays (seq: local ids, positions, time) of domain d's last `length` items of `prefix`,
  plus their merged indices.
  """
  idx = np.nonzero(dom == d)[0][-length:]
  times = idx if timeline else np.zeros_like(idx)  # no timeline: every key is visible (docstring)
  return dict(
    seq=windows.right_align(prefix[idx] - offset, length),
    positions=_positions(len(idx), length),
    time=windows.right_align(times, length, fill=-1),
  ), idx


def train_windows(
  ds: dataset_lib.CDSRDataset, max_len: int, min_prefix: int = 2, mixed: bool = False
) -> dict[str, np.ndarray]:
  """Per-domain seq2seq training arrays, one row per user with >= `min_prefix` training items.

  Args:
    ds: the dataset.
    max_len: window length L of every stream.
    min_prefix: shortest training prefix that gives a row.
    mixed: also build the mixed stream (needs a merged timeline).

  Returns:
    int32 arrays with leading dimension U_train (bool for `overlapped`):
      user [U]; overlapped [U] (the training prefix has items of both domains);
      seq_a, pos_a, positions_a, time_a [U, L]: A inputs, next-A-item targets (local ids, 0 =
      none), positions 1..n (1 = oldest, 0 = padding), merged times (-1 = padding); the same for b;
      hist [U, H]: the whole training prefix (global ids) sorted, left-padded with 0;
      with `mixed`: seq_m, positions_m, mix_idx_a, mix_idx_b [U, L].

  Raises:
    ValueError: `mixed` for a dataset without a merged timeline.
  """
  timeline = has_merged_timeline(ds)
  if mixed and not timeline:
    raise ValueError(f"dataset {ds.name!r} has no merged timeline; a mixed stream needs one")
  na = ds.num_items_a
  prefix_len = splits.train_lengths(ds)
  users = np.nonzero(prefix_len >= min_prefix)[0]
  h = int(prefix_len[users].max()) if len(users) else 1
  L = max_len
  keys = [f"{k}_{s}" for _, s in _DOMAINS for k in ("seq", "pos", "positions", "time")] + ["hist"]
  if mixed:
    keys += ["seq_m", "positions_m", "mix_idx_a", "mix_idx_b"]
  rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
  overlapped = []
  for u in users:
    prefix = ds.sequence(u)[: prefix_len[u]]
    dom = (prefix > na).astype(np.int8)
    overlapped.append(bool(dom.min() == 0 and dom.max() == 1))
    if mixed:
      n_mix = min(len(prefix) - 1, L)
      start = len(prefix) - 1 - n_mix  # merged index of the first mixed input
      rows["seq_m"].append(windows.right_align(prefix[start : len(prefix) - 1], L))
      rows["positions_m"].append(_positions(n_mix, L))
    for d, s in _DOMAINS:
      offset = na if d else 0
      stream, idx = _domain_inputs(prefix, dom, d, offset, L, timeline)
      rows[f"seq_{s}"].append(stream["seq"])
      rows[f"positions_{s}"].append(stream["positions"])
      rows[f"time_{s}"].append(stream["time"])
      # Target of a token = the next item of its domain; the last kept item has none in the prefix.
      nxt = np.nonzero(dom == d)[0]
      nxt = nxt[len(nxt) - len(idx) + 1 :]
      tgt = np.append(prefix[nxt] - offset, 0) if len(idx) else np.zeros(0, np.int32)
      rows[f"pos_{s}"].append(windows.right_align(tgt, L))
      if mixed:
        before = nxt - 1 - start  # mixed position of the item before it
        before = np.where(before >= 0, L - n_mix + before, -1)
        rows[f"mix_idx_{s}"].append(
          windows.right_align(
            np.append(before, -1).astype(np.int32) if len(idx) else np.zeros(0, np.int32), L, -1
          )
        )
    rows["hist"].append(windows.right_align(np.sort(prefix), h))
  out = windows.stack_rows(rows, L)
  out["hist"] = out["hist"] if len(users) else np.zeros((0, h), np.int32)
  out["user"] = users.astype(np.int32)
  out["overlapped"] = np.asarray(overlapped, bool)
  return out


def eval_windows(
  ds: dataset_lib.CDSRDataset, split: splits.EvalSplit, max_len: int, mixed: bool = False
) -> dict[str, np.ndarray]:
  """Per-domain inputs for next-item evaluation, one row per case of `split`.

  Args:
    ds: the dataset.
    split: the evaluation cases (`splits.eval_split`).
    max_len: window length L of every stream.
    mixed: also build the mixed stream (needs a merged timeline).

  Returns:
    int32 arrays with leading dimension E (bool for `overlapped`): seq_a, positions_a, time_a and
    the same for b [E, L] (the input prefix's items of each domain, local ids); target [E] (global
    id); domain [E] (0 = A, 1 = B); user [E]; overlapped [E] (the input prefix has both domains);
    hist [E, H] (the whole input prefix, sorted, 0-padded: excluded from full ranking); with
    `mixed`: seq_m, positions_m [E, L].

  Raises:
    ValueError: `mixed` for a dataset without a merged timeline.
  """
  timeline = has_merged_timeline(ds)
  if mixed and not timeline:
    raise ValueError(f"dataset {ds.name!r} has no merged timeline; a mixed stream needs one")
  na = ds.num_items_a
  L = max_len
  h = int(split.input_len.max()) if len(split.users) else 1
  keys = [f"{k}_{s}" for _, s in _DOMAINS for k in ("seq", "positions", "time")] + ["hist"]
  if mixed:
    keys += ["seq_m", "positions_m"]
  rows: dict[str, list[np.ndarray]] = {k: [] for k in keys}
  overlapped = []
  for u, n in zip(split.users, split.input_len):
    prefix = ds.sequence(u)[:n]
    dom = (prefix > na).astype(np.int8)
    overlapped.append(bool(len(prefix) and dom.min() == 0 and dom.max() == 1))
    for d, s in _DOMAINS:
      stream, _ = _domain_inputs(prefix, dom, d, na if d else 0, L, timeline)
      for k in ("seq", "positions", "time"):
        rows[f"{k}_{s}"].append(stream[k])
    if mixed:
      rows["seq_m"].append(windows.right_align(prefix[-L:], L))
      rows["positions_m"].append(_positions(min(len(prefix), L), L))
    rows["hist"].append(windows.right_align(np.sort(prefix), h))
  out = windows.stack_rows(rows, L)
  out["hist"] = out["hist"] if len(split.users) else np.zeros((0, h), np.int32)
  out["target"] = split.targets.astype(np.int32)
  out["domain"] = split.target_domain.astype(np.int32)
  out["user"] = split.users.astype(np.int32)
  out["overlapped"] = np.asarray(overlapped, bool)
  return out
