"""Reader for ABXI's preprocessed files (`DiMarzioBian/ABXI`, data/<pair>/).

A dataset folder holds:

  <pair>_50_preprocessed.txt  one line per user, time-ordered:
                              `<user_idx> <item>|<unix_ts> <item>|<unix_ts> ...`
  map_item_50.txt             JSON {ASIN: [item_id, domain]}, 0 = A, 1 = B
  map_user_50.txt             JSON {user_name: user_idx} (optional)

Item ids are already global (A = 1..nA, B = nA+1..nA+nB, 0 = pad), so they are
stored unchanged. See docs/data.md ("Baseline data formats").

This module also holds the small text/JSON helpers that the other baseline
readers (`llmcdsr`, `handled`) share: every failure becomes a `DataError`
naming the file and 1-based line.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
import pathlib
import re
from typing import Any

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import textio
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import format as format_lib
from orthoalign.errors import DataError

PREPROCESSED_GLOB = "*_preprocessed.txt"
ITEM_MAP = "map_item_50.txt"
USER_MAP = "map_user_50.txt"

# ASCII digits only: `int()` would also accept '+5', '1_000' and non-ASCII
# digits, none of which a well-formed file contains.
_UINT = re.compile(r"[0-9]+")
_INT = re.compile(r"-?[0-9]+")
_SHOW = 40  # Longest token quoted in an error message.


def show(token: str) -> str:
  """Quotes `token` for an error message, shortened if long."""
  if len(token) > _SHOW:
    token = token[:_SHOW] + "..."
  return repr(token)


def parse_uint(token: str, what: str) -> int:
  """Parses a non-negative decimal integer.

  Args:
    token: the text.
    what: what the token is, for the message (e.g. 'item id').

  Returns:
    The value.

  Raises:
    DataError: (without a location) if `token` is not plain ASCII digits.
  """
  if not _UINT.fullmatch(token) or len(token) > 18:
    raise DataError(f"{what} {show(token)} is not a non-negative integer (at most 18 digits)")
  return int(token)


def parse_timestamp(token: str, what: str, unit: str = "int64") -> int:
  """Parses a signed decimal integer of at most 19 digits (so it fits int64).

  Raises:
    DataError: (without a location) naming `what`, if `token` is not one; `unit` says what was
      expected.
  """
  if not _INT.fullmatch(token) or len(token.lstrip("-")) > 19:
    raise DataError(f"{what} {show(token)} is not an integer ({unit})")
  value = int(token)
  if not -(2**63) <= value < 2**63:
    raise DataError(f"{what} {value} is outside the int64 range ({unit})")
  return value


def require_file(path: pathlib.Path) -> pathlib.Path:
  """Returns `path`, or raises DataError if it is not a readable file."""
  if not path.is_file():
    raise DataError("file not found; expected it in the dataset folder", path=path)
  return path


def text_lines(path: str | os.PathLike[str], bad: BadLines) -> Iterator[tuple[int, str]]:
  """Streams (1-based line number, text) from a UTF-8 file.

  Line ends (LF or CRLF) and a byte-order mark at the start of the file are
  removed (`textio.clean_line`). A line that is not valid UTF-8 goes to `bad`
  (raised or counted) and is not yielded.

  Args:
    path: the file.
    bad: the bad-line policy.

  Yields:
    (line_no, text) per decodable line, blank lines included.

  Raises:
    DataError: if the file cannot be opened, or for a bad line under 'error'.
  """
  try:
    with open(path, "rb") as f:
      # Binary iteration splits on b'\n' only, so a stray b'\r' inside a
      # line cannot change the line numbering.
      for line_no, raw in enumerate(f, 1):
        try:
          text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
          bad.handle(
            DataError(
              f"byte 0x{raw[e.start]:02x} at column {e.start + 1} is not "
              "valid UTF-8; expected UTF-8 text",
              path=path,
              line=line_no,
            )
          )
          continue
        yield line_no, textio.clean_line(text, line_no)
  except OSError as e:
    raise DataError(f"cannot read ({e.strerror})", path=path) from None


class _DuplicateKey(Exception):
  """Internal: a JSON object repeats a key (json.loads keeps the last)."""

  def __init__(self, key: str):
    super().__init__(key)
    self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
  out = {}
  for key, value in pairs:
    if key in out:
      raise _DuplicateKey(key)
    out[key] = value
  return out


def _reject_constant(name: str) -> Any:
  raise ValueError(f"{name} is not a valid JSON number")


def json_line(text: str, key: str, occurrence: int = 1) -> int | None:
  """Returns the 1-based line of the `occurrence`-th object key `key`.

  Args:
    text: the JSON text.
    key: the object key.
    occurrence: which appearance (2 locates a repeated key).

  Returns:
    The line, or None if `key` does not appear as a key that often.
  """
  for literal in (json.dumps(key, ensure_ascii=False), json.dumps(key)):
    matches = re.finditer(re.escape(literal) + r"\s*:", text)
    for n, match in enumerate(matches, 1):
      if n == occurrence:
        return text.count("\n", 0, match.start()) + 1
  return None


def read_json_object(
  path: str | os.PathLike[str], bad: BadLines | None = None
) -> tuple[dict[str, Any], str]:
  """Reads a UTF-8 JSON file whose top level is an object.

  A byte-order mark is ignored. Lone UTF-16 surrogates ("\\ud800" escapes)
  in keys or strings are replaced by U+FFFD (`textio.scrub_tree`), counted in
  `bad` (`BadLines.note_replaced`) and logged.

  Args:
    path: the file.
    bad: where replaced characters are counted; None = only logged.

  Returns:
    (the object, the file's text); the text lets callers locate a bad key
    with `json_line`.

  Raises:
    DataError: naming the file and line, for unreadable bytes, invalid JSON,
      a repeated key or a top level that is not an object.
  """
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise DataError(f"cannot open ({e.strerror})", path=path) from None
  try:
    text = textio.decode_text(raw)
  except UnicodeDecodeError as e:
    raise DataError(
      f"byte 0x{raw[e.start]:02x} is not valid UTF-8; expected UTF-8 JSON",
      path=path,
      line=raw.count(b"\n", 0, e.start) + 1,
    ) from None
  try:
    obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
  except json.JSONDecodeError as e:
    raise DataError(
      f"invalid JSON ({e.msg}); expected a JSON object", path=path, line=e.lineno
    ) from None
  except _DuplicateKey as e:
    raise DataError(
      f"key {show(e.key)} appears twice; expected unique keys",
      path=path,
      line=json_line(text, e.key, 2),
    ) from None
  except (ValueError, RecursionError) as e:
    raise DataError(f"invalid JSON ({e}); expected a JSON object", path=path) from None
  if not isinstance(obj, dict):
    raise DataError(
      f"top level is a JSON {type(obj).__name__}; expected an object", path=path, line=1
    )
  if textio.may_escape_surrogates(text):
    obj, replaced = textio.scrub_tree(obj)
    if replaced:
      text = textio.scrub(text)[0]  # Keep keys findable by `json_line`.
      if bad is None:
        textio.warn_replaced(path, replaced)
      else:
        bad.note_replaced(path, replaced)
  return obj, text


def is_int(value: Any) -> bool:
  """True for a JSON integer (Python int, not bool)."""
  return isinstance(value, int) and not isinstance(value, bool)


class _Where:
  """Location of a JSON key for a DataError; the line is found lazily."""

  def __init__(self, path: pathlib.Path, text: str, key: str):
    self.path, self.text, self.key = path, text, key

  def __call__(self) -> dict[str, Any]:
    # Searching the text is O(file size): done only once an error is certain.
    return {"path": self.path, "line": json_line(self.text, self.key), "key": self.key}


def _find_preprocessed(folder: pathlib.Path) -> pathlib.Path:
  matches = sorted(folder.glob(PREPROCESSED_GLOB))
  if len(matches) != 1:
    found = ", ".join(p.name for p in matches) or "none"
    raise DataError(f"expected exactly one {PREPROCESSED_GLOB} file, found {found}", path=folder)
  return matches[0]


def _read_item_map(path: pathlib.Path, bad: BadLines | None = None) -> tuple[int, int, np.ndarray]:
  """Reads map_item_50.txt; returns (nA, nB, ASIN by global id)."""
  obj, text = read_json_object(path, bad)
  num = len(obj)
  keys = np.full(num + 1, "", dtype=object)
  num_a = 0
  for asin, value in obj.items():
    where = _Where(path, text, asin)
    if not (isinstance(value, list) and len(value) == 2 and is_int(value[0]) and is_int(value[1])):
      raise DataError(
        f"value {show(json.dumps(value))}; expected [item_id, domain] with two integers", **where()
      )
    item_id, domain = value
    if domain not in (0, 1):
      raise DataError(f"domain flag {domain}; expected 0 (A) or 1 (B)", **where())
    if not 1 <= item_id <= num:
      raise DataError(
        f"item id {item_id} out of range; expected 1..{num} "
        f"(ids contiguous over the {num} entries)",
        **where(),
      )
    if keys[item_id]:
      raise DataError(
        f"item id {item_id} also used by {show(keys[item_id])}; expected unique ids", **where()
      )
    keys[item_id] = asin
    num_a += domain == 0
  # Ids are unique and within 1..num, so they are exactly 1..num. Global ids
  # need A first: every A id <= nA (equivalently every B id > nA).
  for asin, (item_id, domain) in obj.items():
    if (domain == 0) != (item_id <= num_a):
      expected = f"1..{num_a}" if domain == 0 else f"{num_a + 1}..{num}"
      raise DataError(
        f"item id {item_id} with domain {domain}; expected domain-{domain} "
        f"ids {expected} (nA = {num_a} entries with domain 0)",
        path=path,
        line=json_line(text, asin),
        key=asin,
      )
  if num_a == 0 or num_a == num:
    raise DataError(
      f"{num_a} domain-0 and {num - num_a} domain-1 items; expected both domains non-empty",
      path=path,
    )
  return num_a, num - num_a, keys


def _read_user_map(path: pathlib.Path, bad: BadLines | None = None) -> dict[int, str]:
  """Reads map_user_50.txt; returns {user_idx: user name}."""
  obj, text = read_json_object(path, bad)
  names: dict[int, str] = {}
  for name, idx in obj.items():
    where = _Where(path, text, name)
    if not is_int(idx) or idx < 0:
      raise DataError(
        f"value {show(json.dumps(idx))}; expected a non-negative integer user index", **where()
      )
    if idx in names:
      raise DataError(
        f"user index {idx} also used by {show(names[idx])}; expected unique indices", **where()
      )
    names[idx] = name
  return names


def _parse_line(text: str, num_items: int) -> tuple[int, list[int], list[int]]:
  """Parses `<user_idx> <item>|<ts> ...`; raises DataError (no location)."""
  tokens = text.split()
  user = parse_uint(tokens[0], "user index")
  if len(tokens) == 1:
    raise DataError(
      f"user {user} has no interactions; expected `<user_idx> <item>|<ts> ...` with >= 1 item"
    )
  items, stamps = [], []
  for j, token in enumerate(tokens[1:], 2):
    item_text, sep, ts_text = token.partition("|")
    if not sep:
      raise DataError(f'token {j} {show(token)} has no "|"; expected <item>|<unix_ts>')
    item = parse_uint(item_text, f"token {j}: item id")
    if not 1 <= item <= num_items:
      raise DataError(
        f"token {j}: item id {item} unknown; expected 1..{num_items} (the ids of {ITEM_MAP})"
      )
    ts = parse_timestamp(ts_text, f"token {j}: timestamp", "unix seconds, int64")
    if stamps and ts < stamps[-1]:
      raise DataError(
        f"token {j}: timestamp {ts} < previous {stamps[-1]}; expected non-decreasing timestamps"
      )
    items.append(item)
    stamps.append(ts)
  return user, items, stamps


def read_abxi(path: str | os.PathLike[str], bad: BadLines | None = None) -> dataset_lib.CDSRDataset:
  """Reads an ABXI dataset folder (or its `*_preprocessed.txt` file).

  Args:
    path: the folder holding `*_preprocessed.txt` and `map_item_50.txt` (and
      optionally `map_user_50.txt`), or the preprocessed file itself.
    bad: policy for malformed sequence lines; None = raise on the first.

  Returns:
    A `CDSRDataset` named after the folder, users in file order, with
    `timestamps`, `item_keys` (ASINs) and `user_ids` (user names from the user
    map, else the file's user indices).

  Raises:
    DataError: naming file and line, for a malformed map (always) or sequence
      line (under the 'error' policy), or if no user is left.
  """
  bad = BadLines() if bad is None else bad
  path = pathlib.Path(path)
  if path.is_file():
    seq_path, folder = path, path.parent
  elif path.is_dir():
    folder = path
    seq_path = _find_preprocessed(folder)
  else:
    raise DataError("not found; expected an ABXI dataset folder", path=path)
  num_a, num_b, item_keys = _read_item_map(require_file(folder / ITEM_MAP), bad)
  user_map_path = folder / USER_MAP
  names = _read_user_map(user_map_path, bad) if user_map_path.is_file() else None

  sequences, timestamps, users = [], [], []
  first_line: dict[int, int] = {}
  for line_no, text in text_lines(seq_path, bad):
    if not text.strip():
      continue  # Blank lines (e.g. a trailing one) carry no user.
    try:
      user, items, stamps = _parse_line(text, num_a + num_b)
      if user in first_line:
        raise DataError(
          f"duplicate user index {user} (first on line "
          f"{first_line[user]}); expected one line per user"
        )
      if names is not None and user not in names:
        raise DataError(f"user index {user} not in {USER_MAP}")
    except DataError as e:
      bad.handle(DataError(e.detail, path=seq_path, line=line_no))
      continue
    first_line[user] = line_no
    users.append(user)
    sequences.append(np.array(items, np.int32))
    timestamps.append(np.array(stamps, np.int64))
  if not sequences:
    raise DataError("no user sequences; expected one line per user", path=seq_path)
  user_ids = np.array([names[u] for u in users]) if names is not None else np.array(users, np.int64)
  return dataset_lib.CDSRDataset.from_sequences(
    folder.resolve().name,
    num_a,
    num_b,
    sequences,
    timestamps=timestamps,
    user_ids=user_ids,
    item_keys=item_keys.astype(str),
  )


FORMAT = format_lib.Format(
  name="abxi",
  summary="ABXI's preprocessed files (*_preprocessed.txt, map_item_50.txt, map_user_50.txt)",
  read=read_abxi,
)
