"""Named, parameterised pipelines from two raw Amazon domain files to a dataset.

  abxi      ABXI's `data/prepare_amazon.py` (DiMarzioBian/ABXI): overlapped
            users only, item and per-domain user thresholds, last 50 items.
  llm4cdsr  LLM4CDSR's `data/amazon/handle.ipynb` (liuqidong07/LLM4CDSR, same
            as tomatoboy-hub/LLMoE4MDSR@97400c4): time window, iterative
            k-core with the original's comparisons, non-overlapped users kept.

Each is `RECIPES[name].run(domain_a, domain_b, params, bad, titles_a=None,
titles_b=None) -> CDSRDataset`. The steps, and the quirks of the original code
that are reproduced on purpose, are in docs/data.md ("Raw Amazon dumps and
recipes"). Interactions are held as integer columns (ids interned once), not
Python records, so memory stays a few dozen bytes per interaction.
"""

from __future__ import annotations

import collections.abc
from collections.abc import Callable
import dataclasses
from typing import Any

import numpy as np

from orthoalign.datasets import columns
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.readers import amazon
from orthoalign.errors import DataError

PathLike = columns.PathLike

# LLM4CDSR's Cloth-Sport window (handle.ipynb: filter_time(all_data,
# t_min=1514736000, t_max=1577808000)), i.e. 2018-01-01 .. 2020-01-01 UTC+8.
LLM4CDSR_T_MIN = 1514736000
LLM4CDSR_T_MAX = 1577808000


# --- ABXI -------------------------------------------------------------------


def _run_abxi(
  paths: tuple[PathLike, PathLike],
  params: dict[str, Any],
  bad: BadLines,
  titles: tuple[PathLike | None, PathLike | None],
  name: str,
  report: dict[str, Any] | None = None,
) -> CDSRDataset:
  """ABXI `data/prepare_amazon.py`, step for step (see module docstring)."""
  k_i, k_u, max_len = params["k_i"], params["k_u"], params["max_len"]
  users, items = columns.Interner(), columns.Interner()
  # read_amazon: ratings are read and dropped, never filtered on.
  cols = columns.read_domains(paths, bad, users, items)
  cols = columns.apply_duplicates(cols, params["duplicates"], "abxi", report)
  is_a = cols.domain == 0

  # 1. ASINs present in both domains go, from both (all rows, before any
  #    user filter).
  shared = np.intersect1d(cols.item[is_a], cols.item[~is_a])
  if shared.size:
    columns.log(f"abxi: dropping {shared.size} item ids present in both domains")
  cols = cols.take(~np.isin(cols.item, shared))

  # 2. Users present in both domains (computed after step 1); concat A then
  #    B and sort by (user, ts). pandas' multi-key sort_values is stable, so
  #    same-timestamp ties keep A rows before B rows, each in file order.
  is_a = cols.domain == 0
  both = np.intersect1d(cols.user[is_a], cols.user[~is_a])
  cols = cols.take(np.isin(cols.user, both))
  user_rank = _string_rank(cols.user, users.keys)
  # Sorted on full precision (ms): 2023 events of one second keep their
  # order; whole-second ties behave as before.
  cols = cols.take(np.lexsort((cols.ts_ms, user_rank[cols.user])))
  columns.log_counts("abxi: users in both domains", cols)

  # 3. Items with >= k_i interactions, counted over the merged rows.
  counts = np.bincount(cols.item, minlength=len(items))
  cols = cols.take(counts[cols.item] >= k_i)
  columns.log_counts(f"abxi: items with >= {k_i} interactions", cols)

  # 4. Each user's last max_len rows (groupby('user').tail(max_len)).
  cols = cols.take(_rank_from_end(cols.user) < max_len)

  # 5. Users with >= k_u rows in EACH domain, counted after the truncation.
  #    value_counts() only lists present users, hence also > 0.
  is_a = cols.domain == 0
  count_a = np.bincount(cols.user[is_a], minlength=len(users))
  count_b = np.bincount(cols.user[~is_a], minlength=len(users))
  good = (count_a >= max(k_u, 1)) & (count_b >= max(k_u, 1))
  cols = cols.take(good[cols.user])
  columns.log_counts(f"abxi: last {max_len} per user, >= {k_u} per domain", cols)

  # 6. Reindex: users 0..U-1 in sorted-string order (the rows already are);
  #    A items 1..nA then B items nA+1..nA+nB, each in sorted-ASIN order.
  user_codes, user_index = np.unique(cols.user, return_inverse=True)
  user_order = np.argsort(_string_rank(user_codes, users.keys)[user_codes], kind="stable")
  user_out = np.empty_like(user_order)
  user_out[user_order] = np.arange(user_order.size)
  global_id = np.zeros(len(items), np.int64)
  item_keys = [""]
  is_a = cols.domain == 0
  for in_domain in (is_a, ~is_a):
    codes = np.unique(cols.item[in_domain])
    ordered = sorted(codes.tolist(), key=items.keys.__getitem__)
    global_id[ordered] = np.arange(len(item_keys), len(item_keys) + len(ordered))
    item_keys.extend(items.keys[c] for c in ordered)
    if in_domain is is_a:
      num_a = len(ordered)
  out = columns.Columns(
    user_out[user_index], global_id[cols.item], cols.ts, cols.domain, cols.ts_ms
  )
  user_keys = [users.keys[c] for c in user_codes[user_order]]
  return columns.build_dataset(name, out, user_keys, item_keys, num_a, *titles, bad)


def _string_rank(codes: np.ndarray, keys: list[str]) -> np.ndarray:
  """Rank of every interned code among the codes present, by string order.

  Returns:
    int64 [len(keys)]: the sorted-string rank of each present code (other
    entries 0); Python string order is pandas' order for object columns.
  """
  present = np.unique(codes)
  ordered = sorted(present.tolist(), key=keys.__getitem__)
  rank = np.zeros(len(keys), np.int64)
  rank[ordered] = np.arange(len(ordered))
  return rank


def _rank_from_end(group: np.ndarray) -> np.ndarray:
  """0 for each contiguous group's last row, 1 for the one before, ..."""
  n = group.shape[0]
  if not n:
    return np.zeros(0, np.int64)
  ends = np.flatnonzero(np.append(group[1:] != group[:-1], True))
  group_end = np.repeat(ends, np.diff(np.append(-1, ends)))
  return group_end - np.arange(n)


# --- LLM4CDSR ---------------------------------------------------------------


def _run_llm4cdsr(
  paths: tuple[PathLike, PathLike],
  params: dict[str, Any],
  bad: BadLines,
  titles: tuple[PathLike | None, PathLike | None],
  name: str,
  report: dict[str, Any] | None = None,
) -> CDSRDataset:
  """LLM4CDSR `data/amazon/handle.ipynb`, step for step."""
  user_core, item_core = params["user_core"], params["item_core"]
  t_min, t_max = params["t_min"], params["t_max"]
  rating_score = params["rating_score"]

  def keep(record: amazon.Interaction) -> bool:
    # New_Amazon(..., rating_score=0) drops `overall <= rating_score`;
    # filter_time keeps t_min < time < t_max (both bounds exclusive). Both
    # are per-row filters applied before the k-core, so doing them while
    # reading changes nothing and saves memory.
    return (
      record.rating > rating_score
      and (t_min is None or record.timestamp > t_min)
      and (t_max is None or record.timestamp < t_max)
    )

  users, items = columns.Interner(), columns.Interner()
  # Items are interned by ASIN across BOTH domains: the original counts
  # `item_count[item_id]` over the merged list, so an ASIN listed in both
  # categories pools its counts in the k-core (ids stay per domain below).
  cols = columns.read_domains(paths, bad, users, items, keep)
  cols = columns.apply_duplicates(cols, params["duplicates"], "llm4cdsr", report)
  columns.log_counts("llm4cdsr: ratings and time window", cols)

  # Iterative k-core: check_Kcore fails when some count is < core, and each
  # round then keeps rows whose counts are > core (strictly), so users with
  # exactly `user_core` rows are dropped in any round that runs at all.
  rounds = 0
  while True:
    user_count = np.bincount(cols.user, minlength=len(users))
    item_count = np.bincount(cols.item, minlength=len(items))
    if np.all(user_count[cols.user] >= user_core) and np.all(item_count[cols.item] >= item_core):
      break
    rounds += 1
    cols = cols.take((item_count[cols.item] > item_core) & (user_count[cols.user] > user_core))
  columns.log_counts(
    f"llm4cdsr: k-core (user {user_core}, item {item_core}) after {rounds} round(s)", cols
  )

  # id_map: users and per-domain items numbered in order of first
  # appearance in the row order (A file order, then B file order), then each
  # user's rows sorted by time with a stable sort.
  user_codes, first = np.unique(cols.user, return_index=True)
  user_codes = user_codes[np.argsort(first, kind="stable")]
  user_out = np.zeros(len(users), np.int64)
  user_out[user_codes] = np.arange(user_codes.size)
  global_id = np.zeros(cols.item.shape[0], np.int64)
  item_keys = [""]
  for domain in (0, 1):
    rows = np.flatnonzero(cols.domain == domain)
    codes, first, inverse = np.unique(cols.item[rows], return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    local = np.empty_like(order)
    local[order] = np.arange(1, order.size + 1)
    # Global id: A = local, B = nA + local.
    global_id[rows] = local[inverse] + len(item_keys) - 1
    item_keys.extend(items.keys[c] for c in codes[order])
    if domain == 0:
      num_a = order.size
  out = columns.Columns(user_out[cols.user], global_id, cols.ts, cols.domain, cols.ts_ms)
  out = out.take(np.lexsort((out.ts_ms, out.user)))
  user_keys = [users.keys[c] for c in user_codes]
  return columns.build_dataset(name, out, user_keys, item_keys, num_a, *titles, bad)


# --- Registry ---------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
  if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
    return None
  return _to_int(value)


def _to_int(value: Any) -> int:
  if isinstance(value, bool):
    raise TypeError("a bool")
  if isinstance(value, float):
    if not value.is_integer():
      raise ValueError("not an integer")
    return int(value)
  if isinstance(value, str):
    text = value.strip()
    try:
      return int(text)
    except ValueError:
      as_float = float(text)  # Accepts '1.5e9'.
      if not as_float.is_integer():
        raise ValueError("not an integer") from None
      return int(as_float)
  return int(value)


DUPLICATE_POLICIES = ("keep", "drop")


def _duplicate_policy(value: Any) -> str:
  text = str(value).strip().lower()
  if text not in DUPLICATE_POLICIES:
    raise ValueError(f"not one of {list(DUPLICATE_POLICIES)}")
  return text


def _to_float(value: Any) -> float:
  if isinstance(value, bool):
    raise TypeError("a bool")
  return float(value)


@dataclasses.dataclass(frozen=True)
class Param:
  """One recipe parameter: default, converter, lower bound and help."""

  default: Any
  convert: Callable[[Any], Any]
  help: str
  minimum: float | None = None


@dataclasses.dataclass(frozen=True)
class Recipe:
  """A named pipeline: `run(domain_a, domain_b, params, bad, ...)`."""

  name: str
  description: str
  params: dict[str, Param]
  _impl: Callable[..., CDSRDataset]

  @property
  def defaults(self) -> dict[str, Any]:
    return {k: p.default for k, p in self.params.items()}

  def resolve_params(self, params: collections.abc.Mapping[str, Any] | None) -> dict[str, Any]:
    """Returns the defaults overridden by `params`, converted and checked.

    Args:
      params: overrides; values may be strings (from the command line).

    Raises:
      DataError: for an unknown key (naming the valid ones) or a bad value.
    """
    resolved = self.defaults
    for key, value in (params or {}).items():
      if key not in self.params:
        raise DataError(
          f"unknown parameter for recipe {self.name!r}; valid parameters: "
          f"{', '.join(sorted(self.params))}",
          key=f"param {key}",
        )
      spec = self.params[key]
      try:
        converted = spec.convert(value)
      except (TypeError, ValueError) as e:
        raise DataError(
          f"bad value {value!r} ({e}); expected {spec.help}", key=f"param {key}"
        ) from None
      if spec.minimum is not None and converted is not None and converted < spec.minimum:
        raise DataError(
          f"value {converted!r} < {spec.minimum}; expected {spec.help}", key=f"param {key}"
        )
      resolved[key] = converted
    return resolved

  def run(
    self,
    domain_a: PathLike,
    domain_b: PathLike,
    params: collections.abc.Mapping[str, Any] | None = None,
    bad: BadLines | None = None,
    titles_a: PathLike | None = None,
    titles_b: PathLike | None = None,
    *,
    name: str | None = None,
    report: dict[str, Any] | None = None,
  ) -> CDSRDataset:
    """Runs the recipe on two raw domain files.

    Args:
      domain_a: domain-A interactions (any amazon.INTERACTION_FORMATS).
      domain_b: domain-B interactions.
      params: overrides of `defaults` (unknown keys are a DataError).
      bad: bad-line policy; default BadLines("error").
      titles_a: optional domain-A metadata file (amazon.META_FORMATS).
      titles_b: optional domain-B metadata file.
      name: dataset name; default the recipe name.
      report: if given, filled with {'duplicates': {'policy', 'found',
        'dropped'}}: exact duplicate (user, item, timestamp) rows read.

    Returns:
      The merged dataset with timestamps, user_ids, item_keys and (with
      metadata) item_titles.

    Raises:
      DataError: bad input, bad parameters, or nothing left after filters.
    """
    resolved = self.resolve_params(params)
    duplicates: dict[str, Any] = {}
    ds = self._impl(
      (domain_a, domain_b),
      resolved,
      bad or BadLines(),
      (titles_a, titles_b),
      name or self.name,
      duplicates,
    )
    if report is not None:
      report["duplicates"] = duplicates
    return ds

  __call__ = run


_NON_NEGATIVE_INT = "an integer >= 0"
_DUPLICATES = Param(
  "keep",
  _duplicate_policy,
  "keep or drop: exact duplicate (user, item, timestamp) rows; keep (as the "
  "original, with a warning) or drop all but the first",
)

RECIPES: dict[str, Recipe] = {
  "abxi": Recipe(
    name="abxi",
    description="ABXI data/prepare_amazon.py: overlapped users only",
    params={
      "k_i": Param(
        10,
        _to_int,
        "an integer >= 0: keep items with >= k_i interactions (merged, before truncation)",
        0,
      ),
      "k_u": Param(
        5, _to_int, "an integer >= 0: keep users with >= k_u interactions in each domain", 0
      ),
      "max_len": Param(
        50, _to_int, "an integer >= 1: keep each user's last max_len interactions", 1
      ),
      "duplicates": _DUPLICATES,
    },
    _impl=_run_abxi,
  ),
  "llm4cdsr": Recipe(
    name="llm4cdsr",
    description="LLM4CDSR data/amazon/handle.ipynb: time window, k-core, non-overlapped users kept",
    params={
      "t_min": Param(LLM4CDSR_T_MIN, _int_or_none, "unix seconds or none: keep ts > t_min"),
      "t_max": Param(LLM4CDSR_T_MAX, _int_or_none, "unix seconds or none: keep ts < t_max"),
      "user_core": Param(5, _to_int, _NON_NEGATIVE_INT, 0),
      "item_core": Param(3, _to_int, _NON_NEGATIVE_INT, 0),
      "rating_score": Param(0.0, _to_float, "a number: drop ratings <= rating_score"),
      "duplicates": _DUPLICATES,
    },
    _impl=_run_llm4cdsr,
  ),
}


def get_recipe(name: str) -> Recipe:
  """Returns RECIPES[name]; DataError naming the valid recipes otherwise."""
  if name not in RECIPES:
    raise DataError(
      f"unknown recipe {name!r}; valid recipes: {', '.join(sorted(RECIPES))}", key="recipe"
    )
  return RECIPES[name]
