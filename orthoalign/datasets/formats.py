"""The dataset formats `data.format` names: "synthetic" (the embedded generator, no files) and
one record per file-based reader (readers/format.Format), registered here once.

  abxi       ABXI's preprocessed files (readers/abxi.py)
  llmcdsr    LLMCDSR's files (readers/llmcdsr.py)
  c2dsr      C2DSR's files (readers/c2dsr.py)
  handled    LLM4CDSR's handled pickle + id_map.json (readers/handled.py); reader option
             inter_file (upstream's --inter_file) where the folder holds several interaction
             pickles. The authors' embedding pickles beside them are read by the LLM4CDSR model
             (readers/llm4cdsr_tables.py), not here.
  prepared   a folder written by `python -m orthoalign.datasets.prepare` (readers/prepared.py)
  imvae      IM-VAE / AMID open-world CSVs (readers/imvae.py); reader options valid_fraction
             (0.1), valid_seed (0)
  events     an events table: CSV/TSV, JSON Lines or Parquet, a file or a folder of parts
             (readers/events.py); reader options: the column mapping and the filters
  recbole    RecBole atomic files, .inter (+ .item) (readers/recbole.py)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import c2dsr
from orthoalign.datasets.readers import events
from orthoalign.datasets.readers import format as format_lib
from orthoalign.datasets.readers import handled
from orthoalign.datasets.readers import imvae
from orthoalign.datasets.readers import llmcdsr
from orthoalign.datasets.readers import prepared
from orthoalign.datasets.readers import recbole
from orthoalign.errors import DataError

SYNTHETIC = "synthetic"
READERS: dict[str, format_lib.Format] = {
  f.name: f
  for f in (
    abxi.FORMAT,
    c2dsr.FORMAT,
    llmcdsr.FORMAT,
    handled.FORMAT,
    prepared.FORMAT,
    imvae.FORMAT,
    events.FORMAT,
    recbole.FORMAT,
  )
}
FORMATS = (SYNTHETIC, *READERS)


def get(name: str) -> format_lib.Format:
  """The record of a file-based format.

  Raises:
    DataError: naming `data.format`, for a name that is none.
  """
  if name not in READERS:
    raise DataError(f"expected one of {list(FORMATS)}, got {name!r}", key="data.format")
  return READERS[name]


def reader_options(fmt: format_lib.Format, options: Mapping[str, Any] | None) -> dict[str, Any]:
  """The format's reader options with their defaults filled in, checked (`Format.check`).

  Raises:
    DataError: naming `data.reader_options`, for an option the format does not take, or the
      option whose value the reader refuses.
  """
  unknown = sorted(set(options or {}) - set(fmt.options))
  if unknown:
    raise DataError(
      f"unknown option(s) {unknown} for format {fmt.name!r}; valid: {sorted(fmt.options)}",
      key="data.reader_options",
    )
  resolved = {**fmt.options, **(options or {})}
  if fmt.check is not None:
    fmt.check(**resolved)
  return resolved


def parse_pairs(pairs: Sequence[str] | None, flag: str) -> dict[str, str]:
  """Repeated `flag key=value` items as {key: value} (values stay strings).

  Raises:
    DataError: naming `flag`, for an item without '=' or a key given twice.
  """
  out: dict[str, str] = {}
  for pair in pairs or ():
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep or not key:
      raise DataError(f"got {pair!r}; expected key=value", key=flag)
    if key in out:
      raise DataError(f"{key!r} given twice", key=flag)
    out[key] = value.strip()
  return out


def option_value(key: str, text: str, default: Any) -> Any:
  """A `--option key=value` string as the type of the option's default.

  bool: true/false (or 1/0); int, float; tuple: comma-separated names; None (t_min, t_max): an
  integer or "none"; str: as given.

  Raises:
    DataError: naming `--option key`, for a value that is not of that type.
  """
  try:
    if isinstance(default, bool):
      lowered = text.strip().lower()
      if lowered not in ("true", "false", "1", "0"):
        raise ValueError("not true or false")
      return lowered in ("true", "1")
    if isinstance(default, int):
      return int(text)
    if isinstance(default, float):
      return float(text)
    if isinstance(default, tuple):
      return tuple(v.strip() for v in text.split(",") if v.strip())
    if default is None:
      return None if text.strip().lower() in ("", "none") else int(text)
  except ValueError as e:
    kind = {bool: "true or false", int: "an integer", float: "a number"}.get(type(default))
    kind = kind or "an integer (unix seconds) or none"
    raise DataError(f"bad value {text!r} ({e}); expected {kind}", key=f"--option {key}") from None
  return text


def options_from_flags(fmt: format_lib.Format, pairs: Sequence[str]) -> dict[str, Any]:
  """The reader options of repeated `--option key=value` flags, each of its default's type.

  Raises:
    DataError: naming `--option`, for an item without '=', a repeated or unknown key (listing
      the valid ones), or a value of another type.
  """
  given = parse_pairs(pairs, "--option")
  unknown = sorted(set(given) - set(fmt.options))
  if unknown:
    raise DataError(
      f"unknown option(s) {unknown} for format {fmt.name!r}; valid: {sorted(fmt.options)}",
      key="--option",
    )
  return {k: option_value(k, v, fmt.options[k]) for k, v in given.items()}
