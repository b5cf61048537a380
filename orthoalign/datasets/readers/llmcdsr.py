"""Reader for LLMCDSR's data folders (`xhran2010/LLMCDSR`, data/<pair>/).

A dataset folder holds:

  num.txt               two lines: nA, nB
  instance_num.txt      three lines: users in train_A, train_B, train_overlap
  train_A.txt           A-only training users    } one line per user:
  train_B.txt           B-only training users    } `<user_id>\\t<i1>,<i2>,...`
  train_overlap.txt     overlapped training users
  valid.txt, test.txt   held-out (unseen) users; last item = target
  item_set_A.json       {ASIN: local id 0..nA-1}
  item_set_B.json       {ASIN: local id 0..nB-1}
  text_A.json           {ASIN: title} (optional)
  text_B.json           {ASIN: title} (optional)

Item ids in the sequence files are 0-based GLOBAL ids (A = 0..nA-1, B =
nA..nA+nB-1); the dataset's global id is file id + 1. User ids are 1-based
within each file, so users of different files are distinct people. The split
is by user (`CDSRDataset.user_split`). See docs/data.md ("Baseline data formats").
"""

from __future__ import annotations

import os
import pathlib
import re

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import format as format_lib
from orthoalign.errors import DataError

NUM_FILE = "num.txt"
INSTANCE_FILE = "instance_num.txt"
# (file, user_split code, domain every item must be in or None, line of
# instance_num.txt that counts its users or None).
SEQUENCE_FILES = (
  ("train_A.txt", dataset_lib.USER_TRAIN, 0, 1),
  ("train_B.txt", dataset_lib.USER_TRAIN, 1, 2),
  ("train_overlap.txt", dataset_lib.USER_TRAIN, None, 3),
  ("valid.txt", dataset_lib.USER_VALID, None, None),
  ("test.txt", dataset_lib.USER_TEST, None, None),
)
ITEM_SET_FILES = ("item_set_A.json", "item_set_B.json")
TEXT_FILES = ("text_A.json", "text_B.json")

_ITEM_LIST = re.compile(r"[0-9]{1,18}(?:,[0-9]{1,18})*")


def _read_counts(path: pathlib.Path, expected: int, what: str) -> list[tuple[int, int]]:
  """Reads a file of one count per line; returns [(value, line_no)]."""
  counts = []
  for line_no, text in abxi.text_lines(path, BadLines()):
    if not text.strip():
      continue
    if len(counts) == expected:
      raise DataError(f"extra line; expected {expected} lines ({what})", path=path, line=line_no)
    try:
      counts.append((abxi.parse_uint(text.strip(), "count"), line_no))
    except DataError as e:
      raise DataError(f"{e.detail} ({what})", path=path, line=line_no) from None
  if len(counts) != expected:
    raise DataError(f"{len(counts)} lines; expected {expected} ({what})", path=path)
  return counts


def _read_item_set(path: pathlib.Path, count: int, bad: BadLines | None = None) -> np.ndarray:
  """Reads {ASIN: local id}; returns the ASIN of each local id 0..count-1."""
  obj, text = abxi.read_json_object(path, bad)
  if len(obj) != count:
    raise DataError(f"{len(obj)} items but {NUM_FILE} says {count}; expected them equal", path=path)
  keys = np.full(count, "", dtype=object)
  taken = np.zeros(count, bool)
  for asin, local in obj.items():
    problem = None
    if not abxi.is_int(local) or not 0 <= local < count:
      problem = f"local id {local!r}; expected an integer in 0..{count - 1}"
    elif taken[local]:
      problem = f"local id {local} also used by {abxi.show(keys[local])}; expected unique ids"
    if problem:
      raise DataError(problem, path=path, line=abxi.json_line(text, asin), key=asin)
    keys[local] = asin
    taken[local] = True
  return keys


def _read_titles(path: pathlib.Path, keys: np.ndarray, bad: BadLines | None = None) -> np.ndarray:
  """Returns the title of each ASIN in `keys` ('' where the file has none)."""
  obj, text = abxi.read_json_object(path, bad)
  titles = np.full(len(keys), "", dtype=object)
  for i, asin in enumerate(keys):
    title = obj.get(asin)
    if title is None:
      continue
    if not isinstance(title, str):
      raise DataError(
        f"title is a JSON {type(title).__name__}; expected a string",
        path=path,
        line=abxi.json_line(text, asin),
        key=asin,
      )
    titles[i] = title
  return titles


def _parse_line(text: str, num_a: int, num_items: int, domain: int | None) -> tuple[int, list[int]]:
  """Parses `<uid>\\t<i1>,...`; returns (uid, 0-based file ids)."""
  uid_text, sep, items_text = text.partition("\t")
  if not sep:
    raise DataError("no tab; expected `<user_id>\\t<i1>,<i2>,...`")
  uid = abxi.parse_uint(uid_text.strip(), "user id")
  items_text = items_text.strip()
  if not items_text:
    raise DataError(f"user {uid} has no interactions; expected >= 1 item id")
  if not _ITEM_LIST.fullmatch(items_text):
    # Slow path, only to name the offending token.
    for j, token in enumerate(items_text.split(","), 1):
      abxi.parse_uint(token, f"item {j}: id")
    raise DataError("expected comma-separated item ids")
  ids = list(map(int, items_text.split(",")))
  lo, hi = {None: (0, num_items), 0: (0, num_a), 1: (num_a, num_items)}[domain]
  # Plain min/max: much cheaper than numpy on the typical ~10-item line.
  if min(ids) < lo or max(ids) >= hi:
    j = next(j for j, i in enumerate(ids) if not lo <= i < hi)
    what = {None: "item", 0: "A item (A-only file)", 1: "B item (B-only file)"}[domain]
    raise DataError(
      f"item {j + 1}: id {ids[j]} out of range; expected an "
      f"{what} id in {lo}..{hi - 1} (0-based, nA = {num_a})"
    )
  return uid, ids


def read_llmcdsr(
  path: str | os.PathLike[str], bad: BadLines | None = None
) -> dataset_lib.CDSRDataset:
  """Reads an LLMCDSR dataset folder into a user-split `CDSRDataset`.

  Args:
    path: the folder (see the module docstring for its files).
    bad: policy for malformed sequence lines and for user counts that
      disagree with instance_num.txt; None = raise on the first.

  Returns:
    A `CDSRDataset` named after the folder; users of train_A, train_B,
    train_overlap, valid, test in that order (file order within each), with
    `user_split` (train files -> USER_TRAIN, valid -> USER_VALID, test ->
    USER_TEST), `user_ids` '<file stem>:<user id>', `item_keys` (ASINs) and
    `item_titles` ('' where no title; None when neither text file exists).
    No timestamps: the files give order only.

  Raises:
    DataError: naming file and line, for malformed count or JSON files
      (always) or sequence lines (under the 'error' policy), or if no user is
      left.
  """
  bad = BadLines() if bad is None else bad
  folder = pathlib.Path(path)
  if not folder.is_dir():
    raise DataError("not found; expected an LLMCDSR dataset folder", path=folder)
  (num_a, _), (num_b, _) = _read_counts(abxi.require_file(folder / NUM_FILE), 2, "nA, nB")
  if num_a < 1 or num_b < 1:
    raise DataError(f"nA = {num_a}, nB = {num_b}; expected both >= 1", path=folder / NUM_FILE)
  instance_path = abxi.require_file(folder / INSTANCE_FILE)
  instances = _read_counts(instance_path, 3, "users in train_A, train_B, train_overlap")
  keys = [
    _read_item_set(abxi.require_file(folder / name), count, bad)
    for name, count in zip(ITEM_SET_FILES, (num_a, num_b))
  ]
  titles = None
  if any((folder / name).is_file() for name in TEXT_FILES):
    titles = [
      _read_titles(folder / name, k, bad)
      if (folder / name).is_file()
      else np.full(len(k), "", dtype=object)
      for name, k in zip(TEXT_FILES, keys)
    ]

  num_items = num_a + num_b
  sequences, user_ids, user_split = [], [], []
  for name, split, domain, instance_line in SEQUENCE_FILES:
    file_path = abxi.require_file(folder / name)
    stem = name.removesuffix(".txt")
    first_line: dict[int, int] = {}
    for line_no, text in abxi.text_lines(file_path, bad):
      if not text.strip():
        continue
      try:
        uid, ids = _parse_line(text, num_a, num_items, domain)
        if uid in first_line:
          raise DataError(
            f"duplicate user id {uid} (first on line {first_line[uid]}); expected one line per user"
          )
      except DataError as e:
        bad.handle(DataError(e.detail, path=file_path, line=line_no))
        continue
      first_line[uid] = line_no
      sequences.append(np.array(ids, np.int32) + 1)
      user_ids.append(f"{stem}:{uid}")
      user_split.append(split)
    if instance_line is not None:
      expected, line_no = instances[instance_line - 1]
      if len(first_line) != expected:
        bad.handle(
          DataError(
            f"{name} has {len(first_line)} users; expected {expected} (this line)",
            path=instance_path,
            line=line_no,
          )
        )
  if not sequences:
    raise DataError("no user sequences; expected one line per user", path=folder)
  pad = np.array([""], dtype=object)
  return dataset_lib.CDSRDataset.from_sequences(
    folder.resolve().name,
    num_a,
    num_b,
    sequences,
    user_ids=user_ids,
    user_split=np.array(user_split, np.int8),
    item_keys=np.concatenate([pad] + keys).astype(str),
    item_titles=(None if titles is None else np.concatenate([pad] + titles).astype(str)),
  )


FORMAT = format_lib.Format(
  name="llmcdsr",
  summary="LLMCDSR's files (train_A/B/overlap, valid, test, num.txt, item_set_*, text_*)",
  read=read_llmcdsr,
)
