"""Rows of a table file, a chunk at a time: CSV/TSV and JSON Lines (plain or .gz, standard
library) and Parquet (pyarrow, the `arrow` extra).

Each file is read in chunks of at most `CHUNK_ROWS` rows holding only the wanted columns, so
memory is bounded by a chunk whatever the file's size. Every row keeps where it came from (the
file's line number for text files, the row number for Parquet), so that a later check can name
it. A header that lacks a wanted column, a truncated Parquet file or gzip stream is one
`DataError`; a malformed line goes to the `BadLines` policy (stop, or skip and count).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import csv
import dataclasses
import fnmatch
import json
import os
from typing import Any

import numpy as np

from orthoalign.datasets import textio
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import amazon
from orthoalign.errors import DataError
from orthoalign.errors import DependencyError

CHUNK_ROWS = 200_000
TABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
_SUFFIXES = {
  ".csv": "csv",
  ".tsv": "tsv",
  ".inter": "tsv",
  ".jsonl": "jsonl",
  ".ndjson": "jsonl",
  ".json": "jsonl",
  ".parquet": "parquet",
  ".pq": "parquet",
}


@dataclasses.dataclass
class Chunk:
  """Up to CHUNK_ROWS rows of one file, the wanted columns only.

  Attributes:
    path: the file.
    rows: int64 [n] where each row is: its line number (text files, 1-based, the header is line
      1) or its row number (Parquet, 1-based, header excluded).
    columns: wanted column -> [n] values: Python strings from text files, JSON scalars from JSON
      Lines, NumPy arrays (numbers, datetime64 or objects) from Parquet; None for a missing value.
    by_line: True when `rows` are line numbers (errors say `path:line`), False for row numbers.
  """

  path: str
  rows: np.ndarray
  columns: dict[str, Sequence[Any]]
  by_line: bool

  def __len__(self) -> int:
    return int(self.rows.shape[0])

  def where(self, i: int, column: str) -> dict[str, Any]:
    """`DataError` location keywords for row `i`'s `column`."""
    if self.by_line:
      return {"path": self.path, "line": int(self.rows[i]), "key": f"column {column!r}"}
    return {"path": self.path, "key": f"row {int(self.rows[i])}, column {column!r}"}


def detect(path: str, table_format: str = "auto") -> str:
  """The table format of `path` (its suffix, a `.gz` after it allowed) unless one is given.

  Raises:
    DataError: naming the file, for a suffix that says no format (with "auto").
  """
  if table_format != "auto":
    return table_format
  name = os.path.basename(path).lower().removesuffix(".gz")
  suffix = os.path.splitext(name)[1]
  if suffix not in _SUFFIXES:
    raise DataError(
      f"cannot tell the table format from the suffix {suffix or '(none)'!r}; expected one of "
      f"{sorted(_SUFFIXES)} (optionally .gz), or set the reader option table_format to one of "
      f"{list(TABLE_FORMATS)}",
      path=path,
    )
  return _SUFFIXES[suffix]


def part_files(path: str, pattern: str = "*") -> list[str]:
  """`path` itself, or every data file under the folder `path` whose name matches `pattern`
  (fnmatch: "log_*.csv"; its parts, sub-folders such as Hive's `date=2026-11-01/` included),
  sorted by path; names starting with `.` or `_` (Spark's `_SUCCESS`, hidden files) and READMEs
  are skipped.

  Raises:
    DataError: for a path that does not exist or a folder without matching data files.
  """
  if os.path.isfile(path):
    return [path]
  if not os.path.isdir(path):
    raise DataError("no such file or folder; expected a table file or a folder of parts", path=path)
  skipped = lambda name: name.startswith((".", "_", "README")) or not fnmatch.fnmatch(name, pattern)
  parts = []
  for folder, subfolders, files in os.walk(path):
    subfolders[:] = sorted(d for d in subfolders if not d.startswith((".", "_")))
    parts += [os.path.join(folder, f) for f in files if not skipped(f)]
  if not parts:
    raise DataError(
      "the folder and its sub-folders hold no data files"
      + (f" named {pattern!r}" if pattern != "*" else "")
      + "; expected a table file or parts",
      path=path,
    )
  return sorted(parts)


def read(
  path: str,
  wanted: Sequence[str],
  bad: BadLines,
  *,
  table_format: str = "auto",
  header: Callable[[str, list[str]], list[str]] | None = None,
) -> Iterator[Chunk]:
  """Yields the chunks of one table file.

  Args:
    path: a CSV/TSV, JSON Lines or Parquet file (text files may be gzip-compressed).
    wanted: the columns to keep (all must exist, in the header or in JSON objects).
    bad: the bad-line policy for malformed lines.
    table_format: "auto" (the suffix) or one of TABLE_FORMATS.
    header: header(path, names) -> the column names to use, for text tables whose header is
      more than names (RecBole's `name:type`); it raises DataError for a header it refuses.

  Raises:
    DataError: a missing column, an unreadable or truncated file, or (policy "error") a
      malformed line, naming the file and its line or row.
    DependencyError: a Parquet file without pyarrow installed.
  """
  fmt = detect(path, table_format)
  if fmt == "parquet":
    yield from _read_parquet(path, wanted)
  elif fmt == "jsonl":
    yield from _read_jsonl(path, wanted, bad)
  else:
    yield from _read_delimited(path, wanted, bad, "\t" if fmt == "tsv" else ",", header)


def check_columns(
  path: str, names: list[str], wanted: Sequence[str], line: int | None = None, hint: str = ""
):
  """Raises a DataError naming the file (and the header's line) for a wanted column that is
  missing from `names` or named twice there; `hint` ends the message.
  """
  for column in wanted:
    if names.count(column) != 1:
      problem = "no column" if column not in names else "two columns named"
      raise DataError(
        f"{problem} {column!r} in the header; its columns are {names} (set the column mapping "
        f"in the reader options){hint}",
        path=path,
        line=line,
      )


def _chunk(path: str, rows: list[int], values: list[list[Any]], wanted: Sequence[str]) -> Chunk:
  return Chunk(path, np.asarray(rows, np.int64), dict(zip(wanted, values)), by_line=True)


def _read_delimited(
  path: str,
  wanted: Sequence[str],
  bad: BadLines,
  delimiter: str,
  header: Callable[[str, list[str]], list[str]] | None,
) -> Iterator[Chunk]:
  lines = amazon.iter_lines(path, bad)
  first = next(lines, None)
  if first is None:
    raise DataError("the file is empty; expected a header line naming the columns", path=path)
  split = lambda text: next(csv.reader([text], delimiter=delimiter))
  names = [n.strip() for n in split(first[1])]
  if header is not None:
    names = header(path, names)
  other = "\t" if delimiter == "," else ","
  hint = ""
  if len(names) == 1 and other in first[1]:
    hint = f"; the header is separated by {'tabs' if other == chr(9) else 'commas'}: set the "
    hint += f"reader option table_format={'tsv' if other == chr(9) else 'csv'}"
  check_columns(path, names, wanted, line=first[0], hint=hint)
  index = [names.index(c) for c in wanted]
  width = len(names)
  rows: list[int] = []
  values: list[list[Any]] = [[] for _ in wanted]
  adds = [v.append for v in values]
  for lineno, text in lines:
    # Most lines have no quotes: a plain split is several times faster than the csv module.
    fields = split(text) if '"' in text else text.split(delimiter)
    if len(fields) != width:
      # An odd number of quotes: a quoted field with a line break, which is not read.
      spans = " (a quoted field goes on past the line end: one event per line)"
      bad.handle(
        DataError(
          f"{len(fields)} fields; expected {width} as in the header ({names})"
          + (spans if text.count('"') % 2 else ""),
          path=path,
          line=lineno,
        )
      )
      continue
    rows.append(lineno)
    for add, i in zip(adds, index):
      add(fields[i])
    if len(rows) == CHUNK_ROWS:
      yield _chunk(path, rows, values, wanted)
      rows, values = [], [[] for _ in wanted]
      adds = [v.append for v in values]
  if rows:
    yield _chunk(path, rows, values, wanted)


def _read_jsonl(path: str, wanted: Sequence[str], bad: BadLines) -> Iterator[Chunk]:
  rows: list[int] = []
  values: list[list[Any]] = [[] for _ in wanted]
  for lineno, text in amazon.iter_lines(path, bad):
    try:
      record = json.loads(text)
    except json.JSONDecodeError as e:
      bad.handle(DataError(f"not JSON ({e.msg}); expected one JSON object", path=path, line=lineno))
      continue
    if not isinstance(record, dict):
      bad.handle(
        DataError(f"a JSON {type(record).__name__}; expected an object", path=path, line=lineno)
      )
      continue
    missing = [c for c in wanted if c not in record]
    if missing:
      bad.handle(
        DataError(
          f"no key {missing[0]!r}; expected an object with the keys {list(wanted)} (the column "
          "mapping of the reader options)",
          path=path,
          line=lineno,
        )
      )
      continue
    if textio.may_escape_surrogates(text):
      record, replaced = textio.scrub_tree(record)
      bad.note_replaced(path, replaced, lineno)
    rows.append(lineno)
    for column, value in zip(wanted, values):
      value.append(record[column])
    if len(rows) == CHUNK_ROWS:
      yield _chunk(path, rows, values, wanted)
      rows, values = [], [[] for _ in wanted]
  if rows:
    yield _chunk(path, rows, values, wanted)


def _pyarrow():
  try:
    import pyarrow  # pylint: disable=g-import-not-at-top
    import pyarrow.parquet  # pylint: disable=g-import-not-at-top, unused-import
  except ImportError:
    raise DependencyError(
      "reading Parquet needs pyarrow: pip install 'orthoalign[arrow]' (or pip install pyarrow)"
    ) from None
  return pyarrow


def _read_parquet(path: str, wanted: Sequence[str]) -> Iterator[Chunk]:
  pa = _pyarrow()
  try:
    table = pa.parquet.ParquetFile(path)
  except (pa.ArrowException, OSError) as e:
    raise DataError(
      f"not a readable Parquet file ({e}); expected a complete Parquet file", path=path
    ) from None
  check_columns(path, table.schema_arrow.names, wanted)
  done = 0
  try:
    for batch in table.iter_batches(batch_size=CHUNK_ROWS, columns=list(wanted)):
      n = batch.num_rows
      columns = {c: batch.column(c).to_numpy(zero_copy_only=False) for c in wanted}
      yield Chunk(path, np.arange(done + 1, done + n + 1, dtype=np.int64), columns, by_line=False)
      done += n
  except (pa.ArrowException, OSError) as e:
    raise DataError(
      f"cannot read past row {done} ({e}); expected a complete Parquet file", path=path
    ) from None
