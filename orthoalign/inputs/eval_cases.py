"""Evaluation arrays of a model: its windows of each split, the frozen sampled candidates and the
user groups every metric is also reported for.

Every baseline evaluates the same leave-one-out cases (`splits.eval_split`) against the same frozen
candidate sets (`candidates.frozen`, seeded by `eval.candidate_seed`); only the window layout
differs.

User groups (bool arrays "group/<name>"; the trainer reports every metric per group as
"<split>/<name>/<protocol>/<domain>/<metric>", docs/metrics.md):
  overlapped / non-overlapped   the user's whole sequence has items of both domains, or of one
                                (`splits.overlapped_users`, the field's user-level definition);
  seen / unseen                 only where the dataset records it (`CDSRDataset.user_in_train`,
                                the open-world CSVs): the held-out user also has training rows.
Case groups (the same reporting), only on a merged timeline (`CDSRDataset.merged_timeline`):
  switch / stay                 the target's domain differs from / equals the domain of the last
                                input item (a case without input items is in neither). A switch
                                case is where cross-domain transfer has to carry the prediction;
                                with ABXI's in-place evaluation layout it is also the case whose
                                target-domain stream ends in padding, which GCA cells leave as it
                                is (models/abxi/, docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from orthoalign import errors
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import candidates as candidates_lib
from orthoalign.metrics import keys

# split -> the model's host arrays with a leading dimension of evaluation cases.
WindowsFn = Callable[[splits.EvalSplit], dict[str, np.ndarray]]


def eval_inputs(
  ds: dataset_lib.CDSRDataset, eval_cfg: Any, windows_fn: WindowsFn
) -> dict[str, dict[str, np.ndarray]]:
  """{"valid"|"test": the model's windows of the split + "cand", protocols and groups}.

  Args:
    ds: the dataset.
    eval_cfg: `config.eval` (num_negatives, candidate_seed, extra_negatives).
    windows_fn: the model's evaluation windows (`Baseline.eval_windows`); they must hold
      "domain", "target" and "hist".

  Returns:
    Per split, the windows plus cand: int32 [E, 1 + eval.num_negatives] global ids, column 0 = the
    target (`data.candidates.sample_candidates`), per entry N of `eval.extra_negatives` a
    "protocol/sampled<N>" int32 [E, 1 + N] of the same kind, and the "group/<name>" bool [E] arrays.

  Raises:
    DataError: naming the dataset, for a split without a case.
    ConfigError: naming eval.num_negatives or eval.extra_negatives, for a domain too small.
  """
  overlapped = splits.overlapped_users(ds)
  out = {}
  for name in splits.SPLITS:
    split = splits.eval_split(ds, name)
    if not split.num_cases:
      raise errors.DataError(
        f"no {name} case; expected at least one to select and report on (leave-one-out "
        "evaluates users of >= 3 items; a user-level split its held-out users of >= 2 items)",
        key=f"dataset {ds.name!r}",
      )
    arrays = dict(windows_fn(split))
    arrays.update(user_groups(ds, split.users, overlapped))
    arrays.update(case_groups(ds, split))
    arrays["cand"] = frozen_candidates(
      ds,
      name,
      eval_cfg.num_negatives,
      eval_cfg.candidate_seed,
      f"eval.num_negatives={eval_cfg.num_negatives}",
    )
    extra_negatives = tuple(eval_cfg.extra_negatives)
    for n in extra_negatives:  # declared protocols (metrics/keys.py)
      arrays[f"protocol/{keys.extra_protocol(n)}"] = frozen_candidates(
        ds, name, n, eval_cfg.candidate_seed, f"eval.extra_negatives={extra_negatives} ({n})"
      )
    out[name] = arrays
  return out


def frozen_candidates(
  ds: dataset_lib.CDSRDataset, split: str, n: int, seed: int, setting: str
) -> np.ndarray:
  """int32 [E, 1 + n] frozen candidates (inputs/candidates.py `frozen`).

  Raises:
    ConfigError: naming `setting` (e.g. "eval.num_negatives=100"), for a domain too small for n
      negatives.
  """
  try:
    return candidates_lib.frozen(ds, split, n, seed).astype(np.int32)
  except candidates_lib.TooFewItems as e:
    raise errors.ConfigError(
      f"config key {setting}: asks for more negatives than a user's target "
      f"domain has ({e}); lower that number"
    ) from None


def user_groups(
  ds: dataset_lib.CDSRDataset, users: np.ndarray, overlapped: np.ndarray | None = None
) -> dict[str, np.ndarray]:
  """{"group/<name>": bool [E]} membership of evaluation cases (by user index) in user groups."""
  if overlapped is None:
    overlapped = splits.overlapped_users(ds)
  ov = overlapped[users]
  groups = {"group/overlapped": ov, "group/non-overlapped": ~ov}
  if ds.user_in_train is not None:
    seen = ds.user_in_train[users].astype(bool)
    groups.update({"group/seen": seen, "group/unseen": ~seen})
  return groups


def case_groups(ds: dataset_lib.CDSRDataset, split: splits.EvalSplit) -> dict[str, np.ndarray]:
  """{"group/switch", "group/stay": bool [E]}: target domain != / == the last input item's domain.

  Empty ({}) without a merged timeline: there the order across domains is unknown.
  """
  if not ds.merged_timeline:
    return {}
  has_input = split.input_len > 0
  last = ds.domains[ds.offsets[split.users] + np.maximum(split.input_len, 1) - 1]
  same = last == split.target_domain
  return {"group/switch": has_input & ~same, "group/stay": has_input & same}
