"""CDSRNP's inputs: one id per person, and its support sets (training pool, frozen eval set)."""

from __future__ import annotations

from typing import Any

import numpy as np

from orthoalign import errors
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.models.cdsrnp.module import stream_keys


def person_ids(ds: dataset_lib.CDSRDataset) -> np.ndarray:
  """int64 [U]: one id per person. Rows of the open-world CSVs that share an original user id
  (`ds.user_ids`, with a user-level split) are one person: the same lists with the other target
  domain, so one row holds the other's target. Otherwise every user is its own person.
  """
  if ds.user_ids is None or ds.user_split is None:
    return np.arange(ds.num_users, dtype=np.int64)
  return np.unique(np.asarray(ds.user_ids), return_inverse=True)[1].astype(np.int64).reshape(-1)


def support_sets(
  train: dict[str, np.ndarray], m: Any, held_out: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """(training pool, frozen evaluation support set): rows of the OVERLAPPED training users.

  The pool is every overlapped training row, or `model.support_pool` of them (0 = all); the eval
  set is `min(model.support_size, #eligible)` of them, drawn with numpy seed
  `model.eval_support_seed` from the overlapped training rows whose person is not held out (with a
  user-level split a held-out person's training rows may hold its test target: the IM-VAE files'
  "seen" test users); with a leave-one-out split every user is held out and training prefixes
  never hold a valid or test target, so all overlapped training rows are eligible.

  Args:
    train: `domain_windows.train_windows` arrays plus "person".
    m: config.model.
    held_out: int [P] persons with a valid or test row under a user-level split (empty otherwise).

  Raises:
    ConfigError: no training user is overlapped.
  """
  rows = np.nonzero(train["overlapped"])[0]
  if not len(rows):
    raise errors.ConfigError(
      f"config key model.name={m.name!r}: CDSRNP needs overlapped training users (items in both "
      "domains) for its support sets; this dataset has none"
    )
  eligible = rows[~np.isin(train["person"][rows], held_out)]
  rng = np.random.default_rng(int(m.eval_support_seed))
  eval_rows = np.sort(rng.choice(eligible, min(int(m.support_size), len(eligible)), replace=False))
  pool_rows = rows
  if m.support_pool and len(rows) > m.support_pool:
    pool_rows = np.sort(rng.choice(rows, int(m.support_pool), replace=False))
  keys = stream_keys(bool(m.mixed_encoder))
  pool = {k: train[k][pool_rows] for k in keys + ("person",)}
  return pool, {k: train[k][eval_rows] for k in keys}
