"""The evaluation splits of a CDSRDataset: leave-one-out cases (`eval_split`), training lengths
and overlapped users.

Leave-one-out: a user with at least MIN_EVAL_LENGTH items is validated on the second-to-last item
and tested on the last, each from the items before it; training sees the rest. Datasets split by
user (`CDSRDataset.user_split`, LLMCDSR's files) evaluate their held-out users' last items.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from orthoalign.datasets.dataset import USER_TEST
from orthoalign.datasets.dataset import USER_TRAIN
from orthoalign.datasets.dataset import USER_VALID
from orthoalign.datasets.dataset import CDSRDataset

MIN_EVAL_LENGTH = 3
SPLITS = ("valid", "test")


def overlapped_users(ds: CDSRDataset) -> np.ndarray:
  """Which users have items of both domains in their whole sequence.

  Counts the user's full sequence (history and evaluation targets alike), the
  same rule as `CDSRDataset.summary()['overlapped_users']`.

  Args:
    ds: the dataset.

  Returns:
    bool [U]; True where user u has at least one domain-A and one domain-B
    item. Non-overlapped (single-domain) users are False.
  """
  if not ds.num_users:
    return np.zeros(0, np.bool_)
  num_b = np.add.reduceat(ds.domains.astype(np.int64), ds.offsets[:-1])
  return (num_b > 0) & (num_b < ds.lengths)


@dataclasses.dataclass(frozen=True)
class EvalSplit:
  """The evaluation cases of one leave-one-out split.

  Case i asks: given `ds.sequence(users[i])[:input_len[i]]`, rank
  `targets[i]` (which is `ds.sequence(users[i])[input_len[i]]`).

  Attributes:
    users: int64 [E] evaluated user indices, ascending.
    targets: int32 [E] global id of each target.
    target_domain: int8 [E] domain of each target (0 = A, 1 = B).
    input_len: int64 [E] length of the input prefix.
    name: 'valid' or 'test' (also seeds the frozen candidate sampling).
  """

  users: np.ndarray
  targets: np.ndarray
  target_domain: np.ndarray
  input_len: np.ndarray
  name: str = ""

  @property
  def num_cases(self) -> int:
    return self.users.shape[0]


def eval_split(ds: CDSRDataset, split: str) -> EvalSplit:
  """Leave-one-out evaluation cases.

  For every user with >= 3 interactions: the test target is the last item
  (input = all earlier items), the valid target the second-last (input = all
  items before it). Users with fewer interactions are not evaluated (and are
  not trained on either; see `train_lengths`).

  Args:
    ds: the dataset.
    split: 'valid' or 'test'.

  Returns:
    The `EvalSplit`.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  lengths = ds.lengths
  if ds.user_split is not None:
    # User-level split: held-out users are evaluated on their last item.
    code = USER_VALID if split == "valid" else USER_TEST
    users = np.flatnonzero((ds.user_split == code) & (lengths >= 2)).astype(np.int64)
    input_len = lengths[users] - 1
    position = ds.offsets[users] + input_len
    return EvalSplit(
      users=users,
      targets=ds.items[position],
      target_domain=ds.domains[position],
      input_len=input_len,
      name=split,
    )
  users = np.flatnonzero(lengths >= MIN_EVAL_LENGTH).astype(np.int64)
  held_out = 1 if split == "test" else 2  # Items at and after the target.
  input_len = lengths[users] - held_out
  position = ds.offsets[users] + input_len
  return EvalSplit(
    users=users,
    targets=ds.items[position],
    target_domain=ds.domains[position],
    input_len=input_len,
    name=split,
  )


def train_lengths(ds: CDSRDataset) -> np.ndarray:
  """Training prefix length per user: len - 2, or 0 for users with < 3 items.

  With a user-level split: the whole sequence of training users, 0 for
  held-out users.

  Training on `sequence(u)[:train_lengths(ds)[u]]` never sees a valid or test
  target.

  Returns:
    int64 [U].
  """
  lengths = ds.lengths
  if ds.user_split is not None:
    return np.where(ds.user_split == USER_TRAIN, lengths, 0)
  return np.where(lengths >= MIN_EVAL_LENGTH, lengths - 2, 0)
