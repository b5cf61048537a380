"""Reader for the AMID / IM-VAE "open-world" CSV files (`WujiangXu/IM-VAE`, dataset/).

A dataset folder holds exactly one of each:

  <pair>_train.csv      training examples     } header `user_id,seq_d1,seq_d2,domain_id`,
  <pair>_test_csu.csv   test examples         } one example per row

(e.g. `phone_elec_train.csv`, `phone_elec_test_csu.csv`; other files, such as
the `_updated` variants or a README, are ignored). Columns:

  user_id    the original user id (a non-negative integer)
  seq_d1     JSON list of domain-1 item ids, the user's domain-1 history
  seq_d2     JSON list of domain-2 item ids
  domain_id  0 or 1: the target is the LAST element of seq_d1 (0) or seq_d2 (1)

Either list may be empty (a non-overlapped, single-domain user), but not the
target's. There are no timestamps and no merged timeline: the two lists
cannot be interleaved.

Mapping onto `CDSRDataset`:
  * Domain A = domain 1 = `seq_d1` (Cell Phones for phone_elec, Clothing for
    cloth_sport); domain B = domain 2 = `seq_d2` (Electronics, Sports).
  * Each CSV row is one dataset "user": the NON-target domain's list, then the
    target domain's list, each in file order, so the target is the last item
    and `eval_split`'s user-level rule (last item = target) applies unchanged.
    `merged_timeline` is False: the order across the two lists means nothing.
  * Users: training-file rows in file order, then test-file rows in file order.
    `user_split`: test rows USER_TEST; training rows USER_TRAIN, except a
    seeded validation carve (below) that becomes USER_VALID.
  * Items: each domain has its own id map (quirk a). The ids a domain's lists
    use (over both files) are sorted ascending and numbered 1..n_d; global id =
    local id for A and nA + local id for B. `item_keys` holds the original id
    as a decimal string. Items that occur only in the test file are in the
    catalogue too, so they can be ranked.
  * `user_ids`: the original user id (int64) of every row. A user id that
    occurs on several rows (quirk b; in these files the rows of one id carry
    identical lists and differ only in `domain_id`) stays several examples.
  * `user_in_train` (quirk c): True for a held-out row whose user id also owns
    USER_TRAIN rows. In the shipped files every such test row's target item is
    in that user's training lists, so report results for both subsets.

Validation carve (`valid_fraction`, `valid_seed`): among the training file's
distinct user ids that do NOT occur in the test file, `round(valid_fraction *
count)` ids are drawn with `np.random.default_rng(valid_seed)` (from the ids in
ascending order) and ALL their training rows become USER_VALID. Carving whole
user ids keeps a validation target out of the same person's training rows;
leaving test users out of the pool keeps `user_in_train` equal to "the user id
occurs in the training file" and all validation users unseen, like the
cold-start test set.

Bad rows (bad-line policy, `BadLines`; each error names file and line): not
UTF-8, not 4 CSV fields, a user id that is not a non-negative integer, a list
that is not a JSON list of non-negative integers, a domain_id other than 0 or
1, an empty target list. Always fatal: a missing, ambiguous or mismatched file
pair, a missing or wrong header, a file with no rows left, a domain with no
items. See docs/data.md ("AMID / IM-VAE open-world CSV").
"""

from __future__ import annotations

import csv
import json
import os
import pathlib
import re
from typing import Any

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import format as format_lib
from orthoalign.errors import DataError

TRAIN_SUFFIX = "_train.csv"
TEST_SUFFIX = "_test_csu.csv"
HEADER = ("user_id", "seq_d1", "seq_d2", "domain_id")
DEFAULT_VALID_FRACTION = 0.1
DEFAULT_VALID_SEED = 0

# A JSON list of plain non-negative integers of at most 18 digits (JSON forbids leading zeros),
# e.g. `[3, 14, 15]` or `[]`.
_ID = r"(?:0|[1-9][0-9]{0,17})"
_ID_LIST = re.compile(rf"\[\s*(?:{_ID}\s*(?:,\s*{_ID}\s*)*)?\]")


def find_files(path: str | os.PathLike[str]) -> tuple[pathlib.Path, pathlib.Path]:
  """Returns the folder's (train, test) CSV pair.

  Args:
    path: the dataset folder.

  Returns:
    (`<pair>_train.csv`, `<pair>_test_csu.csv`).

  Raises:
    DataError: naming the folder, if it is missing, holds zero or several
      files of either kind, or the two files' <pair> prefixes differ.
  """
  folder = pathlib.Path(path)
  if not folder.is_dir():
    raise DataError("not found; expected an IM-VAE dataset folder", path=folder)
  found = []
  for suffix in (TRAIN_SUFFIX, TEST_SUFFIX):
    files = sorted(f for f in folder.glob("*" + suffix) if f.is_file())
    if len(files) != 1:
      names = ", ".join(f.name for f in files) or "none"
      raise DataError(
        f"found {len(files)} *{suffix} files ({names}); expected exactly one", path=folder
      )
    found.append(files[0])
  train, test = found
  if train.name.removesuffix(TRAIN_SUFFIX) != test.name.removesuffix(TEST_SUFFIX):
    raise DataError(
      f"{train.name} and {test.name} name different pairs; expected "
      f"<pair>{TRAIN_SUFFIX} and <pair>{TEST_SUFFIX}",
      path=folder,
    )
  return train, test


def _parse_list(text: str, column: str) -> list[int]:
  """Parses a JSON list of non-negative integer item ids."""
  text = text.strip()
  if _ID_LIST.fullmatch(text):
    return json.loads(text)
  # Slow path, only to say what is wrong.
  try:
    value = json.loads(text)
  except (json.JSONDecodeError, RecursionError):
    raise DataError(
      f"{column} {abxi.show(text)} is not valid JSON; expected a JSON list of "
      "item ids such as [3, 14]"
    ) from None
  if not isinstance(value, list):
    raise DataError(f"{column} is a JSON {type(value).__name__}; expected a JSON list of item ids")
  for j, item in enumerate(value, 1):
    if not abxi.is_int(item) or item < 0 or item >= 10**18:
      raise DataError(
        f"{column} item {j}: {abxi.show(json.dumps(item))} is not a "
        "non-negative integer id (at most 18 digits)"
      )
  return value


def _parse_row(text: str) -> tuple[int, list[int], list[int], int]:
  """Parses one data line; returns (user id, seq_d1, seq_d2, domain_id)."""
  fields = next(csv.reader([text]))
  if len(fields) != len(HEADER):
    raise DataError(f"{len(fields)} fields; expected {len(HEADER)} ({','.join(HEADER)})")
  uid = abxi.parse_uint(fields[0].strip(), "user_id")
  seq_d1 = _parse_list(fields[1], "seq_d1")
  seq_d2 = _parse_list(fields[2], "seq_d2")
  domain = fields[3].strip()
  if domain not in ("0", "1"):
    raise DataError(
      f"domain_id {abxi.show(domain)}; expected 0 (target in seq_d1) or 1 (target in seq_d2)"
    )
  domain = int(domain)
  if not (seq_d1, seq_d2)[domain]:
    raise DataError(
      f"domain_id is {domain} but seq_d{domain + 1} is empty; expected the "
      "target as its last element"
    )
  return uid, seq_d1, seq_d2, domain


def _read_rows(path: pathlib.Path, bad: BadLines) -> list[tuple[int, list[int], list[int], int]]:
  """Reads one CSV file's rows (header checked, blank lines ignored)."""
  rows = []
  header_seen = False
  for line_no, text in abxi.text_lines(path, bad):
    if not text.strip():
      continue
    if not header_seen:
      header = tuple(f.strip() for f in next(csv.reader([text])))
      if header != HEADER:
        raise DataError(
          f"header {abxi.show(text)}; expected {','.join(HEADER)}", path=path, line=line_no
        )
      header_seen = True
      continue
    try:
      rows.append(_parse_row(text))
    except DataError as e:
      bad.handle(DataError(e.detail, path=path, line=line_no))
    except csv.Error as e:
      bad.handle(
        DataError(f"malformed CSV ({e}); expected {','.join(HEADER)}", path=path, line=line_no)
      )
  if not header_seen:
    raise DataError(f"empty file; expected the header {','.join(HEADER)} and rows", path=path)
  if not rows:
    raise DataError(
      "no data rows (after skipping bad lines); expected one row per example", path=path
    )
  return rows


def _item_maps(
  rows: list[tuple[int, list[int], list[int], int]], folder: pathlib.Path
) -> tuple[dict[int, int], dict[int, int]]:
  """Per-domain {original id: local id 1..n_d}, in ascending original id."""
  maps = []
  for d in (0, 1):
    ids = sorted({i for row in rows for i in row[1 + d]})
    if not ids:
      raise DataError(
        f"no domain-{d + 1} (seq_d{d + 1}) items in any row; expected both domains to have items",
        path=folder,
      )
    maps.append({orig: local for local, orig in enumerate(ids, 1)})
  return maps[0], maps[1]


def _valid_rows(
  train_uids: np.ndarray, test_uids: np.ndarray, valid_fraction: float, valid_seed: int
) -> np.ndarray:
  """bool [len(train_uids)]: the training rows carved into validation (module docstring)."""
  pool = np.setdiff1d(np.unique(train_uids), test_uids)  # Ascending.
  count = int(round(valid_fraction * pool.shape[0]))
  chosen = np.random.default_rng(valid_seed).choice(pool, size=count, replace=False)
  return np.isin(train_uids, chosen)


def _check_params(valid_fraction: Any, valid_seed: Any) -> tuple[float, int]:
  if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)):
    raise DataError(
      f"expected a number in [0, 1), got {valid_fraction!r}",
      key="data.reader_options.valid_fraction",
    )
  if not 0 <= valid_fraction < 1:
    raise DataError(f"{valid_fraction} is outside [0, 1)", key="data.reader_options.valid_fraction")
  if (
    isinstance(valid_seed, bool)
    or not isinstance(valid_seed, (int, np.integer))
    or (valid_seed < 0)
  ):
    raise DataError(
      f"expected a non-negative int, got {valid_seed!r}", key="data.reader_options.valid_seed"
    )
  return float(valid_fraction), int(valid_seed)


def read_imvae(
  path: str | os.PathLike[str],
  bad: BadLines | None = None,
  *,
  valid_fraction: float = DEFAULT_VALID_FRACTION,
  valid_seed: int = DEFAULT_VALID_SEED,
) -> dataset_lib.CDSRDataset:
  """Reads an IM-VAE / AMID open-world CSV folder into a user-split `CDSRDataset`.

  Args:
    path: the folder holding one `<pair>_train.csv` and one `<pair>_test_csu.csv`.
    bad: policy for malformed rows; None = raise on the first.
    valid_fraction: share of the eligible training user ids (those not in the
      test file) whose rows become USER_VALID; in [0, 1), 0 = no validation.
    valid_seed: seed of the validation draw (`np.random.default_rng`).

  Returns:
    A `CDSRDataset` named after the folder, one user per CSV row (training
    rows, then test rows, each in file order), domain A = seq_d1 and B =
    seq_d2, with `user_split`, `user_ids` (int64 original ids), `item_keys`
    (original ids as strings), `user_in_train` and `merged_timeline=False`.
    No timestamps. See the module docstring for every decision.

  Raises:
    DataError: naming file and line for a bad row (under the 'error' policy)
      or header; naming the folder for a missing / ambiguous file pair or a
      domain without items; naming the parameter for an invalid
      valid_fraction / valid_seed.
  """
  valid_fraction, valid_seed = _check_params(valid_fraction, valid_seed)
  bad = BadLines() if bad is None else bad
  folder = pathlib.Path(path)
  train_path, test_path = find_files(folder)
  train_rows = _read_rows(train_path, bad)
  test_rows = _read_rows(test_path, bad)
  rows = train_rows + test_rows
  map_a, map_b = _item_maps(rows, folder)
  num_a = len(map_a)

  sequences = []
  for _, seq_d1, seq_d2, domain in rows:
    ids_a = [map_a[i] for i in seq_d1]
    ids_b = [num_a + map_b[i] for i in seq_d2]
    # Non-target domain first, so the target (last of its list) ends the sequence.
    sequences.append(np.array(ids_b + ids_a if domain == 0 else ids_a + ids_b, np.int32))

  user_ids = np.array([row[0] for row in rows], np.int64)
  num_train = len(train_rows)
  train_uids, test_uids = user_ids[:num_train], user_ids[num_train:]
  is_valid = _valid_rows(train_uids, test_uids, valid_fraction, valid_seed)
  user_split = np.concatenate(
    [
      np.where(is_valid, dataset_lib.USER_VALID, dataset_lib.USER_TRAIN),
      np.full(len(test_rows), dataset_lib.USER_TEST),
    ]
  ).astype(np.int8)
  trained = np.unique(train_uids[~is_valid])
  user_in_train = (user_split != dataset_lib.USER_TRAIN) & np.isin(user_ids, trained)

  keys = np.empty(1 + num_a + len(map_b), dtype=object)
  keys[0] = ""
  keys[1 : 1 + num_a] = [str(i) for i in map_a]
  keys[1 + num_a :] = [str(i) for i in map_b]
  return dataset_lib.CDSRDataset.from_sequences(
    folder.resolve().name,
    num_a,
    len(map_b),
    sequences,
    user_ids=user_ids,
    user_split=user_split,
    item_keys=keys,
    merged_timeline=False,
    user_in_train=user_in_train,
  )


FORMAT = format_lib.Format(
  name="imvae",
  summary="IM-VAE / AMID open-world CSVs (one <pair>_train.csv, one <pair>_test_csu.csv)",
  read=read_imvae,
  options={"valid_fraction": DEFAULT_VALID_FRACTION, "valid_seed": DEFAULT_VALID_SEED},
  sources=lambda path, **options: [str(f) for f in find_files(path)],
  check=_check_params,
)
