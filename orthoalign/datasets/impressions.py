"""Click prediction's data: a target domain's labelled impressions, each with every domain's
history strictly before it, split by time.

  data = click_data(events, target="ads", sources=("posts", "likes"), split=TimeSplit())

An impression is an event of the target domain with a 0/1 label (1 = a click): impressions are
the task, not missing data. Each impression's user tower reads one stream per domain: the target
domain's clicks and each source domain's events (its label-1 events when the log labels them),
each the user's events with a time strictly before the impression's: no event at or after an
impression's time is ever in its history. Streams are stored once per domain, user by user in
time order (CSR); an impression keeps, per stream, where its history ends (`hist_end`), so a
window of the last L events is a slice computed on the device. A source event's value (dwell
seconds, ...) is kept as a log2 bucket (`value_bucket`).

The split is by time: every user's last impressions (`UserLastSplit`) or a global cut at the
last day(s) (`TimeSplit`); training impressions come before validation ones, validation before
test, for each user (`UserLastSplit`) or for all (`TimeSplit`).
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
from typing import Any

import numpy as np

from orthoalign.datasets import events as events_lib
from orthoalign.errors import DataError

TRAIN, VALID, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "valid", "test")
VALUE_BUCKETS = 16  # 0 = no value; 1 + floor(log2(1 + v)), capped at 15
_DAY_MS = 86_400_000


@dataclasses.dataclass(frozen=True)
class TimeSplit:
  """A global cut: the last `test_days` of the log are the test impressions, the `valid_days`
  before them the validation ones, everything earlier the training ones.
  """

  valid_days: float = 1.0
  test_days: float = 1.0


@dataclasses.dataclass(frozen=True)
class UserLastSplit:
  """Each user's last `test` impressions are test, the `valid` before them validation."""

  valid: int = 2
  test: int = 2


@dataclasses.dataclass(frozen=True)
class Stream:
  """One domain's events the user tower reads, user by user in time order.

  Attributes:
    offsets: int64 [U+1]: user u's events are rows offsets[u]:offsets[u+1].
    items: int32 [T] local item ids 1..n (0 = padding).
    ts_ms: int64 [T] unix milliseconds.
    value_bucket: int8 [T] the value's log2 bucket (0 = none).
    num_items: n, the domain's items.
  """

  offsets: np.ndarray
  items: np.ndarray
  ts_ms: np.ndarray
  value_bucket: np.ndarray
  num_items: int


@dataclasses.dataclass(frozen=True)
class ClickData:
  """Impressions of a target domain with their streams' histories.

  Attributes:
    target: the target domain's name.
    sources: the source domains' names, in order.
    user: int64 [N] user index of each impression (impressions grouped by user, time order).
    item: int32 [N] the impression's target item (local id 1..n_target).
    ts_ms: int64 [N] its time.
    label: int8 [N] 1 = clicked.
    split: int8 [N] TRAIN, VALID or TEST.
    streams: {domain name: Stream}: the target's clicks under the target's name, then each source.
    hist_end: {domain name: int64 [N]}: the row of the stream where the impression's history
      ends (exclusive): its events are rows [offsets[user], hist_end) of that stream.
    user_keys: the original id of each user index.
    item_keys: {domain name: [n + 1] original item ids by local id, row 0 = ""}.
  """

  target: str
  sources: tuple[str, ...]
  user: np.ndarray
  item: np.ndarray
  ts_ms: np.ndarray
  label: np.ndarray
  split: np.ndarray
  streams: dict[str, Stream]
  hist_end: dict[str, np.ndarray]
  user_keys: list[str]
  item_keys: dict[str, list[str]]

  @property
  def num_impressions(self) -> int:
    return int(self.user.shape[0])

  def history_lengths(self, domain: str) -> np.ndarray:
    """int64 [N]: how many events of `domain` each impression's history holds."""
    return self.hist_end[domain] - self.streams[domain].offsets[self.user]

  def window(
    self, domain: str, rows: np.ndarray, length: int
  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The last `length` events of `domain` before impressions `rows`, left-padded with 0.

    Returns:
      (items int32 [len(rows), length], value buckets int8 [len(rows), length], times int64
      [len(rows), length] in unix milliseconds), 0 in the padding.
    """
    stream = self.streams[domain]
    end = self.hist_end[domain][rows]
    start = stream.offsets[self.user[rows]]
    idx = end[:, None] - length + np.arange(length)[None, :]
    valid = idx >= start[:, None]
    idx = np.where(valid, idx, 0)
    pick = lambda a: np.where(valid, a[idx] if a.size else 0, 0)
    return (
      pick(stream.items).astype(np.int32),
      pick(stream.value_bucket).astype(np.int8),
      pick(stream.ts_ms).astype(np.int64),
    )

  def summary(self) -> dict[str, Any]:
    """Impressions and click rate per split, users, items and mean history length per stream."""
    out: dict[str, Any] = {
      "target": self.target,
      "sources": list(self.sources),
      "users": len(self.user_keys),
    }
    for code, name in enumerate(SPLIT_NAMES):
      rows = self.split == code
      out[name] = {
        "impressions": int(rows.sum()),
        "clicks": int(self.label[rows].sum()),
        "ctr": float(self.label[rows].mean()) if rows.any() else float("nan"),
      }
    out["streams"] = {
      name: {
        "items": stream.num_items,
        "events": int(stream.items.shape[0]),
        "mean_history": float(self.history_lengths(name).mean()),
      }
      for name, stream in self.streams.items()
    }
    return out


def value_buckets(values: np.ndarray | None, n: int) -> np.ndarray:
  """int8 [n]: 0 for no value (None or NaN), else 1 + floor(log2(1 + v)) capped at 15."""
  if values is None:
    return np.zeros(n, np.int8)
  v = np.asarray(values, np.float64)
  bucket = 1 + np.floor(np.log2(1 + np.where(np.isnan(v), 0, np.maximum(v, 0))))
  return np.where(np.isnan(v), 0, np.minimum(bucket, VALUE_BUCKETS - 1)).astype(np.int8)


def _split(user: np.ndarray, ts: np.ndarray, split: TimeSplit | UserLastSplit) -> np.ndarray:
  """int8 [N] split codes of impressions grouped by user in time order."""
  out = np.full(user.shape[0], TRAIN, np.int8)
  if isinstance(split, TimeSplit):
    end = int(ts.max()) + 1
    test_from = end - round(split.test_days * _DAY_MS)
    valid_from = test_from - round(split.valid_days * _DAY_MS)
    out[ts >= valid_from] = VALID
    out[ts >= test_from] = TEST
    return out
  ends = np.flatnonzero(np.append(user[1:] != user[:-1], True))
  from_end = np.repeat(ends, np.diff(np.append(-1, ends))) - np.arange(user.shape[0])
  out[from_end < split.valid + split.test] = VALID
  out[from_end < split.test] = TEST
  return out


def _stream(
  events: events_lib.Events, code: int, users: int, positives: bool
) -> tuple[Stream, list[str], np.ndarray]:
  """One domain's stream (its label-1 events with `positives`), its item ids by local id and the
  local id of each of `events`' item codes (0 for another domain's).
  """
  rows = events.domain == code
  if positives and events.label is not None:
    rows &= events.label == 1
  sub = events.take(np.flatnonzero(rows))
  order = np.lexsort((np.arange(len(sub)), sub.ts_ms, sub.user))
  sub = sub.take(order)
  # Local ids by the domain's original ids, so that they do not depend on the log's row order.
  item_codes = np.flatnonzero(events.item_domain == code)
  ordered = sorted(item_codes.tolist(), key=events.item_keys.__getitem__)
  local = np.zeros(len(events.item_keys), np.int64)
  local[ordered] = np.arange(1, len(ordered) + 1)
  stream = Stream(
    offsets=np.concatenate([[0], np.cumsum(np.bincount(sub.user, minlength=users))]),
    items=local[sub.item].astype(np.int32),
    ts_ms=sub.ts_ms,
    value_bucket=value_buckets(sub.value, len(sub)),
    num_items=len(ordered),
  )
  return stream, ["", *(events.item_keys[c] for c in ordered)], local


def _history_ends(stream: Stream, user: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
  """int64 [N]: for each (user, time), the stream's first row of that user at or after the time.

  Stream rows and the queries sorted together by (user, time), a query before a stream event of
  the same time (so that the history holds events strictly before): the stream rows sorted before
  a query are the rows before its end, since rows are grouped by user in time order.
  """
  stream_user = np.repeat(np.arange(stream.offsets.size - 1), np.diff(stream.offsets))
  n = stream_user.size
  u = np.concatenate([stream_user, user])
  t = np.concatenate([stream.ts_ms, ts_ms])
  is_row = np.concatenate([np.ones(n, bool), np.zeros(user.size, bool)])
  order = np.lexsort((is_row, t, u))
  rows_before = np.cumsum(is_row[order])
  out = np.empty(user.size, np.int64)
  out[order[~is_row[order]] - n] = rows_before[~is_row[order]]
  return out


def click_data(
  events: events_lib.Events,
  target: str,
  sources: Sequence[str],
  split: TimeSplit | UserLastSplit = TimeSplit(),
) -> ClickData:
  """Builds the click-prediction data from a labelled log (module docstring).

  Args:
    events: the log, with a label column and times (`events.read_events`; filters with
      `apply_filters(..., positives_only=False)` keep the non-clicks).
    target: the domain whose labelled events are the impressions.
    sources: the domains whose events help (in order; () = none: the target's clicks only).
    split: how impressions are split by time.

  Returns:
    The data; users are those with at least one impression, in sorted id order.

  Raises:
    DataError: no label or time column; a target or source domain not in the log (naming the
      log's domains); a target with no click or no non-click; a source domain with no event
      before any impression; a split that leaves no training impression.
  """
  names = events.domain_names
  if events.label is None or events.ts_ms is None:
    missing = "label" if events.label is None else "time"
    raise DataError(
      f"click prediction needs a {missing} column; expected the mapping to name one",
      key=f"reader option {missing}",
    )
  for role, name in [("target", target), *(("source", s) for s in sources)]:
    if name not in names:
      raise DataError(
        f"{role} domain {name!r} is not in the log; its domains are {sorted(names)}",
        key=f"ctr.{role}",
      )
  if target in sources or len(set(sources)) != len(sources):
    raise DataError(
      f"expected distinct sources other than the target {target!r}, got {list(sources)}",
      key="ctr.sources",
    )
  t_code = names.index(target)
  is_imp = events.domain == t_code
  clicks = int(events.label[is_imp].sum())
  if clicks == 0 or clicks == int(is_imp.sum()):
    what = "no click (label 1)" if clicks == 0 else "no non-click (label 0)"
    raise DataError(
      f"target domain {target!r} has {what} among its {int(is_imp.sum()):,} impressions; "
      "expected both: a click model learns from the difference",
      key="ctr.target",
    )
  # Users with impressions, in sorted id order.
  imp_users = np.unique(events.user[is_imp])
  imp_users = np.asarray(sorted(imp_users.tolist(), key=events.user_keys.__getitem__), np.int64)
  index = np.full(len(events.user_keys), -1, np.int64)
  index[imp_users] = np.arange(imp_users.size)
  kept = events.take(np.flatnonzero(index[events.user] >= 0))
  kept = dataclasses.replace(kept, user=index[kept.user])
  users = int(imp_users.size)

  streams, item_keys, local = {}, {}, {}
  for name in (target, *sources):
    streams[name], item_keys[name], local[name] = _stream(
      kept, names.index(name), users, positives=True
    )
  imp = kept.take(np.flatnonzero(kept.domain == t_code))
  imp = imp.take(np.lexsort((np.arange(len(imp)), imp.ts_ms, imp.user)))
  t_items = local[target][imp.item].astype(np.int32)
  hist_end = {name: _history_ends(stream, imp.user, imp.ts_ms) for name, stream in streams.items()}
  split_codes = _split(imp.user, imp.ts_ms, split)
  if not (split_codes == TRAIN).any():
    raise DataError(
      f"the split {split} leaves no training impression; expected a shorter validation and test",
      key="ctr.split",
    )
  data = ClickData(
    target=target,
    sources=tuple(sources),
    user=imp.user,
    item=t_items,
    ts_ms=imp.ts_ms,
    label=imp.label,
    split=split_codes,
    streams=streams,
    hist_end=hist_end,
    user_keys=[events.user_keys[u] for u in imp_users],
    item_keys=item_keys,
  )
  for name in sources:
    if not (data.history_lengths(name) > 0).any():
      raise DataError(
        f"source domain {name!r} has no event before any impression of {target!r}; expected "
        "source events earlier than the impressions they should help",
        key="ctr.sources",
      )
  return data
