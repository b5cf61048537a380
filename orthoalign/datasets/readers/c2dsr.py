"""Reader for C2DSR's data folders (`cjx96/C2DSR` f23f18a, read by `C2DSR_src/utils/loader.py`).

A dataset folder (C2DSR's `dataset/<pair>/`, e.g. Food-Kitchen) holds:

  Alist.txt            one line per A item: its 0-based id is its line number - 1
  Blist.txt            one line per B item: id nA + line number - 1
  traindata_new.txt    } one line per sequence, tab-separated:
  validdata_new.txt    }   `<user>\\t<field>\\t<item>|<timestamp>\\t<item>|<timestamp>...`
  testdata_new.txt     } (the loader reads the fields from the third on)

Item ids in the sequence files are 0-based GLOBAL ids (A = 0..nA-1, B = nA..nA+nB-1); the
dataset's global id is file id + 1. Each line is sorted by timestamp (stably, as the loader's
`list.sort`); a valid or test line's last item is its target, the items before it its history.
The split is by line (`CDSRDataset.user_split`): C2DSR's files cut users' histories into several
lines, so each line is one sequence here, named '<file stem>:<line>'; a held-out line whose first
field also owns a training line is marked in `user_in_train`. As in the loader, nA and nB are the
line counts of the list files (their text is kept as the item keys) and the first two fields of a
sequence line are not read for the sequence. See docs/data.md ("Baseline data formats").

Checked here that the loader leaves to chance (it raises on some, misreads others): a token
without `|timestamp`, a non-integer item id or a timestamp outside int64, an id outside
0..nA+nB-1, an empty list file, a line with no item, a training file without a line, a validation
or test file without a line of two items. Blank sequence lines are skipped (the loader skips them
in training and raises on them in evaluation); a valid or test line of one item (no history) is
read but not evaluated (`splits.eval_split` needs a history). Blank lines of a list file count as
items, as in the loader, with a warning.
"""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import format as format_lib
from orthoalign.errors import DataError

LIST_FILES = ("Alist.txt", "Blist.txt")
# (file, user_split code) in the order the users are stored.
SEQUENCE_FILES = (
  ("traindata_new.txt", dataset_lib.USER_TRAIN),
  ("validdata_new.txt", dataset_lib.USER_VALID),
  ("testdata_new.txt", dataset_lib.USER_TEST),
)
EXPECTED_LINE = "`<user>\\t<field>\\t<item>|<timestamp>\\t...`"


def _read_list(path: pathlib.Path, bad: BadLines) -> np.ndarray:
  """The lines of an item list file (the loader's `read_item` counts them), stripped. Blank lines
  count as items, as in the loader, with a warning on stderr (a stray blank line shifts every
  later id).

  Raises:
    DataError: naming the file, if it has no line.
  """
  lines = [text.strip() for _, text in abxi.text_lines(path, bad)]
  if not lines:
    raise DataError("empty; expected one line per item of the domain", path=path)
  blank = [i for i, text in enumerate(lines, 1) if not text]
  if blank:
    print(
      f"warning: {path}:{blank[0]}: {len(blank)} blank line(s) counted as items, as C2DSR's "
      "loader counts every line; remove them if they are not items (each shifts the later ids)",
      file=sys.stderr,
      flush=True,
    )
  return np.array(lines, dtype=object)


def parse_line(text: str, num_items: int) -> tuple[str, list[int], list[int]]:
  """Parses one sequence line; returns (first field, 0-based ids, timestamps) in time order.

  Args:
    text: the line without its end.
    num_items: nA + nB.

  Raises:
    DataError: (without a location) naming the field and what was expected.
  """
  fields = text.strip().split("\t")
  if len(fields) < 3:
    raise DataError(f"{len(fields)} tab-separated field(s); expected {EXPECTED_LINE}")
  pairs = []
  for j, token in enumerate(fields[2:], 3):
    item_text, sep, ts_text = token.partition("|")
    if not sep:
      raise DataError(
        f"field {j} {abxi.show(token)} has no |timestamp; expected <item>|<timestamp>"
      )
    item = abxi.parse_uint(item_text, f"field {j}: item id")
    if item >= num_items:
      raise DataError(
        f"field {j}: item id {item} out of range; expected 0..{num_items - 1} (0-based global ids: "
        "A items first, then B items, counted by the lines of Alist.txt and Blist.txt)"
      )
    pairs.append((item, abxi.parse_timestamp(ts_text, f"field {j}: timestamp")))
  pairs.sort(key=lambda p: p[1])  # stable, as the loader's `res.sort(key=takeSecond)`
  return fields[0], [p[0] for p in pairs], [p[1] for p in pairs]


def read_c2dsr(
  path: str | os.PathLike[str], bad: BadLines | None = None
) -> dataset_lib.CDSRDataset:
  """Reads a C2DSR dataset folder into a line-split `CDSRDataset`.

  Args:
    path: the folder (see the module docstring for its files).
    bad: policy for malformed sequence lines; None = raise on the first.

  Returns:
    A `CDSRDataset` named after the folder; the lines of traindata_new, validdata_new, testdata_new
    in that order, each sorted by timestamp, with `timestamps`, `user_split`, `user_in_train`,
    `user_ids` '<file stem>:<line>' and `item_keys` (the list files' lines).

  Raises:
    DataError: naming file and line, for a missing or empty list file (always), a malformed
      sequence line (under the 'error' policy), or a sequence file with no line to train on or
      (validation, test) to evaluate.
  """
  bad = BadLines() if bad is None else bad
  folder = pathlib.Path(path)
  if not folder.is_dir():
    raise DataError("not found; expected a C2DSR dataset folder", path=folder)
  keys = [_read_list(abxi.require_file(folder / name), bad) for name in LIST_FILES]
  num_a, num_b = len(keys[0]), len(keys[1])
  sequences, timestamps, user_ids, user_split, owners = [], [], [], [], []
  for name, split in SEQUENCE_FILES:
    file_path = abxi.require_file(folder / name)
    stem = name.removesuffix(".txt")
    usable = 0  # training lines; held-out lines with a history
    for line_no, text in abxi.text_lines(file_path, bad):
      if not text.strip():
        continue
      try:
        owner, ids, stamps = parse_line(text, num_a + num_b)
      except DataError as e:
        bad.handle(DataError(e.detail, path=file_path, line=line_no))
        continue
      sequences.append(np.array(ids, np.int32) + 1)
      timestamps.append(np.array(stamps, np.int64))
      user_ids.append(f"{stem}:{line_no}")
      user_split.append(split)
      owners.append(owner)
      usable += split == dataset_lib.USER_TRAIN or len(ids) >= 2
    if not usable:
      raise DataError(
        "no sequence line"
        + ("" if split == dataset_lib.USER_TRAIN else " with a history (>= 2 items)")
        + f"; expected {EXPECTED_LINE} lines",
        path=file_path,
      )
  user_split = np.array(user_split, np.int8)
  owners = np.array(owners, dtype=object)
  trained = set(owners[user_split == dataset_lib.USER_TRAIN])
  in_train = np.array(
    [s != dataset_lib.USER_TRAIN and o in trained for s, o in zip(user_split, owners)], bool
  )
  pad = np.array([""], dtype=object)
  return dataset_lib.CDSRDataset.from_sequences(
    folder.resolve().name,
    num_a,
    num_b,
    sequences,
    timestamps=timestamps,
    user_ids=np.array(user_ids),
    user_split=user_split,
    item_keys=np.concatenate([pad] + keys).astype(str),
    user_in_train=in_train,
  )


FORMAT = format_lib.Format(
  name="c2dsr",
  summary="C2DSR's files (Alist.txt, Blist.txt, traindata_new / validdata_new / testdata_new.txt)",
  read=read_c2dsr,
)
