"""The `events` format: a team's own log as an events table (datasets/events.py).

One file or a folder of parts, with the column mapping and the filters as reader options:

  config.data.format = "events"
  config.data.path = "logs/events.parquet"   # or a folder of parts, or a .csv / .jsonl(.gz)
  config.data.reader_options = dict(user="uid", item="item_id", time="ts", domain="app",
                                    domains=("books", "movies"), user_core=5, item_core=5)

Every option, its default and meaning: `OPTIONS` and docs/data.md ("Your own log").
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import os
from typing import Any

from orthoalign.datasets import events as events_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.readers import format as format_lib
from orthoalign.datasets.readers import tables
from orthoalign.errors import DataError

_COLUMNS = {f.name: f.default for f in dataclasses.fields(events_lib.ColumnMap)}
_FILTERS = {f.name: f.default for f in dataclasses.fields(events_lib.Filters)}
# Reader option -> default: the column mapping, how to read, and the filters.
OPTIONS: dict[str, Any] = {
  **_COLUMNS,
  "time_unit": "s",
  "value_scale": 1.0,
  "domains": (),
  "table_format": "auto",
  "pattern": "*",
  **_FILTERS,
}
_CHOICES = {
  "time_unit": events_lib.TIME_UNITS,
  "table_format": ("auto", *tables.TABLE_FORMATS),
  "duplicates": ("keep", "drop"),
  "ties": events_lib.TIES,
}


def _fail(key: str, value: Any, expected: str) -> DataError:
  return DataError(f"got {value!r}; expected {expected}", key=f"data.reader_options.{key}")


def domain_list(value: Any) -> tuple[str, ...]:
  """The `domains` option as a tuple: a tuple or list of names, or one comma-separated string."""
  if isinstance(value, str):
    value = [v for v in value.split(",") if v.strip()]
  if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
    raise _fail("domains", value, "a tuple of domain names, e.g. ('books', 'movies')")
  return tuple(v.strip() for v in value)


def check(**options: Any) -> dict[str, Any]:
  """Checks every option (before any file is read) and returns them converted.

  Raises:
    DataError: naming `data.reader_options.<key>`, the value and what is expected.
  """
  out = dict(options)
  for key in _COLUMNS:
    value = options[key]
    if not isinstance(value, str) or (key in ("user", "item") and not value.strip()):
      need = "a column name" + ("" if key in ("user", "item") else ' (or "" for none)')
      raise _fail(key, value, need)
  for key, choices in _CHOICES.items():
    if options[key] not in choices:
      raise _fail(key, options[key], f"one of {list(choices)}")
  out["domains"] = domain_list(options["domains"])
  if len(out["domains"]) not in (0, 2):
    raise _fail("domains", options["domains"], "() or two domain names (A, B)")
  for key in ("t_min", "t_max"):
    value = options[key]
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
      raise _fail(key, value, "unix seconds (an integer), or None")
  for key in ("user_core", "item_core", "max_len", "min_per_domain"):
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
      raise _fail(key, value, "an integer >= 0 (0 = off)")
  scale = options["value_scale"]
  if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
    raise _fail("value_scale", scale, "a number > 0 the values are multiplied by (ms -> s: 0.001)")
  if not isinstance(options["pattern"], str) or not options["pattern"]:
    raise _fail("pattern", options["pattern"], 'a file-name pattern, e.g. "log_*.csv" ("*": all)')
  if options["t_min"] is not None and options["t_max"] is not None:
    if options["t_min"] >= options["t_max"]:
      raise _fail("t_max", options["t_max"], f"a time after t_min={options['t_min']}")
  if not isinstance(options["overlapped_only"], bool):
    raise _fail("overlapped_only", options["overlapped_only"], "True or False")
  if options["ties"] == "domain" and not out["domains"]:
    raise _fail("ties", "domain", "'file', or 'domain' together with the domains option")
  return out


def split_options(options: Mapping[str, Any]):
  """(ColumnMap, Filters, read keywords) from checked options."""
  columns = events_lib.ColumnMap(**{k: options[k] for k in _COLUMNS})
  filters = events_lib.Filters(**{k: options[k] for k in _FILTERS})
  read = {k: options[k] for k in ("time_unit", "value_scale", "domains", "table_format")}
  return columns, filters, read


def dataset_name(path: str) -> str:
  """A file's name without its suffixes, or a folder's name."""
  name = os.path.basename(os.path.normpath(path))
  return events_lib.file_domain(name) if os.path.isfile(path) else name


def read(
  path: str, bad: BadLines, *, report: dict[str, Any] | None = None, **options: Any
) -> CDSRDataset:
  """Reads, filters and builds the two-domain dataset (format record `FORMAT`).

  Args:
    path: a table file or a folder of parts (read in name order).
    bad: the bad-line policy.
    report: filled with {"filters": the passes of `events.apply_filters`, "domains": which log
      domain is A and which is B (`events.domain_map`)}.
    **options: `OPTIONS`.

  Raises:
    DataError: see `events.read_events`, `events.apply_filters`, `events.to_dataset`.
  """
  options = check(**{**OPTIONS, **options})
  columns, filters, kwargs = split_options(options)
  events = events_lib.read_events(
    tables.part_files(path, options["pattern"]), columns, bad, **kwargs
  )
  if len(events.domain_names) != 2:  # Before the filters' work: the mapping needs changing.
    events_lib.to_dataset(events, dataset_name(path))
  events, passes = events_lib.apply_filters(events, filters)
  mapping = events_lib.domain_map(events)
  events_lib.log(", ".join(f"domain {k} = {v!r}" for k, v in mapping.items()))
  if report is not None:
    report.update(filters=passes, domains=mapping)
  return events_lib.to_dataset(events, dataset_name(path))


FORMAT = format_lib.Format(
  name="events",
  summary="an events table (CSV/TSV, JSON Lines or Parquet; a file or a folder of parts)",
  read=read,
  options=OPTIONS,
  sources=lambda path, **options: tables.part_files(path, options.get("pattern", "*")),
  check=check,
  file_or_folder=True,
  reports=True,
)
