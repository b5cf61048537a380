"""Dataset statistics: `compute(ds)` (a JSON-able dict, also stored in each manifest) and
`format_text`, the lines `python -m orthoalign.datasets.stats` prints.

The statistics: users (overlapped / A-only / B-only), items and interactions per domain,
sequence-length percentiles, the domain-switch rate, whether each sequence is one merged
cross-domain timeline, the held-out users also seen in training (when recorded) and the
valid/test targets per domain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from orthoalign.datasets.dataset import USER_TEST
from orthoalign.datasets.dataset import USER_TRAIN
from orthoalign.datasets.dataset import USER_VALID
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.splits import SPLITS
from orthoalign.datasets.splits import eval_split

PERCENTILES = (25, 50, 75, 95)


def target_counts(ds: CDSRDataset) -> dict[str, dict[str, int]]:
  """Evaluation targets per split and domain: {split: {'A': n, 'B': n, 'total': n}}."""
  counts = {}
  for split in SPLITS:
    domain = eval_split(ds, split).target_domain
    num_b = int(np.sum(domain == 1))
    counts[split] = {"A": int(domain.shape[0]) - num_b, "B": num_b, "total": int(domain.shape[0])}
  return counts


def duplicate_rows(ds: CDSRDataset) -> int | None:
  """Rows repeating an earlier row of the same user: same item AND timestamp.

  Such exact duplicates usually come from the raw dumps (the baselines'
  originals keep them); when they are a user's last two rows, the validation
  and test targets are the same item. None when the dataset has no
  timestamps (a repeated item without times may be a genuine re-purchase).
  """
  if ds.timestamps is None:
    return None
  n = ds.num_interactions
  if not n:
    return 0
  user = np.repeat(np.arange(ds.num_users), ds.lengths)
  order = np.lexsort((ds.timestamps, ds.items, user))
  u, i, t = user[order], ds.items[order], ds.timestamps[order]
  return int(np.sum((u[1:] == u[:-1]) & (i[1:] == i[:-1]) & (t[1:] == t[:-1])))


def compute(ds: CDSRDataset) -> dict[str, Any]:
  """Returns `ds.summary()` plus length percentiles, the split protocol and target counts.

  Added keys: length (min, p25, p50, p75, p95, max, mean), merged_timeline (bool, see
  `CDSRDataset.merged_timeline`), split ('leave-one-out' or 'user-level'), split_users (user-level
  only: train/valid/test user counts), held_out_in_train (only when `ds.user_in_train` is set:
  {'valid': n, 'test': n} held-out users whose id also has training rows), targets (see
  `target_counts`), duplicate_rows (only with timestamps: see `duplicate_rows`). Values are
  plain Python numbers, ready for JSON.
  """
  out = ds.summary()
  duplicates = duplicate_rows(ds)
  if duplicates is not None:
    out["duplicate_rows"] = duplicates
  lengths = ds.lengths
  if lengths.size:
    length = {"min": int(lengths.min())}
    for q, v in zip(PERCENTILES, np.percentile(lengths, PERCENTILES)):
      length[f"p{q}"] = float(v)
    length.update(max=int(lengths.max()), mean=float(lengths.mean()))
  else:
    length = {k: 0 for k in ("min", *(f"p{q}" for q in PERCENTILES), "max", "mean")}
  out["length"] = length
  out["merged_timeline"] = ds.merged_timeline
  if ds.user_split is None:
    out["split"] = "leave-one-out"
  else:
    out["split"] = "user-level"
    out["split_users"] = {
      name: int(np.sum(ds.user_split == code))
      for name, code in (("train", USER_TRAIN), ("valid", USER_VALID), ("test", USER_TEST))
    }
    if ds.user_in_train is not None:
      out["held_out_in_train"] = {
        name: int(np.sum(ds.user_in_train & (ds.user_split == code)))
        for name, code in (("valid", USER_VALID), ("test", USER_TEST))
      }
  out["targets"] = target_counts(ds)
  return out


def format_text(stats: dict[str, Any]) -> str:
  """Renders `compute`'s dict as aligned human-readable lines."""
  length = stats["length"]
  pct = ", ".join(f"p{q} {length[f'p{q}']:g}" for q in PERCENTILES)
  lines = [
    ("dataset", f"{stats['name']}"),
    (
      "users",
      (
        f"{stats['users']:,} (overlapped {stats['overlapped_users']:,}, "
        f"A-only {stats['a_only_users']:,}, B-only {stats['b_only_users']:,})"
      ),
    ),
    ("items", f"A {stats['items_a']:,}, B {stats['items_b']:,}"),
    (
      "interactions",
      (f"{stats['interactions']:,} (A {stats['interactions_a']:,}, B {stats['interactions_b']:,})"),
    ),
    ("seq length", (f"min {length['min']}, {pct}, max {length['max']}, mean {length['mean']:.2f}")),
    ("domain switch", f"{stats['domain_switch_rate']:.3f} of adjacent same-user pairs"),
  ]
  if "duplicate_rows" in stats:
    lines.append(
      (
        "duplicates",
        f"{stats['duplicate_rows']:,} rows repeat an earlier row's user, item and timestamp",
      )
    )
  if stats.get("merged_timeline", True):
    lines.append(("timeline", "merged (one cross-domain sequence per user)"))
  else:
    lines.append(
      (
        "timeline",
        "NOT merged: per-domain lists concatenated (cross-domain order and "
        "domain switch mean nothing)",
      )
    )
  split = stats["split"]
  if "split_users" in stats:
    split += " (" + ", ".join(f"{k} {v:,}" for k, v in stats["split_users"].items()) + " users)"
  lines.append(("split", split))
  if "held_out_in_train" in stats:
    seen = stats["held_out_in_train"]
    lines.append(
      (
        "in training",
        (f"valid {seen['valid']:,}, test {seen['test']:,} held-out users also have training rows"),
      )
    )
  for name, c in stats["targets"].items():
    lines.append((f"{name} targets", f"A {c['A']:,}, B {c['B']:,} (total {c['total']:,})"))
  width = max(len(k) for k, _ in lines) + 1
  return "\n".join(f"{k + ':':<{width}} {v}" for k, v in lines)
