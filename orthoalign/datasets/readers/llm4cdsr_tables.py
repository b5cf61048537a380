"""The LLM4CDSR authors' embedding pickles, read beside their handled data.

The authors' code (liuqidong07/LLM4CDSR-pytorch, models/LLMCDSR.py) reads, from
`data/<dataset>/handled/`, with `<item>` = its `--llm_emb_file` ("itm_emb_np" in the Amazon
scripts, "item_emb" for Douban) and `<user>` = its `--user_emb_file` ("usr_profile_emb"):

  <item>_all.pkl        float [nA+nB, D]  joint PCA (D = 1024) of the items' LLM embeddings
                                          (pca.ipynb); row i = global item id i + 1
  <item>_A_pca128.pkl   float [nA, 128]   per-domain PCA of domain A's; row i = local A id i + 1
  <item>_B_pca128.pkl   float [nB, 128]   the same for domain B
  <user>.pkl            float [U, Du]     ada-002 embeddings of the users' GPT profiles (Du = 1536,
                                          user_profile.py); row i = the user at dataset index i

Upstream indexes the user table with the training dataset's index: the i-th user, in the handled
pickle's order, among users with at least 3 interactions (generators/generator.py skips the
others); its handle notebooks write users in ascending id, which is the order orthoalign's
`handled` reader keeps. Every file goes through the restricted unpickler
(`safe_pickle.safe_load_pickle`): only numeric numpy arrays are accepted, nothing is executed.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from orthoalign.datasets.readers import safe_pickle
from orthoalign.errors import DataError

# Users with fewer interactions are skipped by upstream's dataset (generators/generator.py), so
# they have no dataset index.
MIN_INTERACTIONS = 3


@dataclasses.dataclass(frozen=True)
class AuthorTables:
  """The authors' tables, checked against the dataset's catalog sizes.

  Attributes:
    folder: where they were read.
    item_all: float32 [nA+nB, D], row i = global item id i + 1.
    item_a: float32 [nA, d_local], row i = local A id i + 1.
    item_b: float32 [nB, d_local].
    users: float32 [num_users, Du] by orthoalign user index (rows of users with fewer than
      MIN_INTERACTIONS interactions are zero), or None when the user file is absent.
    files: the file names read, in the order above.
  """

  folder: str
  item_all: np.ndarray
  item_a: np.ndarray
  item_b: np.ndarray
  users: np.ndarray | None
  files: tuple[str, ...]

  def describe(self) -> str:
    shapes = [self.item_all, self.item_a, self.item_b] + (
      [self.users] if self.users is not None else []
    )
    return ", ".join(f"{f} [{'x'.join(map(str, a.shape))}]" for f, a in zip(self.files, shapes))


def item_file_names(item_file: str) -> tuple[str, str, str]:
  """The three item-table file names upstream derives from `--llm_emb_file`."""
  return f"{item_file}_all.pkl", f"{item_file}_A_pca128.pkl", f"{item_file}_B_pca128.pkl"


def _matrix(folder: str, name: str, rows: int | None) -> np.ndarray:
  path = os.path.join(folder, name)
  value = safe_pickle.safe_load_pickle(path, expected="a 2-D float numpy array")
  if not isinstance(value, np.ndarray) or value.ndim != 2 or value.dtype.kind not in "fiu":
    what = (
      f"a {value.dtype} array of shape {value.shape}"
      if isinstance(value, np.ndarray)
      else f"a {type(value).__name__}"
    )
    raise DataError(f"holds {what}; expected a 2-D float array", path=path)
  if rows is not None and value.shape[0] != rows:
    raise DataError(
      f"has {value.shape[0]} rows; expected {rows} (one per item, row i = id i + 1)", path=path
    )
  if not np.all(np.isfinite(value)):
    raise DataError("holds NaN or infinite values; expected finite embeddings", path=path)
  return value.astype(np.float32)


def load(
  folder: str,
  user_lengths: np.ndarray,
  num_items_a: int,
  num_items_b: int,
  item_file: str = "itm_emb_np",
  user_file: str = "usr_profile_emb",
) -> AuthorTables | None:
  """Reads the authors' tables from `folder`, or None when none of the item files is there.

  Args:
    folder: the handled data folder (or wherever the pickles are).
    user_lengths: int [num_users], interactions per user in orthoalign's user order.
    num_items_a, num_items_b: the catalog sizes the tables must match.
    item_file, user_file: upstream's `--llm_emb_file` and `--user_emb_file`.

  Returns:
    AuthorTables (users None if `<user_file>.pkl` is absent), or None if no item file exists.

  Raises:
    DataError: naming the file, when only some item files exist, a file is not a 2-D numeric
      array (or not a valid pickle, or names anything but numpy), the row counts do not match the
      catalog (items) or the users with >= 3 interactions (users; more rows are allowed and
      ignored), or A and B tables differ in width.
  """
  names = item_file_names(item_file)
  present = [os.path.isfile(os.path.join(folder, n)) for n in names]
  if not any(present):
    return None
  if not all(present):
    raise DataError(
      f"has {[n for n, p in zip(names, present) if p]} but not "
      f"{[n for n, p in zip(names, present) if not p]}; the authors' item tables come "
      "as all three files (or none, for orthoalign's substitutes)",
      path=folder,
    )
  item_all = _matrix(folder, names[0], num_items_a + num_items_b)
  item_a = _matrix(folder, names[1], num_items_a)
  item_b = _matrix(folder, names[2], num_items_b)
  if item_a.shape[1] != item_b.shape[1]:
    raise DataError(
      f"is {item_b.shape[1]} wide but {names[1]} is {item_a.shape[1]}; expected equal widths",
      path=os.path.join(folder, names[2]),
    )
  users, files = None, names
  user_name = f"{user_file}.pkl"
  if os.path.isfile(os.path.join(folder, user_name)):
    table = _matrix(folder, user_name, None)
    eligible = np.flatnonzero(np.asarray(user_lengths) >= MIN_INTERACTIONS)
    if table.shape[0] < len(eligible):
      raise DataError(
        f"has {table.shape[0]} rows; expected at least {len(eligible)} (one per user "
        f"with >= {MIN_INTERACTIONS} interactions, in ascending user id)",
        path=os.path.join(folder, user_name),
      )
    users = np.zeros((len(user_lengths), table.shape[1]), np.float32)
    users[eligible] = table[: len(eligible)]
    files = names + (user_name,)
  return AuthorTables(
    folder=folder, item_all=item_all, item_a=item_a, item_b=item_b, users=users, files=files
  )
