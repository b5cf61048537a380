"""Streaming readers for the raw Amazon review dumps (2014, 2018, 2023).

Interactions come out as `Interaction(user, item, rating, timestamp)` records
(timestamp in unix SECONDS) from:

  'csv'          2014 ratings-only CSV, `user,item,rating,timestamp`, no header.
  'reviews'      2014 / 2018 review JSON lines: reviewerID, asin, overall,
                 unixReviewTime (seconds).
  'reviews2023'  2023 JSONL: user_id, parent_asin, rating, timestamp (in
                 MILLISECONDS; converted to seconds by floor division, the
                 full precision kept for sorting by `read_interactions_ms`).

Item titles come out as `{item: title}` from:

  'meta2014'     one Python-literal dict per line (asin, title), parsed with
                 `ast.literal_eval` (never `eval`).
  'meta2018'     JSON lines (asin, title).
  'meta2023'     JSONL (parent_asin, title).

Files are read line by line, gzip-compressed or not (detected from the magic
bytes, not the name), so a multi-GB dump never sits in memory. A malformed line
goes through `BadLines`; a truncated or corrupt gzip stream is a `DataError`
naming the file and the last good line. Text follows `orthoalign.datasets.textio`
(UTF-8; a byte-order mark and CRLF line ends accepted; lone surrogates in ids
and titles replaced by U+FFFD and counted).
"""

from __future__ import annotations

import ast
import collections.abc
import csv
import gzip
import json
import math
import os
import re
import sys
from typing import Any, NamedTuple
import zlib

import tqdm

from orthoalign.datasets import textio
from orthoalign.datasets.badlines import BadLines
from orthoalign.errors import DataError

INTERACTION_FORMATS = {
  "csv": "2014 ratings-only CSV (user,item,rating,timestamp; no header)",
  "reviews": "2014/2018 review JSON lines (reviewerID, asin, overall, unixReviewTime)",
  "reviews2023": "2023 review JSONL (user_id, parent_asin, rating, timestamp in ms)",
}
META_FORMATS = {
  "meta2014": "2014 metadata, one Python-literal dict per line (asin, title)",
  "meta2018": "2018 metadata JSON lines (asin, title)",
  "meta2023": "2023 metadata JSONL (parent_asin, title)",
}
# The JSON keys of each review format: (user, item, rating, timestamp).
_REVIEW_KEYS = {
  "reviews": ("reviewerID", "asin", "overall", "unixReviewTime"),
  "reviews2023": ("user_id", "parent_asin", "rating", "timestamp"),
}
_META_ITEM_KEY = {"meta2014": "asin", "meta2018": "asin", "meta2023": "parent_asin"}
_GZIP_MAGIC = b"\x1f\x8b"
_PROGRESS_EVERY = 1 << 16  # Lines between progress-bar updates (cheap loop).
_DETECT_LINES = 10  # Non-blank lines tried when detecting a format.


class Interaction(NamedTuple):
  """One rating: who, what, how much, when (unix seconds)."""

  user: str
  item: str
  rating: float
  timestamp: int


class _Bad(Exception):
  """A malformed line; the caller adds file and line and calls BadLines."""


def _open_binary(path: str):
  """Opens `path` for binary reading, transparently gunzipping."""
  try:
    raw = open(path, "rb")  # noqa: SIM115  # Closed by iter_lines.
  except OSError as e:
    raise DataError(f"cannot open file: {e.strerror or e}", path=path) from None
  try:
    is_gzip = raw.read(2) == _GZIP_MAGIC
    raw.seek(0)
  except OSError as e:
    raw.close()
    raise DataError(f"cannot read file: {e.strerror or e}", path=path) from None
  if is_gzip:
    return gzip.GzipFile(fileobj=raw, mode="rb"), raw
  return raw, raw


def iter_lines(
  path: str | os.PathLike[str],
  bad: BadLines,
  *,
  desc: str | None = None,
  progress: bool = True,
) -> collections.abc.Iterator[tuple[int, str]]:
  """Yields `(line_number, text)` for every non-blank line of a text file.

  The file may be gzip-compressed. Lines are decoded one at a time as UTF-8 so
  that an undecodable line is blamed on its own number (a whole-file text
  wrapper decodes in blocks and would fail on an earlier line).

  Args:
    path: the file.
    bad: policy for undecodable lines.
    desc: progress-bar label (default: the file name).
    progress: show a line-count progress bar on stderr when it is a terminal.

  Yields:
    1-based line number and the line without its line ending.

  Raises:
    DataError: the file cannot be opened, or its gzip stream is truncated or
      corrupt (naming the last good line), or an undecodable line under the
      "error" policy.
  """
  path = os.fspath(path)
  stream, raw = _open_binary(path)
  lineno = 0
  bar = tqdm.tqdm(
    desc=desc or os.path.basename(path),
    unit=" lines",
    unit_scale=True,
    file=sys.stderr,
    mininterval=1.0,
    disable=None if progress else True,
    leave=False,
  )
  try:
    with raw, stream:
      try:
        for lineno, data in enumerate(stream, 1):
          if lineno % _PROGRESS_EVERY == 0:
            bar.update(_PROGRESS_EVERY)
          try:
            text = data.decode("utf-8")
          except UnicodeDecodeError as e:
            bad.handle(
              DataError(
                f"not valid UTF-8 ({e.reason} at byte {e.start} of the line); expected UTF-8 text",
                path=path,
                line=lineno,
              )
            )
            continue
          # A byte-order mark is not data; LF and CRLF line ends.
          text = textio.clean_line(text, lineno)
          if text.strip():
            yield lineno, text
      except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        where = f"after line {lineno} (the last good line)" if lineno else "before the first line"
        raise DataError(
          f"gzip stream is truncated or corrupt {where}: {e}; expected a "
          "complete .gz file (download it again)",
          path=path,
        ) from None
      except OSError as e:
        raise DataError(f"read error after line {lineno}: {e}", path=path) from None
  finally:
    bar.close()


def _detect(path: str | os.PathLike[str], probe: collections.abc.Callable[[str, int], str]) -> str:
  """Returns `probe(line, lineno)` of the first line it accepts.

  A few lines are tried so that one malformed first line does not hide the
  format (it is then reported as a bad line, with its number, by the reader).

  Raises:
    DataError: the file is empty, or no probed line fits (the first error).
  """
  first_error = None
  for tried, (lineno, text) in enumerate(iter_lines(path, BadLines("skip"), progress=False)):
    if tried == _DETECT_LINES:
      break
    try:
      return probe(text, lineno)
    except DataError as e:
      first_error = first_error or e
  if first_error is None:
    raise DataError(
      "file is empty (no non-blank UTF-8 line); expected at least one record", path=os.fspath(path)
    )
  raise first_error


def _parse_dict(text: str, literal: bool) -> dict[str, Any]:
  """Parses one JSON object (or Python-literal dict when `literal`)."""
  try:
    obj = json.loads(text)
  except (ValueError, RecursionError):
    if not literal:
      raise _Bad("invalid JSON; expected one JSON object per line") from None
    try:
      # literal_eval only builds literals: a call such as
      # __import__('os').system(...) is rejected, never executed.
      obj = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
      raise _Bad(
        "not a JSON object nor a Python-literal dict; expected one record per line"
      ) from None
  if not isinstance(obj, dict):
    raise _Bad(f"got a {type(obj).__name__}; expected one object/dict per line")
  return obj


def detect_interaction_format(path: str | os.PathLike[str]) -> str:
  """Guesses the interaction format from the first non-blank line.

  Returns:
    A key of INTERACTION_FORMATS.

  Raises:
    DataError: if no format fits (naming the line and the formats expected).
  """
  expected = "; ".join(f"{k}: {v}" for k, v in INTERACTION_FORMATS.items())

  def probe(text: str, lineno: int) -> str:
    if text.lstrip().startswith("{"):
      try:
        obj = _parse_dict(text, literal=True)
      except _Bad as e:
        raise DataError(
          f"cannot detect the format: {e}; expected one of {expected}", path=path, line=lineno
        ) from None
      if "parent_asin" in obj or "user_id" in obj:
        return "reviews2023"
      if "reviewerID" in obj or "asin" in obj:
        return "reviews"
      raise DataError(
        f"cannot detect the format from keys {sorted(obj)[:8]}; expected one of {expected}",
        path=path,
        line=lineno,
      )
    if text.count(",") >= 3:
      return "csv"
    raise DataError(f"cannot detect the format; expected one of {expected}", path=path, line=lineno)

  return _detect(path, probe)


def detect_meta_format(path: str | os.PathLike[str]) -> str:
  """Guesses the metadata format from the first non-blank line.

  Returns:
    A key of META_FORMATS.

  Raises:
    DataError: if no format fits.
  """
  expected = "; ".join(f"{k}: {v}" for k, v in META_FORMATS.items())

  def probe(text: str, lineno: int) -> str:
    try:
      obj = json.loads(text)
      is_json = isinstance(obj, dict)
    except ValueError:
      is_json = False
    if is_json:
      if "parent_asin" in obj:
        return "meta2023"
      if "asin" in obj:
        return "meta2018"
    else:
      try:
        obj = _parse_dict(text, literal=True)
      except _Bad as e:
        raise DataError(
          f"cannot detect the format: {e}; expected one of {expected}", path=path, line=lineno
        ) from None
      if "asin" in obj:
        return "meta2014"
    raise DataError(
      f"cannot detect the format from keys {sorted(obj)[:8]}; expected one of {expected}",
      path=path,
      line=lineno,
    )

  return _detect(path, probe)


def _as_rating(value: Any, key: str) -> float:
  if isinstance(value, str):
    try:
      value = float(value)
    except ValueError:
      raise _Bad(f"{key} {value!r} is not a number; expected a numeric rating") from None
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise _Bad(f"{key} {value!r} is not a number; expected a numeric rating")
  if not math.isfinite(value):
    raise _Bad(f"{key} {value!r} is not finite; expected a numeric rating")
  return float(value)


def _as_timestamp(value: Any, key: str) -> int:
  if isinstance(value, str):
    try:
      value = int(value)
    except ValueError:
      try:
        value = float(value)
      except ValueError:
        raise _Bad(f"{key} {value!r} is not a number; expected an integer unix time") from None
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise _Bad(f"{key} {value!r} is not a number; expected an integer unix time")
  if isinstance(value, float):
    if not (math.isfinite(value) and value == int(value)):
      raise _Bad(f"{key} {value!r} is not an integer; expected an integer unix time")
    value = int(value)
  return value


def _as_id(value: Any, key: str) -> str:
  if not isinstance(value, str) or not value.strip():
    raise _Bad(f"{key} {value!r}; expected a non-empty string id")
  return value.strip()


def _parse_csv(text: str) -> Interaction:
  # Amazon ids never contain commas; fall back to the csv module only when a
  # field is quoted.
  fields = next(csv.reader([text])) if '"' in text else text.split(",")
  if len(fields) != 4:
    raise _Bad(f"{len(fields)} comma-separated fields; expected 4 (user,item,rating,timestamp)")
  user, item, rating, ts = (f.strip() for f in fields)
  return Interaction(
    _as_id(user, "user"),
    _as_id(item, "item"),
    _as_rating(rating, "rating"),
    _as_timestamp(ts, "timestamp"),
  )


def _parse_review(text: str, fmt: str) -> tuple[Interaction, int, int]:
  """Returns (record, timestamp in ms, characters replaced by U+FFFD)."""
  # 2014 review dumps are JSON; a Python-literal line is tolerated like the
  # McAuley-lab loaders do (`ast.literal_eval`, never `eval`).
  obj = _parse_dict(text, literal=fmt == "reviews")
  keys = _REVIEW_KEYS[fmt]
  missing = [k for k in keys if k not in obj]
  if missing:
    raise _Bad(f"missing key(s) {missing}; expected keys {list(keys)} ({INTERACTION_FORMATS[fmt]})")
  user_key, item_key, rating_key, ts_key = keys
  ts = _as_timestamp(obj[ts_key], ts_key)
  if fmt == "reviews2023":
    # 2023 timestamps are in milliseconds: the record carries floored
    # seconds, the caller also gets the full precision to sort on.
    ts_ms, ts = ts, ts // 1000
  else:
    ts_ms = ts * 1000
  user = _as_id(obj[user_key], user_key)
  item = _as_id(obj[item_key], item_key)
  replaced = 0
  if textio.may_escape_surrogates(text):
    user, n = textio.scrub(user)
    item, m = textio.scrub(item)
    replaced = n + m
  return (Interaction(user, item, _as_rating(obj[rating_key], rating_key), ts), ts_ms, replaced)


def _check_format(fmt: str, known: dict[str, str], path: str) -> None:
  if fmt not in known:
    raise DataError(f"unknown format {fmt!r}; expected one of {list(known)}", path=path, key="fmt")


def read_interactions(
  path: str | os.PathLike[str],
  bad: BadLines,
  *,
  fmt: str | None = None,
  progress: bool = True,
) -> collections.abc.Iterator[Interaction]:
  """Streams the interactions of one raw Amazon review file.

  Args:
    path: a file in one of INTERACTION_FORMATS, plain or gzip-compressed.
    bad: what to do with malformed lines (wrong column count, non-numeric
      rating or timestamp, missing keys, bad JSON, undecodable bytes).
    fmt: a key of INTERACTION_FORMATS; None = detect from the first line.
    progress: show a progress bar on stderr when it is a terminal.

  Yields:
    `Interaction`s in file order; timestamps in seconds.

  Raises:
    DataError: unreadable, undetectable, truncated file, or a bad line under
      the "error" policy (naming file, line and what was expected).
  """
  for record, _ in read_interactions_ms(path, bad, fmt=fmt, progress=progress):
    yield record


def read_interactions_ms(
  path: str | os.PathLike[str],
  bad: BadLines,
  *,
  fmt: str | None = None,
  progress: bool = True,
) -> collections.abc.Iterator[tuple[Interaction, int]]:
  """`read_interactions`, each record with its full-precision time in ms.

  Sort on the second element: the 2023 dumps give milliseconds, and the
  record's floored seconds would tie two events of one second (which then
  fall back to file and domain order). Other formats give whole seconds
  (a fractional one is a bad line), i.e. seconds * 1000.

  Ids holding lone UTF-16 surrogates (a JSON "\\ud800" escape) get U+FFFD
  instead, counted by `bad.note_replaced`.

  Yields:
    (`Interaction` with timestamp in seconds, timestamp in milliseconds).
  """
  path = os.fspath(path)
  if fmt is None:
    fmt = detect_interaction_format(path)
  _check_format(fmt, INTERACTION_FORMATS, path)
  for lineno, text in iter_lines(path, bad, progress=progress):
    try:
      if fmt == "csv":
        record = _parse_csv(text)
        ts_ms = record.timestamp * 1000
      else:
        record, ts_ms, replaced = _parse_review(text, fmt)
        if replaced:
          bad.note_replaced(path, replaced, lineno)
    except _Bad as e:
      bad.handle(DataError(str(e), path=path, line=lineno))
      continue
    yield record, ts_ms


def _meta_prefilter(key: str) -> re.Pattern[str]:
  # Finds the item id without parsing the line: 2014 lines go through the
  # slow `ast.literal_eval`, so unwanted items are skipped before it.
  return re.compile(r"""['"]""" + re.escape(key) + r"""['"]\s*:\s*['"]([^'"\\]*)['"]""")


def read_titles(
  path: str | os.PathLike[str],
  bad: BadLines,
  *,
  wanted: collections.abc.Set[str] | None = None,
  fmt: str | None = None,
  progress: bool = True,
) -> dict[str, str]:
  """Reads `{item: title}` from a raw Amazon metadata file.

  Items without a (string, non-blank) title are left out; the first record of
  a repeated item wins. With `wanted`, only those ids are kept (bounded memory)
  and lines whose id can be read cheaply and is not wanted are skipped without
  being parsed, hence without being validated either.

  Args:
    path: a file in one of META_FORMATS, plain or gzip-compressed.
    bad: what to do with malformed lines (bad JSON / literal, missing id).
    wanted: the item ids to keep; None = all.
    fmt: a key of META_FORMATS; None = detect from the first line.
    progress: show a progress bar on stderr when it is a terminal.

  Returns:
    Titles by item id (whitespace-trimmed).

  Raises:
    DataError: unreadable, undetectable, truncated file, or a bad line under
      the "error" policy.
  """
  path = os.fspath(path)
  if fmt is None:
    fmt = detect_meta_format(path)
  _check_format(fmt, META_FORMATS, path)
  key = _META_ITEM_KEY[fmt]
  prefilter = _meta_prefilter(key) if wanted is not None else None
  titles: dict[str, str] = {}
  seen: set[str] = set()
  for lineno, text in iter_lines(path, bad, progress=progress):
    if prefilter is not None:
      match = prefilter.search(text)
      if match is not None and match.group(1) not in wanted:
        continue
    try:
      obj = _parse_dict(text, literal=True)
      if key not in obj:
        raise _Bad(f"missing key {key!r}; expected {META_FORMATS[fmt]}")
      item = _as_id(obj[key], key)
    except _Bad as e:
      bad.handle(DataError(str(e), path=path, line=lineno))
      continue
    escaped = textio.may_escape_surrogates(text)
    if escaped:
      item, replaced = textio.scrub(item)
    if item in seen or (wanted is not None and item not in wanted):
      continue
    seen.add(item)
    title = obj.get("title")
    if isinstance(title, str) and title.strip():
      if escaped:
        # Lone surrogates cannot be stored or printed: U+FFFD, counted.
        title, n = textio.scrub(title)
        replaced += n
      titles[item] = title.strip()
    if escaped and replaced:
      bad.note_replaced(path, replaced, lineno)
  return titles
