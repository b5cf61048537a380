"""Evaluation arrays of a model: its windows of each split, the frozen sampled candidates and the
user groups every metric is also reported for.

Every baseline evaluates the same leave-one-out cases (`dataset.eval_split`) against the same frozen
candidate sets (`load.candidates`, seeded by `eval.candidate_seed`); only the window layout differs.

User groups (bool arrays "group/<name>"; the trainer reports every metric per group as
"<split>/<name>/<protocol>/<domain>/<metric>", docs/metrics.md):
  overlapped / non-overlapped   the user's whole sequence has items of both domains, or of one
                                (`dataset.overlapped_users`, the field's user-level definition);
  seen / unseen                 only where the dataset records it (`CDSRDataset.user_in_train`,
                                the open-world CSVs): the held-out user also has training rows.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from orthoalign.data import dataset as dataset_lib
from orthoalign.data import load as data_load

# (dataset, split) -> host arrays with a leading dimension of evaluation cases.
WindowsFn = Callable[[dataset_lib.CDSRDataset, dataset_lib.EvalSplit], dict[str, np.ndarray]]


def eval_inputs(ds: dataset_lib.CDSRDataset, eval_cfg: Any, windows_fn: WindowsFn,
                extra: Callable[[str], dict[str, np.ndarray]] | None = None
                ) -> dict[str, dict[str, np.ndarray]]:
  """{"valid"|"test": the model's windows of the split + "cand" (+ `extra(split)`)}.

  Args:
    ds: the dataset.
    eval_cfg: `config.eval` (num_negatives, candidate_seed).
    windows_fn: the model's evaluation windows; they must hold "domain", "target" and "hist"
      (see `models.task.Task.eval_data`).
    extra: more per-split arrays (e.g. a second candidate set), keyed by split name.

  Returns:
    Per split, the windows plus cand: int32 [E, 1 + eval.num_negatives] global ids, column 0 = the
    target (`data.candidates.sample_candidates`), and the "group/<name>" bool [E] arrays.
  """
  overlapped = dataset_lib.overlapped_users(ds)
  out = {}
  for name in dataset_lib.SPLITS:
    split = dataset_lib.eval_split(ds, name)
    arrays = dict(windows_fn(ds, split))
    arrays.update(user_groups(ds, split.users, overlapped))
    arrays["cand"] = data_load.candidates(ds, name, eval_cfg.num_negatives,
                                          eval_cfg.candidate_seed).astype(np.int32)
    if extra is not None:
      arrays.update(extra(name))
    out[name] = arrays
  return out


def user_groups(ds: dataset_lib.CDSRDataset, users: np.ndarray,
                overlapped: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """{"group/<name>": bool [E]} membership of evaluation cases (by user index) in each user group."""
  if overlapped is None:
    overlapped = dataset_lib.overlapped_users(ds)
  ov = overlapped[users]
  groups = {"group/overlapped": ov, "group/non-overlapped": ~ov}
  if ds.user_in_train is not None:
    seen = ds.user_in_train[users].astype(bool)
    groups.update({"group/seen": seen, "group/unseen": ~seen})
  return groups
