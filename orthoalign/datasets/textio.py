"""How every reader turns file bytes into text (one policy for all of them).

* UTF-8, decoded strictly (an undecodable line is a bad line, named by the
  reader with file and line).
* A UTF-8 byte-order mark (U+FEFF) at the start of a file is not data: it
  is dropped (`clean_line` on line 1, `decode_text` on a whole file).
* Line ends LF and CRLF are both accepted (`clean_line`).
* Lone UTF-16 surrogates (U+D800..U+DFFF), which strict UTF-8 never yields
  but a JSON or Python-literal escape such as "\\ud800" does (scraped Amazon
  metadata holds some), cannot be encoded again (stores, printing, JSON
  manifests would fail with UnicodeEncodeError). They are replaced by
  U+FFFD at the reader (`scrub`, `scrub_tree`), counted in the bad-line
  report (`BadLines.note_replaced`) and logged as a warning.
"""

from __future__ import annotations

import re
import sys
from typing import Any

BOM = "\ufeff"
REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_line(text: str, line_no: int) -> str:
  """Drops a byte-order mark on line 1 and the line end (LF or CRLF)."""
  if line_no == 1:
    text = text.removeprefix(BOM)
  return text.rstrip("\r\n")


def decode_text(raw: bytes) -> str:
  """Decodes a whole UTF-8 file, without its byte-order mark.

  Raises:
    UnicodeDecodeError: for bytes that are not UTF-8.
  """
  return raw.decode("utf-8").removeprefix(BOM)


def may_escape_surrogates(text: str) -> bool:
  """False when a JSON / Python-literal line surely yields no surrogate.

  A cheap test for hot loops: only `\\u` / `\\U` escapes make surrogates.
  """
  return "\\u" in text or "\\U" in text


def scrub(text: str) -> tuple[str, int]:
  """Replaces lone surrogates by U+FFFD; returns (text, replacements)."""
  return _SURROGATE.subn(REPLACEMENT, text)


def scrub_tree(obj: Any) -> tuple[Any, int]:
  """`scrub` on every string (keys included) of parsed JSON.

  Returns:
    (a copy with every string scrubbed, or `obj` itself when nothing was
    replaced; the number of replaced characters).
  """
  if isinstance(obj, str):
    return scrub(obj)
  if isinstance(obj, list):
    total = 0
    out = []
    for value in obj:
      value, n = scrub_tree(value)
      out.append(value)
      total += n
    return (out if total else obj), total
  if isinstance(obj, dict):
    total = 0
    out = {}
    for key, value in obj.items():
      key, n = scrub(key) if isinstance(key, str) else (key, 0)
      value, m = scrub_tree(value)
      out[key] = value  # Two keys made equal by the scrub: the last wins.
      total += n + m
    return (out if total else obj), total
  return obj, 0


def warn_replaced(path: Any, count: int, line: int | None = None) -> None:
  """Logs (stderr) that `count` unencodable characters were replaced."""
  where = f"{path}:{line}" if line is not None else f"{path}"
  print(
    f"warning: {where}: replaced {count} unencodable character(s) (lone "
    "UTF-16 surrogates) with U+FFFD",
    file=sys.stderr,
    flush=True,
  )
