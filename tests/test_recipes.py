"""Recipes abxi / llm4cdsr and the prepare CLI, on small raw files."""

import collections
import gzip
import json
import os
import pathlib
import random
import subprocess
import sys

import numpy as np
import pytest

from orthoalign.datasets import prepare
from orthoalign.datasets import recipes
from orthoalign.datasets.badlines import BadLines
from orthoalign.errors import DataError

Record = tuple[str, str, float, int]  # user, item, rating, unix seconds.


# --- Raw files --------------------------------------------------------------


def write_raw(path: pathlib.Path, records: list[Record], fmt: str, millis: int = 500) -> str:
  """Writes records in a raw format; fmt 'reviews.gz' etc. compresses.

  2023 timestamps are in ms: `millis` is added to every second.
  """
  base, _, gz = fmt.partition(".")
  lines = []
  for user, item, rating, ts in records:
    if base == "csv":
      lines.append(f"{user},{item},{rating},{ts}")
    elif base == "reviews":
      lines.append(
        json.dumps({"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": ts})
      )
    elif base == "reviews2023":
      lines.append(
        json.dumps(
          {"user_id": user, "parent_asin": item, "rating": rating, "timestamp": ts * 1000 + millis}
        )
      )
    else:
      raise ValueError(fmt)
  data = ("\n".join(lines) + "\n").encode()
  path.write_bytes(gzip.compress(data) if gz else data)
  return str(path)


def write_meta(path: pathlib.Path, titles: dict[str, str], fmt: str) -> str:
  lines = []
  for item, title in titles.items():
    if fmt == "meta2014":
      lines.append(repr({"asin": item, "title": title, "price": 1.0}))
    elif fmt == "meta2018":
      lines.append(json.dumps({"asin": item, "title": title}))
    else:
      lines.append(json.dumps({"parent_asin": item, "title": title}))
  path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
  return str(path)


def random_domains(
  seed: int,
  num_users: int = 70,
  num_items: int = 45,
  per_domain: int = 1400,
  t0: int = 1000,
  ratings=(5.0,),
) -> tuple[list[Record], list[Record]]:
  """Two domains with skewed users/items, shared ASINs and timestamp ties."""
  rng = random.Random(seed)
  user_w = [1.0 / (1 + u) ** 0.8 for u in range(num_users)]
  item_w = [1.0 / (1 + i) ** 1.1 for i in range(num_items)]
  domains = []
  for prefix in "AB":
    # Ids whose order as strings differs from their creation order.
    items = [f"{prefix}{(i * 37) % 101:03d}" for i in range(num_items)]
    items[-3:] = ["S1", "S2", "S3"]  # ASINs present in both domains.
    users = rng.choices(range(num_users), user_w, k=per_domain)
    picked = rng.choices(items, item_w, k=per_domain)
    domains.append(
      [
        (
          f"u{(u * 7) % num_users}",
          it,
          rng.choice(ratings),
          t0 + rng.randrange(60),
        )  # Few distinct times: many ties.
        for u, it in zip(users, picked)
      ]
    )
  return domains[0], domains[1]


def add_single_domain_users(rec_a: list[Record], rec_b: list[Record]) -> None:
  """Appends two A-only and one B-only user active on popular items."""
  for rows, prefix in ((rec_a, "onlyA"), (rec_a, "onlyA"), (rec_b, "onlyB")):
    user = f"{prefix}{len(rows)}"
    popular = [r[1] for r in rows[:40]]
    rows.extend((user, popular[n % len(popular)], 5.0, 1020 + n) for n in range(12))


# --- Oracles: the original code's steps, written out independently -----------


def abxi_oracle_python(rec_a, rec_b, k_i=10, k_u=5, max_len=50):
  """ABXI data/prepare_amazon.py in plain Python (stable sorts)."""
  shared = {r[1] for r in rec_a} & {r[1] for r in rec_b}
  rows_a = [(u, i, t, 0) for u, i, _, t in rec_a if i not in shared]
  rows_b = [(u, i, t, 1) for u, i, _, t in rec_b if i not in shared]
  both = {r[0] for r in rows_a} & {r[0] for r in rows_b}
  rows = sorted((r for r in rows_a + rows_b if r[0] in both), key=lambda r: (r[0], r[2]))
  counts = collections.Counter(r[1] for r in rows)
  by_user = collections.defaultdict(list)
  for r in rows:
    if counts[r[1]] >= k_i:
      by_user[r[0]].append(r)
  by_user = {u: rs[-max_len:] for u, rs in by_user.items()}
  users = sorted(
    u
    for u, rs in by_user.items()
    if sum(r[3] == 0 for r in rs) >= max(k_u, 1) and sum(r[3] == 1 for r in rs) >= max(k_u, 1)
  )
  items = tuple(sorted({r[1] for u in users for r in by_user[u] if r[3] == d}) for d in (0, 1))
  gid = {key: n + 1 for n, key in enumerate(items[0] + items[1])}
  seqs = [[(gid[r[1]], r[2]) for r in by_user[u]] for u in users]
  return users, items, seqs


def abxi_oracle_pandas(rec_a, rec_b, k_i=10, k_u=5, max_len=50):
  """ABXI data/prepare_amazon.py with pandas, as the original runs it."""
  pd = pytest.importorskip("pandas")
  cols = ["user", "item", "rating", "ts"]
  df_a = pd.DataFrame(rec_a, columns=cols).drop(columns=["rating"])
  df_b = pd.DataFrame(rec_b, columns=cols).drop(columns=["rating"])
  shared = set(df_a["item"]) & set(df_b["item"])
  df_a, df_b = df_a[~df_a["item"].isin(shared)], df_b[~df_b["item"].isin(shared)]
  both = set(df_a["user"]) & set(df_b["user"])
  df_a = df_a[df_a["user"].isin(both)].assign(domain=0)
  df_b = df_b[df_b["user"].isin(both)].assign(domain=1)
  df = pd.concat([df_a, df_b]).sort_values(["user", "ts"])
  counts = df["item"].value_counts()
  df = df[df["item"].isin(counts[counts >= k_i].index)]
  df = df.groupby("user").tail(max_len)
  count_a = df[df["domain"] == 0]["user"].value_counts()
  count_b = df[df["domain"] == 1]["user"].value_counts()
  users = sorted(set(count_a[count_a >= k_u].index) & set(count_b[count_b >= k_u].index))
  df = df[df["user"].isin(users)]
  items = (sorted(set(df[df["domain"] == 0]["item"])), sorted(set(df[df["domain"] == 1]["item"])))
  gid = {key: n + 1 for n, key in enumerate(items[0] + items[1])}
  seqs = [
    [(gid[i], t) for i, t in zip(g["item"], g["ts"])]
    for _, g in ((u, df[df["user"] == u]) for u in users)
  ]
  return users, items, seqs


def llm4cdsr_oracle(
  rec_a, rec_b, t_min=None, t_max=None, user_core=5, item_core=3, rating_score=0.0
):
  """LLM4CDSR data/amazon/handle.ipynb in plain Python, as the notebook."""
  data = [(u, i, t, 0) for u, i, r, t in rec_a if r > rating_score] + [
    (u, i, t, 1) for u, i, r, t in rec_b if r > rating_score
  ]
  data = [x for x in data if (t_min is None or x[2] > t_min) and (t_max is None or x[2] < t_max)]

  def counts(rows):
    return (collections.Counter(x[0] for x in rows), collections.Counter(x[1] for x in rows))

  user_count, item_count = counts(data)
  while any(n < user_core for n in user_count.values()) or any(
    n < item_core for n in item_count.values()
  ):
    data = [x for x in data if item_count[x[1]] > item_core and user_count[x[0]] > user_core]
    user_count, item_count = counts(data)
  local = ({}, {})
  users = {}
  for user, item, ts, d in data:
    local[d].setdefault(item, len(local[d]) + 1)
    users.setdefault(user, []).append((local[d][item], d, ts))
  num_a = len(local[0])
  seqs = [
    [(i if d == 0 else num_a + i, t) for i, d, t in sorted(rows, key=lambda r: r[2])]
    for rows in users.values()
  ]
  keys = (sorted(local[0], key=local[0].get), sorted(local[1], key=local[1].get))
  return list(users), keys, seqs


def assert_matches(ds, users, items, seqs):
  assert ds.user_ids.tolist() == users
  assert ds.num_items_a == len(items[0]) and ds.num_items_b == len(items[1])
  assert ds.item_keys.tolist() == [""] + items[0] + items[1]
  got = [
    list(zip(ds.sequence(u).tolist(), ds.timestamps[ds.offsets[u] : ds.offsets[u + 1]].tolist()))
    for u in range(ds.num_users)
  ]
  assert got == seqs


def user_rows(ds, u):
  lo, hi = ds.offsets[u], ds.offsets[u + 1]
  return ds.items[lo:hi], ds.domains[lo:hi], ds.timestamps[lo:hi]


# --- abxi -------------------------------------------------------------------


@pytest.mark.parametrize("oracle", [abxi_oracle_python, abxi_oracle_pandas])
@pytest.mark.parametrize(
  "seed,params",
  [(0, {}), (1, {"max_len": 12}), (2, {"k_i": 25, "k_u": 3, "max_len": 9}), (3, {"k_u": 0})],
)
def test_abxi_matches_the_original_steps(tmp_path, seed, params, oracle):
  rec_a, rec_b = random_domains(seed)
  a = write_raw(tmp_path / "a.csv", rec_a, "csv")
  b = write_raw(tmp_path / "b.csv", rec_b, "csv")
  ds = recipes.RECIPES["abxi"].run(a, b, params, BadLines())
  users, items, seqs = oracle(rec_a, rec_b, **params)
  assert 5 < len(users) < 70  # Filters were active.
  assert_matches(ds, users, items, seqs)


def test_abxi_invariants(tmp_path):
  rec_a, rec_b = random_domains(4)
  k_i, k_u, max_len = 10, 5, 15
  ds = recipes.RECIPES["abxi"](
    write_raw(tmp_path / "a.json.gz", rec_a, "reviews.gz"),
    write_raw(tmp_path / "b.jsonl", rec_b, "reviews2023"),
    {"k_i": str(k_i), "k_u": k_u, "max_len": max_len},
    BadLines(),
  )
  keys = ds.item_keys.tolist()
  key_a, key_b = set(keys[1 : ds.num_items_a + 1]), set(keys[ds.num_items_a + 1 :])
  # No ASIN present in both raw domains survives, and A ids come before B.
  raw_shared = {r[1] for r in rec_a} & {r[1] for r in rec_b}
  assert raw_shared and not (key_a | key_b) & raw_shared
  assert key_a <= {r[1] for r in rec_a} and key_b <= {r[1] for r in rec_b}
  assert keys[1 : ds.num_items_a + 1] == sorted(key_a)
  assert keys[ds.num_items_a + 1 :] == sorted(key_b)
  # Every kept item had >= k_i interactions among the overlapped users'
  # rows, counted before truncation.
  raw_a = [r for r in rec_a if r[1] not in raw_shared]
  raw_b = [r for r in rec_b if r[1] not in raw_shared]
  both = {r[0] for r in raw_a} & {r[0] for r in raw_b}
  before = collections.Counter(r[1] for r in raw_a + raw_b if r[0] in both)
  assert all(before[k] >= k_i for k in key_a | key_b)
  assert ds.user_ids.tolist() == sorted(ds.user_ids.tolist())
  assert ds.lengths.max() <= max_len
  for u in range(ds.num_users):
    _, domains, ts = user_rows(ds, u)
    assert np.all(np.diff(ts) >= 0)
    assert (domains == 0).sum() >= k_u and (domains == 1).sum() >= k_u
    # The kept rows are the user's LAST ones: nothing dropped is later.
    name = ds.user_ids[u]
    kept_times = ts.min()
    later = [r for r in raw_a + raw_b if r[0] == name and r[3] > kept_times and before[r[1]] >= k_i]
    assert len(later) <= len(ts)
  summary = ds.summary()
  assert summary["a_only_users"] == summary["b_only_users"] == 0


def test_abxi_order_of_operations_hand_worked(tmp_path):
  # k_i=2, k_u=1, max_len=3.
  rec_a = [
    ("u1", "a1", 5, 1),
    ("u1", "a2", 5, 2),
    ("u1", "a1", 5, 9),
    ("u2", "a1", 5, 1),
    ("u2", "a2", 5, 3),
    ("u2", "a3", 5, 4),
    ("u3", "a1", 5, 1),
    ("u4", "a2", 5, 2),
  ]
  rec_b = [
    ("u1", "b1", 5, 9),
    ("u1", "b1", 5, 10),
    ("u2", "b1", 5, 2),
    # u3's only B item is shared with A: dropped in step 1, so u3 is not
    # an overlapped user (step 2 runs after step 1).
    ("u3", "s", 5, 5),
    ("u9", "s", 5, 1),
    ("u9", "a9", 5, 1),
    ("u4", "b2", 5, 1),
  ]
  ds = recipes.RECIPES["abxi"].run(
    write_raw(tmp_path / "a.csv", rec_a, "csv"),
    write_raw(tmp_path / "b.csv", rec_b, "csv"),
    {"k_i": 2, "k_u": 1, "max_len": 3},
    BadLines(),
  )
  # Overlapped: u1, u2, u4. Item counts over their rows: a1 3, a2 3, a3 1,
  # b1 3, b2 1 -> a3 and b2 go (u4 then has no B row and goes in step 5).
  # u1 sorted: a1@1 a2@2 a1@9 b1@9 b1@10 -> last 3: a1@9 b1@9 b1@10 (the
  # same-time tie keeps A before B); u2: a1@1 b1@2 a2@3 -> all 3.
  assert ds.user_ids.tolist() == ["u1", "u2"]
  assert ds.item_keys.tolist() == ["", "a1", "a2", "b1"]
  assert ds.sequence(0).tolist() == [1, 3, 3]
  assert ds.timestamps[:3].tolist() == [9, 9, 10]
  assert ds.sequence(1).tolist() == [1, 3, 2]
  # k_u is counted AFTER truncation: with k_u=2, u1 keeps only one A row in
  # its last 3 and is dropped although it has 3 A rows before truncation.
  with pytest.raises(DataError, match="no domain-A items"):
    recipes.RECIPES["abxi"].run(
      tmp_path / "a.csv", tmp_path / "b.csv", {"k_i": 2, "k_u": 2, "max_len": 3}, BadLines()
    )
  ds = recipes.RECIPES["abxi"].run(
    tmp_path / "a.csv", tmp_path / "b.csv", {"k_i": 2, "k_u": 2, "max_len": 5}, BadLines()
  )
  assert ds.user_ids.tolist() == ["u1"]


@pytest.mark.parametrize(
  "fmt_a,fmt_b",
  [
    ("csv", "csv.gz"),
    ("reviews", "reviews.gz"),
    ("reviews2023", "reviews2023.gz"),
    ("reviews2023.gz", "csv"),
  ],
)
def test_every_format_gives_the_same_dataset(tmp_path, fmt_a, fmt_b):
  rec_a, rec_b = random_domains(5)
  # Recipes sort on full precision: a 2023 event at t s + 500 ms comes after a
  # whole-second event at t s, so a pair mixing precisions (2023 + csv) is
  # written on whole seconds to compare with the all-csv result.
  millis = 0 if fmt_a.split(".")[0] != fmt_b.split(".")[0] else 500
  ref = None
  for recipe in ("abxi", "llm4cdsr"):
    ds = recipes.RECIPES[recipe].run(
      write_raw(tmp_path / "a", rec_a, fmt_a, millis),
      write_raw(tmp_path / "b", rec_b, fmt_b, millis),
      {} if recipe == "abxi" else {"t_min": "none", "t_max": "none"},
      BadLines(),
    )
    expected = recipes.RECIPES[recipe].run(
      write_raw(tmp_path / "a0.csv", rec_a, "csv"),
      write_raw(tmp_path / "b0.csv", rec_b, "csv"),
      {} if recipe == "abxi" else {"t_min": None, "t_max": None},
      BadLines(),
    )
    for field in ("offsets", "items", "timestamps", "user_ids", "item_keys"):
      np.testing.assert_array_equal(getattr(ds, field), getattr(expected, field))
    ref = ds
  assert ref is not None


def test_titles_go_to_item_titles(tmp_path):
  rec_a, rec_b = random_domains(6)
  a = write_raw(tmp_path / "a.csv", rec_a, "csv")
  b = write_raw(tmp_path / "b.csv", rec_b, "csv")
  titles_a = {key: f"title of {key}" for _, key, _, _ in rec_a}
  del titles_a[rec_a[0][1]]
  titles_b = {key: f"B {key}" for _, key, _, _ in rec_b}
  ds = recipes.RECIPES["abxi"].run(
    a,
    b,
    {},
    BadLines(),
    titles_a=write_meta(tmp_path / "ma.json.gz", titles_a, "meta2014"),
    titles_b=write_meta(tmp_path / "mb.jsonl.gz", titles_b, "meta2023"),
  )
  for gid in range(1, ds.num_items + 1):
    key = ds.item_keys[gid]
    expected = (titles_a if gid <= ds.num_items_a else titles_b).get(key, "")
    assert ds.item_titles[gid] == expected
  assert ds.item_titles[0] == ""
  assert (ds.item_titles == "").sum() <= 2


# --- llm4cdsr ---------------------------------------------------------------


@pytest.mark.parametrize(
  "seed,params",
  [
    (0, {"t_min": None, "t_max": None}),
    (1, {"t_min": 1010, "t_max": 1050}),
    (2, {"t_min": 1005, "t_max": None, "user_core": 8, "item_core": 5}),
    (3, {"t_min": None, "t_max": None, "rating_score": 2}),
  ],
)
def test_llm4cdsr_matches_the_notebook(tmp_path, seed, params):
  rec_a, rec_b = random_domains(
    seed, num_users=90, per_domain=900, ratings=(0.0, -1.0, 1.0, 3.0, 5.0)
  )
  add_single_domain_users(rec_a, rec_b)
  ds = recipes.RECIPES["llm4cdsr"].run(
    write_raw(tmp_path / "a.json", rec_a, "reviews"),
    write_raw(tmp_path / "b.json", rec_b, "reviews"),
    params,
    BadLines(),
  )
  users, keys, seqs = llm4cdsr_oracle(rec_a, rec_b, **params)
  assert_matches(ds, users, keys, seqs)
  summary = ds.summary()
  # Non-overlapped users are kept.
  assert summary["a_only_users"] + summary["b_only_users"] > 0


def test_llm4cdsr_invariants(tmp_path):
  rec_a, rec_b = random_domains(7, num_users=90, per_domain=900, ratings=(0.0, 5.0))
  params = {"t_min": 1003, "t_max": 1055, "user_core": 5, "item_core": 3}
  ds = recipes.RECIPES["llm4cdsr"].run(
    write_raw(tmp_path / "a.csv", rec_a, "csv"),
    write_raw(tmp_path / "b.csv", rec_b, "csv"),
    params,
    BadLines(),
  )
  assert np.all(ds.lengths >= 5)  # k-core: every user >= user_core ...
  # ... and every ASIN >= item_core (counted across both domains).
  per_key = collections.Counter(ds.item_keys[ds.items].tolist())
  assert min(per_key.values()) >= 3
  assert ds.timestamps.min() > 1003 and ds.timestamps.max() < 1055
  for u in range(ds.num_users):
    assert np.all(np.diff(user_rows(ds, u)[2]) >= 0)
  # No rating <= 0 survives: every kept (user, item, ts) has a positive one.
  positive = {(u, i, t) for u, i, r, t in rec_a + rec_b if r > 0}
  for u in range(ds.num_users):
    for gid, ts in zip(ds.sequence(u), user_rows(ds, u)[2]):
      assert (ds.user_ids[u], ds.item_keys[gid], ts) in positive


def test_llm4cdsr_kcore_quirks_hand_worked(tmp_path):
  def run(rec_a, rec_b, **params):
    return recipes.RECIPES["llm4cdsr"].run(
      write_raw(tmp_path / "a.csv", rec_a, "csv"),
      write_raw(tmp_path / "b.csv", rec_b, "csv"),
      {"t_min": None, "t_max": None, **params},
      BadLines(),
    )

  # Already a (2, 1)-core: no round runs, users with exactly 2 rows stay.
  rec_a = [("u1", "x", 5, 3), ("u1", "y", 5, 1), ("u2", "x", 5, 2)]
  rec_b = [("u2", "z", 5, 1), ("u3", "z", 5, 5), ("u3", "w", 5, 4)]
  ds = run(rec_a, rec_b, user_core=2, item_core=1)
  assert ds.user_ids.tolist() == ["u1", "u2", "u3"]  # First appearance.
  # Local ids by first appearance in FILE order (not time): x=1, y=2;
  # z=1, w=2 -> global z=3, w=4. Each sequence then sorted by time.
  assert ds.item_keys.tolist() == ["", "x", "y", "z", "w"]
  assert ds.sequence(0).tolist() == [2, 1]
  assert ds.sequence(1).tolist() == [3, 1]  # u2: z@1 (B) before x@2 (A).
  assert ds.sequence(2).tolist() == [4, 3]
  # One user below the core makes a round run, and that round keeps only
  # counts > core: u1..u3, with exactly user_core = 2 rows, go too.
  rec_a += [("u4", "x", 5, 9), ("u5", "x", 5, 1), ("u5", "y", 5, 2), ("u5", "q", 5, 6)]
  rec_b += [("u5", "z", 5, 3), ("u5", "q", 5, 7)]
  ds = run(rec_a, rec_b, user_core=2, item_core=1)
  assert ds.user_ids.tolist() == ["u5"]
  # ASIN 'q' has one row per domain; the k-core pools them (2 > 1) so it
  # survives, with one local id per domain: A x=1 y=2 q=3, B z=4 q=5.
  assert ds.item_keys.tolist() == ["", "x", "y", "q", "z", "q"]
  assert ds.sequence(0).tolist() == [1, 2, 4, 3, 5]
  assert ds.timestamps.tolist() == [1, 2, 3, 6, 7]


def test_llm4cdsr_window_bounds_are_exclusive(tmp_path):
  rec_a = [(f"u{n}", "x", 5.0, t) for n in range(6) for t in (10, 11, 12)]
  rec_b = [(f"u{n}", "y", 5.0, t) for n in range(6) for t in (10, 11, 12)]
  ds = recipes.RECIPES["llm4cdsr"].run(
    write_raw(tmp_path / "a.csv", rec_a, "csv"),
    write_raw(tmp_path / "b.csv", rec_b, "csv"),
    {"t_min": 10, "t_max": 12, "user_core": 2, "item_core": 1},
    BadLines(),
  )
  assert set(ds.timestamps.tolist()) == {11}
  assert ds.num_users == 6


# --- Parameters -------------------------------------------------------------


def test_params_are_checked():
  abxi = recipes.RECIPES["abxi"]
  assert abxi.defaults == {"k_i": 10, "k_u": 5, "max_len": 50, "duplicates": "keep"}
  assert abxi.resolve_params({"max_len": "20"})["max_len"] == 20
  with pytest.raises(DataError, match="valid parameters: duplicates, k_i, k_u, max_len"):
    abxi.resolve_params({"len_max": 20})
  with pytest.raises(DataError, match="expected an integer >= 1"):
    abxi.resolve_params({"max_len": "many"})
  with pytest.raises(DataError, match="< 1"):
    abxi.resolve_params({"max_len": 0})
  llm = recipes.RECIPES["llm4cdsr"]
  assert llm.defaults["t_min"] == 1514736000
  assert llm.defaults["t_max"] == 1577808000
  assert llm.resolve_params({"t_min": "1.5e9", "t_max": "none"})["t_min"] == 1500000000
  with pytest.raises(DataError, match="valid recipes: abxi, llm4cdsr"):
    recipes.get_recipe("sasrec")


# --- CLI --------------------------------------------------------------------


def test_cli_end_to_end(tmp_path, capsys):
  store = pytest.importorskip("orthoalign.datasets.store")
  rec_a, rec_b = random_domains(8)
  a = write_raw(tmp_path / "a.csv", rec_a, "csv")
  b = write_raw(tmp_path / "b.json.gz", rec_b, "reviews.gz")
  meta_a = write_meta(tmp_path / "ma.json.gz", {r[1]: r[1].lower() for r in rec_a}, "meta2018")
  out = tmp_path / "store"
  assert (
    prepare.main(
      [
        "--recipe=abxi",
        f"--domain-a={a}",
        f"--domain-b={b}",
        f"--out={out}",
        f"--meta-a={meta_a}",
        "--param",
        "max_len=20",
      ]
    )
    == 0
  )
  captured = capsys.readouterr()
  assert json.loads(captured.out)["users"] > 0
  ds, manifest = store.load_dataset(out)
  expected = recipes.RECIPES["abxi"].run(a, b, {"max_len": 20}, BadLines())
  np.testing.assert_array_equal(ds.items, expected.items)
  np.testing.assert_array_equal(ds.item_keys, expected.item_keys)
  assert ds.item_titles[1] == ds.item_keys[1].lower()
  assert manifest["recipe"] == "abxi"
  assert manifest["params"] == {"k_i": 10, "k_u": 5, "max_len": 20, "duplicates": "keep"}
  assert [s["path"] for s in manifest["sources"]] == [os.path.abspath(p) for p in (a, b, meta_a)]
  assert manifest["bad_lines"]["skipped"] == 0


def test_cli_bad_lines(tmp_path, capsys):
  pytest.importorskip("orthoalign.datasets.store")
  rec_a, rec_b = random_domains(9)
  a = tmp_path / "a.csv"
  write_raw(a, rec_a, "csv")
  a.write_text(a.read_text() + "u1,a1,five,100\nu2,a2\n")
  b = write_raw(tmp_path / "b.csv", rec_b, "csv")
  argv = [
    "--recipe",
    "llm4cdsr",
    "--domain-a",
    str(a),
    "--domain-b",
    b,
    "--out",
    str(tmp_path / "out"),
    "--param",
    "t_min=none",
    "--param",
    "t_max=none",
  ]
  assert prepare.main(argv) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert err[-1] == (
    f"error: {a}:{len(rec_a) + 1}: rating 'five' is not a number; expected a numeric rating"
  )
  assert prepare.main(argv + ["--on-bad-line=skip"]) == 0
  assert "2 bad line(s)" in capsys.readouterr().err
  manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
  assert manifest["bad_lines"]["skipped"] == 2
  assert manifest["bad_lines"]["per_file"] == {str(a): 2}


def test_cli_errors_are_one_line_without_traceback(tmp_path):
  a = write_raw(tmp_path / "a.csv", [("u", "i", 5.0, 1)], "csv")
  for extra, message in [
    (["--param", "k=1"], "valid parameters: duplicates, k_i, k_u, max_len"),
    (["--param", "k_i"], "expected key=value"),
    ([], "no domain-A items"),
  ]:
    proc = subprocess.run(
      [
        sys.executable,
        "-m",
        "orthoalign.datasets.prepare",
        "--recipe=abxi",
        f"--domain-a={a}",
        f"--domain-b={a}",
        f"--out={tmp_path / 'o'}",
        *extra,
      ],
      capture_output=True,
      text=True,
      timeout=120,
      check=False,
    )
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last
    assert "Traceback" not in proc.stderr
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "orthoalign.datasets.prepare",
      "--recipe=abxi",
      f"--domain-a={tmp_path / 'missing.csv'}",
      f"--domain-b={a}",
      f"--out={tmp_path / 'o'}",
    ],
    capture_output=True,
    text=True,
    timeout=120,
    check=False,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip() == (
    f"error: {tmp_path / 'missing.csv'}: cannot open file: No such file or directory"
  )
