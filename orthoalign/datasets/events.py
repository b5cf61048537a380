"""A team's own log as an events table: one row per event (user, item, time, domain, and
optionally a 0/1 label and a value), from CSV/TSV, JSON Lines or Parquet, one file or a folder of
parts; filtered as the Amazon recipes filter; two of its domains as a `CDSRDataset`.

  events = read_events(["log.csv"], ColumnMap(user="uid", item="ad", time="ts", domain="app"),
                       BadLines(), time_unit="s")
  events, passes = apply_filters(events, Filters(user_core=5, item_core=5))
  ds = to_dataset(events, ("books", "movies"), name="mylog")

Reading is chunked (readers/tables.py): a chunk's ids are interned into integer codes at once,
so memory holds integer columns (about 30 bytes per event) plus one string per distinct user and
item, never the text. Item ids are per domain: the same id in two domains is two items (as
LLM4CDSR's recipe keeps them). Sequences follow time; events of one user with the same time keep
the order they were read in (`ties="file"`: the Amazon recipes' stable sort) or come domain by
domain in the chosen order, each in read order (`ties="domain"`: what the recipes give when each
domain is its own file). The steps and their order are in docs/data.md ("Your own log").
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import datetime
import math
import os
from typing import Any

import numpy as np

from orthoalign.datasets import columns as columns_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.readers import tables
from orthoalign.errors import DataError

TIME_UNITS = ("s", "ms", "us", "ns", "iso")
_PER_MS = {"s": 1e3, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
TIES = ("file", "domain")
MAX_DOMAINS = 127  # domain codes are int8
log = columns_lib.log


@dataclasses.dataclass(frozen=True)
class ColumnMap:
  """Which column holds what.

  Attributes:
    user: the user id column.
    item: the item id column (ids are per domain).
    time: the event time column; "" = no time (sequences follow read order, no timestamps).
    domain: the domain name column; "" = each file is one domain, named by its file name without
      suffixes (`books.csv` -> "books"), as RecBole-CDR keeps one file per domain.
    label: an optional 0/1 column ("" = none): 1 marks a positive event (a click); a ranking
      dataset keeps label-1 events only.
    value: an optional non-negative number column ("" = none), e.g. dwell seconds.
  """

  user: str = "user"
  item: str = "item"
  time: str = "time"
  domain: str = "domain"
  label: str = ""
  value: str = ""

  def wanted(self) -> list[str]:
    """The mapped columns, each once, in a fixed order."""
    names = (self.user, self.item, self.time, self.domain, self.label, self.value)
    return list(dict.fromkeys(n for n in names if n))


@dataclasses.dataclass
class Events:
  """Events as parallel integer columns, in read order (file after file, row after row).

  Attributes:
    user: int64 [n] user codes (index into `user_keys`).
    item: int64 [n] item codes (index into `item_keys` / `item_domain`).
    domain: int8 [n] domain codes (index into `domain_names`).
    ts_ms: int64 [n] unix milliseconds, or None without a time column.
    label: int8 [n] 0/1, or None without a label column.
    value: float32 [n] (NaN: the row had none), or None without a value column.
    user_keys: the original id of each user code.
    item_keys: the original id of each item code.
    item_domain: int8 [items] the domain code of each item code.
    domain_names: the name of each domain code.
    sources: the files read, in order.
  """

  user: np.ndarray
  item: np.ndarray
  domain: np.ndarray
  ts_ms: np.ndarray | None
  label: np.ndarray | None
  value: np.ndarray | None
  user_keys: list[str]
  item_keys: list[str]
  item_domain: np.ndarray
  domain_names: tuple[str, ...]
  sources: list[str] = dataclasses.field(default_factory=list)

  def __len__(self) -> int:
    return int(self.user.shape[0])

  def take(self, index: np.ndarray) -> Events:
    """The rows `index` (a bool mask or positions); codes and keys are kept."""
    pick = lambda a: None if a is None else a[index]
    return dataclasses.replace(
      self,
      user=self.user[index],
      item=self.item[index],
      domain=self.domain[index],
      ts_ms=pick(self.ts_ms),
      label=pick(self.label),
      value=pick(self.value),
    )

  def counts(self) -> dict[str, Any]:
    """Users, items and events in all and per domain (the manifest's record of a pass)."""
    per_domain = {}
    for code, name in enumerate(self.domain_names):
      rows = self.domain == code
      per_domain[name] = {
        "items": int(np.unique(self.item[rows]).size),
        "events": int(rows.sum()),
      }
    return {
      "users": int(np.unique(self.user).size),
      "items": int(np.unique(self.item).size),
      "events": len(self),
      "per_domain": per_domain,
    }


# --- reading ------------------------------------------------------------------------------------


def file_domain(path: str) -> str:
  """A file's name without its directory and its table suffixes (`books.csv.gz` -> "books")."""
  name = os.path.basename(path)
  for suffix in (".gz", *tables._SUFFIXES):  # pylint: disable=protected-access
    name = name.removesuffix(suffix)
  return name


class _Check:
  """A chunk's bad rows: each row's first error, handed to the policy in row order (`flush`), so
  that the error named (or the first one counted under "skip") is the earliest bad row.
  """

  def __init__(self, chunk: tables.Chunk):
    self.chunk = chunk
    self.keep = np.ones(len(chunk), bool)
    self.errors: dict[int, DataError] = {}

  def bad(self, i: int, column: str, detail: str) -> None:
    if self.keep[i]:
      self.keep[i] = False
      self.errors[i] = DataError(detail, **self.chunk.where(i, column))

  def flush(self, policy: BadLines) -> None:
    for i in sorted(self.errors):
      policy.handle(self.errors[i])


def _show(value: Any) -> str:
  """A cell as an error message shows it: its repr, plain for NumPy scalars."""
  if value is None or (isinstance(value, str) and not value.strip()):
    return "an empty value"
  return repr(value.item() if isinstance(value, np.generic) else value)


def _ids(values: Sequence[Any], check: _Check, column: str, what: str) -> list[str]:
  """Ids as stripped strings; an empty, missing or non-scalar id is a bad row."""
  out = []
  for i, v in enumerate(values):
    text = ""
    if isinstance(v, str):
      text = v.strip()
    elif isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number, type(None))):
      check.bad(i, column, f"got {_show(v)}; expected a {what} (a string or a number)")
    elif isinstance(v, (float, np.floating)) and math.isfinite(v) and float(v).is_integer():
      text = str(int(v))  # A numeric id column read as floats (JSON 12.0, Parquet doubles).
    elif v is not None and not (isinstance(v, (float, np.floating)) and math.isnan(v)):
      text = str(v)
    if not text:
      check.bad(i, column, f"empty {what}; expected a non-empty id")
    out.append(text)
  return out


def _numbers(values: Sequence[Any], check: _Check, column: str, expected: str) -> np.ndarray:
  """float64 [n] of finite numbers or numeric strings; anything else is a bad row."""
  try:
    if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.number):
      out = values.astype(np.float64)
    elif any(isinstance(v, (bool, np.bool_)) for v in values):
      raise ValueError("a bool")  # JSON true/false: not a number
    else:
      out = np.asarray(values, dtype=np.float64)  # Numeric strings parse here, fast.
  except (TypeError, ValueError):
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values):
      try:
        if isinstance(v, (bool, np.bool_)) or v is None:
          raise ValueError
        out[i] = float(v)
      except (TypeError, ValueError):
        pass
  for i in np.flatnonzero(~np.isfinite(out)):  # "nan", "inf", null and what did not parse
    check.bad(int(i), column, f"got {_show(values[i])}; expected {expected}")
  return np.where(np.isfinite(out), out, 0.0)


def _times_ms(values: Sequence[Any], unit: str, check: _Check, column: str) -> np.ndarray:
  """int64 [n] unix milliseconds from numbers in `unit`, ISO 8601 strings or datetimes."""
  if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.datetime64):
    out = values.astype("datetime64[ms]").astype(np.int64)
    for i in np.flatnonzero(np.isnat(values)):
      check.bad(int(i), column, "a missing time; expected a timestamp")
    return np.where(np.isnat(values), 0, out)
  if unit == "iso":
    out = np.zeros(len(values), np.int64)
    for i, v in enumerate(values):
      try:
        if isinstance(v, datetime.datetime):
          stamp = v
        else:
          stamp = datetime.datetime.fromisoformat(str(v).strip())
        if stamp.tzinfo is None:
          stamp = stamp.replace(tzinfo=datetime.UTC)  # A time without zone is UTC.
        out[i] = round(stamp.timestamp() * 1000)
      except (TypeError, ValueError, OverflowError):
        check.bad(i, column, f"got {_show(v)}; expected an ISO 8601 time (time_unit=iso)")
    return out
  expected = f"a number of {'seconds' if unit == 's' else unit} since 1970 (time_unit={unit})"
  ms = _numbers(values, check, column, expected) * _PER_MS[unit]
  # Beyond year ~2.9e5 or before -2.9e5 is no log's time: most likely the wrong time_unit.
  for i in np.flatnonzero(check.keep & (np.abs(ms) > 1e16)):
    check.bad(int(i), column, f"got {_show(values[i])}, not a plausible time; {expected}")
  return np.where(check.keep, np.round(ms), 0).astype(np.int64)


def _labels(values: Sequence[Any], check: _Check, column: str) -> np.ndarray:
  expected = "0 or 1 (1 = a positive event, e.g. a click)"
  numbers = _numbers(values, check, column, expected)
  for i in np.flatnonzero(check.keep & (numbers != 0) & (numbers != 1)):
    check.bad(int(i), column, f"got {_show(values[i])}; expected {expected}")
  return np.where(check.keep, numbers, 0).astype(np.int8)


def _values(values: Sequence[Any], check: _Check, column: str) -> np.ndarray:
  """float32 [n]; a missing value is NaN (an event without one), a negative one a bad row."""
  if isinstance(values, np.ndarray) and np.issubdtype(values.dtype, np.floating):
    missing = np.isnan(values)  # Parquet: a null of a float column
  else:
    missing = np.array([v is None or (isinstance(v, str) and not v.strip()) for v in values])
  if isinstance(values, np.ndarray) and values.dtype != object:
    values = np.where(missing, 0, values)
  else:
    values = [0 if m else v for v, m in zip(values, missing)]
  expected = "a finite number >= 0 (e.g. seconds of dwell time), or nothing"
  numbers = _numbers(values, check, column, expected)
  for i in np.flatnonzero(check.keep & (numbers < 0)):
    check.bad(int(i), column, f"got {numbers[i]:g}; expected {expected}")
  return np.where(missing, np.nan, numbers).astype(np.float32)


def read_events(
  paths: Sequence[str],
  columns: ColumnMap,
  bad: BadLines,
  *,
  time_unit: str = "s",
  value_scale: float = 1.0,
  domains: Sequence[str] = (),
  table_format: str = "auto",
  header: Any = None,
) -> Events:
  """Reads the events of table files, part after part, into integer columns.

  Args:
    paths: the files, in the order their rows are read (`tables.part_files` of a folder).
    columns: the column mapping.
    bad: the bad-line policy: a malformed row stops the read ("error") or is skipped and counted.
    time_unit: what a numeric time counts ("s", "ms", "us", "ns") or "iso" for ISO 8601 strings;
      Parquet timestamp columns are read as they are.
    value_scale: what each value is multiplied by once read (0.001: milliseconds to seconds).
    domains: the domains to keep, in this order (rows of others are dropped as they are read);
      () = every domain, in sorted name order.
    table_format: "auto" (each file's suffix) or one of tables.TABLE_FORMATS.
    header: see `tables.read`.

  Returns:
    The events.

  Raises:
    DataError: naming file, line or row, and column: a missing column, an empty id, a time or
      label or value that does not parse (policy "error"), a named domain absent from the data,
      or no events at all.
  """
  wanted = columns.wanted()
  users: dict[str, int] = {}
  items: dict[tuple[int, str], int] = {}
  if len(domains) > len(set(domains)):
    raise DataError(f"names a domain twice: {list(domains)}", key="reader option domains")
  chosen = {name: code for code, name in enumerate(domains)}
  found: dict[str, int] = {}  # Every domain in the data, chosen or not, in read order.
  parts: dict[str, list[np.ndarray]] = {
    k: [] for k in ("user", "item", "domain", "ts", "lab", "val")
  }
  read = 0
  for path in paths:
    before = read
    for chunk in tables.read(path, wanted, bad, table_format=table_format, header=header):
      n = len(chunk)
      read += n
      check = _Check(chunk)
      cols = chunk.columns
      user = _ids(cols[columns.user], check, columns.user, "user id")
      item = _ids(cols[columns.item], check, columns.item, "item id")
      if columns.domain:
        domain = _ids(cols[columns.domain], check, columns.domain, "domain name")
      else:
        domain = [file_domain(path)] * n
      ts = _times_ms(cols[columns.time], time_unit, check, columns.time) if columns.time else None
      lab = _labels(cols[columns.label], check, columns.label) if columns.label else None
      val = _values(cols[columns.value], check, columns.value) if columns.value else None
      if val is not None and value_scale != 1.0:
        val = (val.astype(np.float64) * value_scale).astype(np.float32)
      check.flush(bad)
      keep = check.keep
      valid = domain if keep.all() else [domain[i] for i in np.flatnonzero(keep)]
      for name in dict.fromkeys(valid):  # The domains of valid rows, in read order.
        found.setdefault(name, len(found))
      if len(found) > MAX_DOMAINS:
        raise DataError(
          f"more than {MAX_DOMAINS} distinct domain names ({sorted(found)[:5]}, ...); expected a "
          "few (is the column mapping right?)",
          path=path,
          key=f"column {columns.domain!r}",
        )
      if chosen:
        keep &= np.array([d in chosen for d in domain])
        codes = chosen
      else:
        codes = found
      rows = np.flatnonzero(keep)
      dom = np.array([codes[domain[i]] for i in rows], np.int8)
      add_user = users.setdefault
      parts["user"].append(np.array([add_user(user[i], len(users)) for i in rows], np.int64))
      add_item = items.setdefault
      parts["item"].append(
        np.array([add_item((d, item[i]), len(items)) for d, i in zip(dom.tolist(), rows)], np.int64)
      )
      parts["domain"].append(dom)
      for key, arr in (("ts", ts), ("lab", lab), ("val", val)):
        if arr is not None:
          parts[key].append(arr[rows])
    log(f"read {read - before:,} events from {path}")
  if not read:
    raise DataError("no events; expected a header and at least one row", path=paths[0])
  absent = [name for name in domains if name not in found]
  if absent:
    raise DataError(
      f"domain {absent[0]!r} is not in the data; its domains are {sorted(found)}",
      key="reader option domains",
    )
  names = tuple(domains) if chosen else tuple(found)
  cat = lambda key, dtype: np.concatenate(parts[key]) if parts[key] else np.zeros(0, dtype)
  item_keys = [""] * len(items)
  item_domain = np.zeros(len(items), np.int8)
  for (d, key), code in items.items():
    item_keys[code] = key
    item_domain[code] = d
  events = Events(
    user=cat("user", np.int64),
    item=cat("item", np.int64),
    domain=cat("domain", np.int8),
    ts_ms=cat("ts", np.int64) if columns.time else None,
    label=cat("lab", np.int8) if columns.label else None,
    value=cat("val", np.float32) if columns.value else None,
    user_keys=list(users),
    item_keys=item_keys,
    item_domain=item_domain,
    domain_names=names,
    sources=list(paths),
  )
  if not chosen:  # Domain codes in sorted name order, whatever the read order.
    events = _recode_domains(events, tuple(sorted(names)))
  if events.ts_ms is not None and len(events):
    _warn_odd_times(events.ts_ms, time_unit)
  return events


# Times outside these years are more likely a wrong time_unit than a log's (a warning only: a log
# may count seconds from its own start).
_PLAUSIBLE_MS = (
  datetime.datetime(1990, 1, 1, tzinfo=datetime.UTC).timestamp() * 1000,
  datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC).timestamp() * 1000,
)


def _warn_odd_times(ts_ms: np.ndarray, time_unit: str) -> None:
  lo, hi = int(ts_ms.min()), int(ts_ms.max())
  if _PLAUSIBLE_MS[0] <= lo and hi < _PLAUSIBLE_MS[1]:
    return
  epoch = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
  show = lambda ms: (epoch + datetime.timedelta(milliseconds=ms)).strftime("%Y-%m-%d %H:%M:%S")
  log(
    f"warning: the events' times run from {show(lo)} to {show(hi)} UTC (time_unit={time_unit}); "
    "if the log is not from then, its times are in another unit: set the reader option time_unit"
  )


def _recode_domains(events: Events, names: tuple[str, ...]) -> Events:
  new = np.array([names.index(n) for n in events.domain_names], np.int8)
  return dataclasses.replace(
    events,
    domain=new[events.domain] if len(events) else events.domain,
    item_domain=new[events.item_domain] if events.item_domain.size else events.item_domain,
    domain_names=names,
  )


# --- filters ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Filters:
  """The filters of the Amazon recipes, for any log; each 0 / None / False is off.

  Applied in this order, each pass counted (`apply_filters`): positive events only (with a label
  column), the time window, exact duplicates, overlapped users, the iterative k-core, each user's
  last `max_len` events, then at least `min_per_domain` events in every domain.

  Attributes:
    t_min: keep events at or after this time (unix seconds).
    t_max: keep events before this time (unix seconds).
    duplicates: "keep" or "drop" rows that repeat an earlier row's user, item and exact time.
    overlapped_only: keep only users with events in every domain (ABXI's recipe).
    user_core: the k-core's user threshold: every user keeps >= user_core events.
    item_core: the k-core's item threshold: every item keeps >= item_core events. The two are
      applied together, round after round, until both hold (a standard k-core; LLM4CDSR's recipe
      compares with > in its rounds, not reproduced here).
    max_len: keep each user's last max_len events (0 = all).
    min_per_domain: keep users with >= this many events in each domain, counted after max_len
      (ABXI's k_u).
    ties: how a user's events with the same time are ordered: "file" (read order) or "domain"
      (domain by domain in the domains' order, each in read order).
  """

  t_min: int | None = None
  t_max: int | None = None
  duplicates: str = "keep"
  overlapped_only: bool = False
  user_core: int = 0
  item_core: int = 0
  max_len: int = 0
  min_per_domain: int = 0
  ties: str = "file"


def sort_sequences(events: Events, ties: str = "file") -> Events:
  """Groups the events by user (users in sorted id order), each user's in time order.

  Same-time events keep read order (`ties="file"`) or go domain by domain (`ties="domain"`).
  """
  n = len(events)
  if not n:
    return events
  ranked = sorted(range(len(events.user_keys)), key=events.user_keys.__getitem__)
  rank = np.empty(len(events.user_keys), np.int64)
  rank[ranked] = np.arange(len(ranked))
  keys = [np.arange(n)]
  if ties == "domain":
    keys.append(events.domain)
  if events.ts_ms is not None:
    keys.append(events.ts_ms)
  keys.append(rank[events.user])
  return events.take(np.lexsort(keys))


def _last_from_end(user: np.ndarray) -> np.ndarray:
  """0 for each user's last row, 1 for the one before, ... (rows grouped by user)."""
  n = user.shape[0]
  if not n:
    return np.zeros(0, np.int64)
  ends = np.flatnonzero(np.append(user[1:] != user[:-1], True))
  return np.repeat(ends, np.diff(np.append(-1, ends))) - np.arange(n)


def apply_filters(
  events: Events, filters: Filters, *, positives_only: bool = True
) -> tuple[Events, list[dict[str, Any]]]:
  """Sorts the events into sequences and applies `filters` in their documented order.

  Args:
    events: as read.
    filters: the filters.
    positives_only: with a label column, keep label-1 events only (what a ranking dataset is made
      of); the click-prediction task keeps every labelled event.

  Returns:
    (the events left, grouped by user in time order; one record per pass: {"step", "users",
    "items", "events", "per_domain"} and, for the k-core, "rounds", for duplicates, "found"),
    each pass also logged on stderr.

  Raises:
    DataError: a time filter on a log without a time column.
  """
  passes: list[dict[str, Any]] = []

  def record(step: str, ev: Events, **extra: Any) -> Events:
    counts = ev.counts()
    passes.append({"step": step, **counts, **extra})
    log(
      f"{step}: {counts['users']:,} users, {counts['items']:,} items, {counts['events']:,} events"
    )
    return ev

  events = record("read", sort_sequences(events, filters.ties))
  if positives_only and events.label is not None:
    events = record("positive events (label 1)", events.take(events.label == 1))
  if filters.t_min is not None or filters.t_max is not None:
    if events.ts_ms is None:
      raise DataError(
        "a time window (t_min / t_max) needs a time column; expected the mapping to name one",
        key="reader option time",
      )
    keep = np.ones(len(events), bool)
    if filters.t_min is not None:
      keep &= events.ts_ms >= filters.t_min * 1000
    if filters.t_max is not None:
      keep &= events.ts_ms < filters.t_max * 1000
    events = record(f"time in [{filters.t_min}, {filters.t_max})", events.take(keep))
  if events.ts_ms is not None:
    ts = events.ts_ms
    dup = columns_lib.duplicate_rows(
      columns_lib.Columns(events.user, events.item, ts // 1000, events.domain, ts)
    )
    found = int(dup.sum())
    if filters.duplicates == "drop":
      events = record("exact duplicates dropped", events.take(~dup), found=found)
    elif found:
      log(
        f"warning: keeping {found:,} exact duplicate (user, item, time) row(s) (duplicates=keep); "
        "set the reader option duplicates=drop to remove them"
      )
      passes.append({"step": "exact duplicates kept", "found": found})
  if filters.overlapped_only:
    every = np.ones(len(events.user_keys), bool)
    for code in range(len(events.domain_names)):
      every &= np.bincount(events.user[events.domain == code], minlength=every.size) > 0
    events = record("users in every domain", events.take(every[events.user]))
  if filters.user_core or filters.item_core:
    rounds = 0
    while True:
      u = np.bincount(events.user, minlength=len(events.user_keys))[events.user]
      i = np.bincount(events.item, minlength=len(events.item_keys))[events.item]
      keep = (u >= filters.user_core) & (i >= filters.item_core)
      if keep.all():
        break
      rounds += 1
      events = events.take(keep)
    events = record(
      f"k-core (user {filters.user_core}, item {filters.item_core})", events, rounds=rounds
    )
  if filters.max_len:
    events = record(
      f"each user's last {filters.max_len}",
      events.take(_last_from_end(events.user) < filters.max_len),
    )
  if filters.min_per_domain:
    good = np.ones(len(events.user_keys), bool)
    for code in range(len(events.domain_names)):
      per = np.bincount(events.user[events.domain == code], minlength=good.size)
      good &= per >= filters.min_per_domain
    events = record(
      f">= {filters.min_per_domain} events in every domain", events.take(good[events.user])
    )
  return events, passes


# --- a two-domain dataset -----------------------------------------------------------------------


def to_dataset(events: Events, name: str) -> CDSRDataset:
  """The two domains' events as a `CDSRDataset` (domain A = the first name, B = the second).

  Args:
    events: grouped by user in time order (`apply_filters` or `sort_sequences`), two domains.
    name: the dataset's name.

  Returns:
    The dataset: users in sorted id order, each domain's items in sorted id order (A's global ids
    1..nA, then B's), timestamps in whole seconds (None without a time column), the original
    user and item ids. Its domains are A and B as every reader's, so that metric keys, tables
    and the analysis read as for any two-domain data; `domain_map` says which log domain each is.

  Raises:
    DataError: not exactly two domains, or a domain without events left.
  """
  names = events.domain_names
  if len(names) < 2:
    raise DataError(
      f"the log has one domain {list(names)}; a two-domain dataset needs two: map the column "
      "that names each event's domain (reader option domain), or give one file per domain",
      key=f"dataset {name!r}",
    )
  if len(names) > 2:
    raise DataError(
      f"the log has {len(names)} domains {list(names)}; a two-domain dataset needs two: name "
      f"them in the reader option domains, e.g. domains={tuple(names[:2])!r}",
      key=f"dataset {name!r}",
    )
  n = len(events)
  starts = np.append(True, events.user[1:] != events.user[:-1]) if n else np.zeros(0, bool)
  user_out = np.cumsum(starts) - 1
  user_keys = [events.user_keys[c] for c in events.user[starts]]
  global_id = np.zeros(len(events.item_keys), np.int64)
  item_keys = [""]
  sizes = []
  for code, domain in enumerate(names):
    present = np.unique(events.item[events.domain == code]).tolist()
    if not present:
      raise DataError(
        f"no events of domain {domain!r} are left after the filters; expected both domains to "
        "keep events (are the filters too strict?)",
        key=f"dataset {name!r}",
      )
    present.sort(key=events.item_keys.__getitem__)
    global_id[present] = np.arange(len(item_keys), len(item_keys) + len(present))
    item_keys.extend(events.item_keys[c] for c in present)
    sizes.append(len(present))
  return CDSRDataset(
    name=name,
    num_items_a=sizes[0],
    num_items_b=sizes[1],
    offsets=np.concatenate([[0], np.cumsum(np.bincount(user_out, minlength=len(user_keys)))]),
    items=global_id[events.item],
    domains=events.domain,
    timestamps=None if events.ts_ms is None else events.ts_ms // 1000,
    user_ids=np.asarray(user_keys, dtype=str),
    item_keys=np.asarray(item_keys, dtype=str),
  )


def domain_map(events: Events) -> dict[str, str]:
  """{"A": the first domain's name in the log, "B": the second's}, as `to_dataset` maps them."""
  return dict(zip(("A", "B"), events.domain_names))
