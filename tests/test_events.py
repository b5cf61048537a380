"""Events tables (CSV/TSV, JSON Lines, Parquet; a file or a folder of parts), their filters, and
RecBole's atomic files in and out, on hand-made files.
"""

import gzip
import json
import os

import numpy as np
import pytest

from orthoalign.datasets import events as events_lib
from orthoalign.datasets import load
from orthoalign.datasets import prepare
from orthoalign.datasets import store
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import events as events_format
from orthoalign.datasets.readers import recbole
from orthoalign.errors import DataError

COLUMNS = ("uid", "ad", "ts", "app", "clicked", "dwell")
# (user, item, time, domain, label, value): u1..u4 in books and movies, u5 in music only.
ROWS = [
  ("u2", "m1", 105, "movies", 1, 4.0),
  ("u1", "b1", 100, "books", 1, 3.5),
  ("u1", "m1", 101, "movies", 1, ""),
  ("u2", "b1", 100, "books", 0, 2.0),
  ("u1", "b2", 103, "books", 1, 1.0),
  ("u3", "b2", 99, "books", 1, 0.0),
  ("u3", "m2", 99, "movies", 1, 7.0),
  ("u3", "b1", 99, "books", 1, 1.0),
  ("u4", "b1", 120, "books", 1, 1.0),
  ("u2", "m2", 107, "movies", 1, 2.0),
  ("u5", "x1", 100, "music", 1, 1.0),
  ("u1", "b2", 103, "books", 1, 1.0),  # an exact duplicate of u1's b2
]
MAPPING = dict(user="uid", item="ad", time="ts", domain="app", label="clicked", value="dwell")


def write_table(path, rows=ROWS, columns=COLUMNS, fmt=None):
  """Writes rows as CSV/TSV (.gz allowed), JSON Lines or Parquet, by the file's suffix."""
  path = str(path)
  fmt = fmt or path.removesuffix(".gz").rsplit(".", 1)[-1]
  if fmt == "parquet":
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    if "dwell" in data:
      data["dwell"] = [None if v == "" else float(v) for v in data["dwell"]]
    pq.write_table(pa.table(data), path, row_group_size=4)
    return path
  if fmt == "jsonl":
    text = "".join(json.dumps(dict(zip(columns, r))) + "\n" for r in rows)
  else:
    sep = "\t" if fmt == "tsv" else ","
    text = "".join(sep.join(map(str, r)) + "\n" for r in [columns, *rows])
  if path.endswith(".gz"):
    with gzip.open(path, "wt", encoding="utf-8") as f:
      f.write(text)
  else:
    with open(path, "w", encoding="utf-8") as f:
      f.write(text)
  return path


def read_ds(path, **options):
  return events_format.read(str(path), BadLines(), **{**MAPPING, **options})


def interactions(ds, names=None):
  """Every interaction as (user id, domain, item id, time), in sequence order."""
  names = names or {"A": "A", "B": "B"}
  out = []
  for u in range(ds.num_users):
    for i in range(ds.offsets[u], ds.offsets[u + 1]):
      dom = ds.domain_names[ds.domains[i]]
      out.append((ds.user_ids[u], names[dom], ds.item_keys[ds.items[i]], int(ds.timestamps[i])))
  return out


def test_a_csv_log_becomes_two_domains_in_time_order(tmp_path):
  ds = read_ds(write_table(tmp_path / "log.csv"), domains=("books", "movies"))
  # label-0 and music rows are not interactions; the duplicate is kept (duplicates=keep).
  assert interactions(ds, {"A": "books", "B": "movies"}) == [
    ("u1", "books", "b1", 100),
    ("u1", "movies", "m1", 101),
    ("u1", "books", "b2", 103),
    ("u1", "books", "b2", 103),
    ("u2", "movies", "m1", 105),
    ("u2", "movies", "m2", 107),
    ("u3", "books", "b2", 99),  # same time: read order (ties="file")
    ("u3", "movies", "m2", 99),
    ("u3", "books", "b1", 99),
    ("u4", "books", "b1", 120),
  ]
  assert ds.domain_names == ("A", "B")
  assert list(ds.item_keys) == ["", "b1", "b2", "m1", "m2"]  # A's items, then B's, by id
  # ties="domain": the same-time events go domain by domain, each in read order.
  ds = read_ds(write_table(tmp_path / "log.csv"), domains=("books", "movies"), ties="domain")
  assert [x[2] for x in interactions(ds) if x[0] == "u3"] == ["b2", "b1", "m2"]


@pytest.mark.parametrize(
  "name", ["log.tsv", "log.csv.gz", "log.jsonl", "log.jsonl.gz", "log.parquet"]
)
def test_every_table_format_reads_the_same_events(tmp_path, name):
  expected = interactions(read_ds(write_table(tmp_path / "ref.csv"), domains=("books", "movies")))
  got = read_ds(write_table(tmp_path / name), domains=("books", "movies"))
  assert interactions(got) == expected


def test_a_folder_of_parts_reads_as_one_file(tmp_path):
  one = read_ds(write_table(tmp_path / "log.csv"), domains=("books", "movies"))
  parts = tmp_path / "parts"
  parts.mkdir()
  write_table(parts / "part-0.csv", ROWS[:5])
  write_table(parts / "part-1.jsonl", ROWS[5:9])
  write_table(parts / "part-2.parquet", ROWS[9:])
  (parts / "_SUCCESS").write_text("")
  assert interactions(read_ds(parts, domains=("books", "movies"))) == interactions(one)


def test_one_file_per_domain_names_the_domains(tmp_path):
  folder = tmp_path / "domains"
  folder.mkdir()
  cols = COLUMNS[:3]
  for dom in ("books", "movies"):
    write_table(folder / f"{dom}.csv", [r[:3] for r in ROWS if r[3] == dom and r[4]], cols)
  ds = events_format.read(str(folder), BadLines(), user="uid", item="ad", time="ts", domain="")
  # Same-time events come file by file, as ties="domain" orders them in one file.
  expected = read_ds(write_table(tmp_path / "log.csv"), domains=("books", "movies"), ties="domain")
  assert interactions(ds) == interactions(expected)


def test_filters_in_order_and_recorded(tmp_path):
  path = write_table(tmp_path / "log.csv")
  ev = events_lib.read_events(
    [path], events_lib.ColumnMap(**MAPPING), BadLines(), domains=("books", "movies")
  )
  kept, passes = events_lib.apply_filters(
    ev, events_lib.Filters(duplicates="drop", overlapped_only=True, user_core=2, item_core=1)
  )
  steps = [p["step"] for p in passes]
  assert steps == [
    "read",
    "positive events (label 1)",
    "exact duplicates dropped",
    "users in every domain",
    "k-core (user 2, item 1)",
  ]
  # u2 keeps movies only once its label-0 book goes, u4 has books only: neither is overlapped.
  assert [p["events"] for p in passes] == [11, 10, 9, 6, 6]
  assert passes[2]["found"] == 1
  assert passes[-1]["rounds"] == 0
  ds = events_lib.to_dataset(kept, "x")
  assert list(ds.user_ids) == ["u1", "u3"]
  # The k-core is iterative: item_core=3 drops m1, m2 (2 events each), then u2 (none left)...
  kept, passes = events_lib.apply_filters(ev, events_lib.Filters(user_core=2, item_core=3))
  assert passes[-1]["rounds"] >= 1
  assert np.all(np.bincount(kept.user)[np.unique(kept.user)] >= 2)
  assert np.all(np.bincount(kept.item)[np.unique(kept.item)] >= 3)
  # ...window, last-N and per-domain minimum (u1 keeps m1, b2, b2; u2 has movies only).
  kept, passes = events_lib.apply_filters(
    ev, events_lib.Filters(t_min=100, t_max=107, max_len=3, min_per_domain=1)
  )
  assert [p["step"] for p in passes][2:] == [
    "time in [100, 107)",
    "exact duplicates kept",
    "each user's last 3",
    ">= 1 events in every domain",
  ]
  assert kept.ts_ms.tolist() == [101_000, 103_000, 103_000]


def test_the_loader_caches_and_records_the_passes(tmp_path):
  path = write_table(tmp_path / "log.csv")
  options = {**MAPPING, "domains": ("movies", "books"), "user_core": 1}
  ds = load.load_path("events", path, cache_dir=str(tmp_path / "cache"), reader_options=options)
  assert ds.num_items_a == 2 and ds.item_keys[1] == "m1"  # A = movies, as ordered
  (manifest,) = [
    json.loads(open(os.path.join(d, "manifest.json")).read())
    for d in (tmp_path / "cache").iterdir()
  ]
  assert manifest["domains"] == {"A": "movies", "B": "books"}
  assert manifest["filters"][-1]["step"].startswith("k-core")
  assert manifest["params"]["reader_options"]["user_core"] == 1


def _error(tmp_path, rows, columns=COLUMNS, name="log.csv", **options):
  path = write_table(tmp_path / name, rows, columns)
  with pytest.raises(DataError) as e:
    read_ds(path, **{"domains": ("books", "movies"), **options})
  return str(e.value), path


def test_bad_input_is_one_error_naming_file_line_and_column(tmp_path):
  row = ("u1", "b1", 100, "books", 1, 1.0)
  msg, path = _error(tmp_path, [row], ("uid", "item", "ts", "app", "clicked", "dwell"))
  assert msg.startswith(f"{path}:1: no column 'ad' in the header")
  msg, path = _error(tmp_path, [row, ("u1", "b2", "yesterday", "books", 1, 1.0)])
  assert msg == (
    f"{path}:3: column 'ts': got 'yesterday'; expected a number of seconds since 1970 (time_unit=s)"
  )
  iso = ("u1", "b1", "2024-01-02T03:04:05Z", "books", 1, 1.0)
  msg, path = _error(tmp_path, [iso, ("u1", "b2", "2024-13-01", "books", 1, 1.0)], time_unit="iso")
  assert msg.startswith(f"{path}:3: column 'ts': got '2024-13-01'; expected an ISO 8601 time")
  msg, path = _error(tmp_path, [row, ("", "b2", 101, "books", 1, 1.0)])
  assert msg == f"{path}:3: column 'uid': empty user id; expected a non-empty id"
  msg, path = _error(tmp_path, [row, ("u1", "b2", 101, "books", 2, 1.0)])
  assert msg.startswith(f"{path}:3: column 'clicked': got '2'; expected 0 or 1")
  msg, path = _error(tmp_path, [row, ("u1", "b2", 101, "books", 1, -3)])
  assert msg.startswith(f"{path}:3: column 'dwell': got -3; expected a finite number >= 0")
  msg, path = _error(tmp_path, [row], domains=("books", "games"))
  assert msg.startswith("reader option domains: domain 'games' is not in the data")
  msg, path = _error(tmp_path, [row, ("u1", "b2", 101)], name="short.csv")
  assert msg == (
    f"{path}:3: 3 fields; expected 6 as in the header "
    "(['uid', 'ad', 'ts', 'app', 'clicked', 'dwell'])"
  )
  msg, path = _error(tmp_path, [row, ("u1", "b2", 1.7e15, "books", 1, 1.0)])
  assert "not a plausible time" in msg


def test_three_domains_need_two_chosen(tmp_path):
  path = write_table(tmp_path / "log.csv")
  with pytest.raises(DataError, match=r"has 3 domains \['books', 'movies', 'music'\]"):
    read_ds(path)


def test_truncated_parquet_and_a_parquet_row_are_named(tmp_path):
  pytest.importorskip("pyarrow")
  path = write_table(tmp_path / "log.parquet")
  data = open(path, "rb").read()
  cut = tmp_path / "cut.parquet"
  cut.write_bytes(data[: len(data) // 2])
  with pytest.raises(DataError, match="expected a complete Parquet file") as e:
    read_ds(cut, domains=("books", "movies"))
  assert e.value.path == str(cut)
  rows = [*ROWS[:6], ("u9", "b1", 100, "books", 1, -1.0)]
  path = write_table(tmp_path / "neg.parquet", rows)
  with pytest.raises(DataError) as e:
    read_ds(path, domains=("books", "movies"))
  expected = f"{path}: row 7, column 'dwell': got -1; expected a finite number >= 0"
  assert str(e.value).startswith(expected)


def test_skip_policy_counts_bad_rows_and_keeps_the_rest(tmp_path):
  path = write_table(tmp_path / "log.csv", [*ROWS, ("u1", "b9", "soon", "books", 1, 1.0)])
  bad = BadLines("skip")
  ds = events_format.read(path, bad, **MAPPING, domains=("books", "movies"))
  assert bad.total == 1 and "column 'ts'" in bad.examples[0]
  assert "b9" not in set(ds.item_keys)


def test_option_errors_name_the_key():
  with pytest.raises(DataError, match=r"data.reader_options.time_unit: got 'hours'"):
    events_format.check(**{**events_format.OPTIONS, "time_unit": "hours"})
  with pytest.raises(DataError, match=r"data.reader_options.user_core: got -1"):
    events_format.check(**{**events_format.OPTIONS, "user_core": -1})
  with pytest.raises(DataError, match=r"data.reader_options.user: got ''"):
    events_format.check(**{**events_format.OPTIONS, "user": ""})


# --- RecBole ------------------------------------------------------------------------------------


def write_inter(path, header, rows):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows))


def test_recbole_per_domain_files_with_titles(tmp_path):
  header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float"]
  write_inter(
    tmp_path / "rb/books/books.inter", header, [("u1", "b1", 5, 100), ("u2", "b2", 4, 102)]
  )
  write_inter(tmp_path / "rb/movies/movies.inter", header, [("u1", "m1", 3, 101)])
  write_inter(
    tmp_path / "rb/books/books.item", ["item_id:token", "title:token_seq"], [("b1", "A Book")]
  )
  ds = recbole.read(str(tmp_path / "rb"), BadLines())
  assert interactions(ds) == [
    ("u1", "A", "b1", 100),
    ("u1", "B", "m1", 101),
    ("u2", "A", "b2", 102),
  ]
  assert list(ds.item_titles) == ["", "A Book", "", ""]


def test_recbole_domain_column(tmp_path):
  header = ["user_id:token", "item_id:token", "timestamp:float", "domain:token"]
  rows = [("u1", "x", 100, "books"), ("u1", "x", 101, "movies"), ("u2", "y", 99, "books")]
  write_inter(tmp_path / "rb/all.inter", header, rows)
  ds = recbole.read(str(tmp_path / "rb"), BadLines(), domain="domain")
  # The same id in two domains is two items.
  assert ds.num_items_a == 2 and ds.num_items_b == 1
  assert interactions(ds)[:2] == [("u1", "A", "x", 100), ("u1", "B", "x", 101)]


def test_recbole_header_without_types_is_one_error(tmp_path):
  write_inter(tmp_path / "rb/books.inter", ["user_id", "item_id:token"], [("u1", "b1")])
  with pytest.raises(DataError) as e:
    recbole.read(str(tmp_path / "rb"), BadLines())
  assert str(e.value).startswith(
    f"{tmp_path / 'rb/books.inter'}:1: header field 'user_id' has no RecBole type"
  )


def test_round_trip_events_prepared_recbole_prepared_keeps_every_interaction(tmp_path, capsys):
  rng = np.random.default_rng(0)
  rows = [
    (f"u{rng.integers(40)}", f"i{rng.integers(30)}", int(t), ("books", "movies")[rng.integers(2)])
    for t in rng.permutation(10_000)[:600] + 1_600_000_000
  ]
  log = write_table(tmp_path / "log.csv", rows, ("user", "item", "time", "domain"))
  p1, rb, p2 = (str(tmp_path / n) for n in ("p1", "rb", "p2"))
  argv = ["--format=events", f"--path={log}", "--option", "user_core=3", f"--out={p1}"]
  assert prepare.main(argv) == 0
  assert prepare.main([f"--dataset={p1}", "--export=recbole", f"--out={rb}"]) == 0
  assert sorted(os.listdir(rb)) == ["books", "movies"]
  assert prepare.main(["--format=recbole", f"--path={rb}", f"--out={p2}"]) == 0
  capsys.readouterr()
  (a, ma), (b, mb) = store.load_dataset(p1), store.load_dataset(p2)
  assert ma["domains"] == mb["domains"] == {"A": "books", "B": "movies"}
  assert [p["step"] for p in ma["filters"]][-1] == "k-core (user 3, item 0)"
  assert interactions(a) == interactions(b)  # distinct times: the order survives too
  assert a.num_interactions > 400


def test_export_refuses_what_atomic_files_cannot_hold(tmp_path):
  from orthoalign.datasets import synthetic

  ds = synthetic.generate(
    synthetic.SyntheticConfig(
      num_users=30, num_items_a=20, num_items_b=20, mean_length=8.0, min_length=4, max_length=12
    )
  )
  written = recbole.export(ds, str(tmp_path / "rb"))
  assert [os.path.relpath(w, tmp_path / "rb") for w in written] == ["A/A.inter", "B/B.inter"]
  back = recbole.read(str(tmp_path / "rb"), BadLines())
  assert back.num_interactions == ds.num_interactions
  import dataclasses

  with pytest.raises(DataError, match="merged_timeline=False"):
    recbole.export(dataclasses.replace(ds, merged_timeline=False), str(tmp_path / "x"))


def test_prepare_flags_are_one_error_line(tmp_path, capsys):
  log = write_table(tmp_path / "log.csv")
  out = f"--out={tmp_path / 'o'}"
  cases = [
    ([out], "error: flags: got none; expected one source"),
    (["--format=events", out], "error: flags: --format needs --path"),
    (["--format=events", f"--path={log}", "--option", "user_core=many", out], "--option user_core"),
    (["--format=events", f"--path={log}", "--option", "color=red", out], "unknown option(s)"),
    (["--dataset=x", "--recipe=abxi", out], "expected one source"),
  ]
  for argv, expected in cases:
    assert prepare.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1], err


def test_a_baseline_trains_on_an_events_log(tmp_path, capsys):
  rng = np.random.default_rng(1)
  rows = []
  for u in range(60):
    for t in range(12):
      dom = ("books", "movies")[(u + t) % 2]
      rows.append((f"user{u}", f"{dom[0]}{rng.integers(25)}", 1_700_000_000 + 60 * t, dom))
  log = write_table(tmp_path / "log.csv", rows, ("uid", "item", "ts", "domain"))
  from configs import events as events_config
  from orthoalign.train import loop

  cfg = events_config.get_config()
  cfg.data.update(path=log, cache_dir=str(tmp_path / "cache"))
  cfg.data.reader_options.update(
    user="uid", item="item", domain="domain", label="", domains=(), user_core=0, item_core=0
  )
  cfg.model.update(width=16, max_len=10)
  cfg.train.update(max_epochs=1, num_devices=1)
  cfg.eval.num_negatives = 10
  rows = loop.train_and_evaluate(cfg, str(tmp_path / "run"))
  assert "domain A = 'books', domain B = 'movies'" in capsys.readouterr().err
  assert np.isfinite(rows[-1]["test/sampled/A/ndcg@10"])
  assert np.isfinite(rows[-1]["test/sampled/B/ndcg@10"])


def test_stats_reads_a_log_with_its_column_mapping(tmp_path, capsys):
  from orthoalign.datasets import stats

  log = write_table(tmp_path / "log.csv")
  options = [f"--option={k}={v}" for k, v in MAPPING.items()] + ["--option=domains=books,movies"]
  argv = ["--format=events", f"--path={log}", "--json", *options]
  assert stats.main([*argv, "--option=duplicates=drop"]) == 0
  assert json.loads(capsys.readouterr().out)["interactions"] == 9
  assert stats.main([*argv, "--option=overlapped_only=maybe"]) == 1
  err = capsys.readouterr().err.strip()
  assert err.endswith(
    "error: --option overlapped_only: bad value 'maybe' (not true or false); expected true or false"
  )


def test_a_skipped_row_adds_no_domain_and_a_wrong_domain_column_is_named(tmp_path):
  rows = [*ROWS[:10], ("u1", "b7", "soon", "", 1, 1.0)]
  bad = BadLines("skip")
  ds = events_format.read(write_table(tmp_path / "log.csv", rows), bad, **MAPPING)
  assert bad.total == 1 and ds.num_items == 4  # books and movies only: no '' domain
  rows = [(f"u{i}", "x", 100, f"d{i}", 1, 1.0) for i in range(200)]
  with pytest.raises(DataError, match=r"column 'app': more than 127 distinct domain names"):
    read_ds(write_table(tmp_path / "many.csv", rows))


def test_a_mapped_column_named_twice_in_the_header_is_refused(tmp_path):
  msg, path = _error(
    tmp_path, [("u1", "b1", 100, "books", 1, 1.0)], ("uid", "ad", "ts", "uid", "clicked", "dwell")
  )
  assert msg.startswith(f"{path}:1: two columns named 'uid' in the header")


def test_what_newcomers_broke_is_refused_in_one_line(tmp_path):
  row = ("u1", "b1", 100, "books", 1, 1.0)
  # A time of nan / null is no time (it became 1970).
  msg, path = _error(tmp_path, [row, ("u1", "b2", "nan", "books", 1, 1.0)])
  assert msg.startswith(f"{path}:3: column 'ts': got 'nan'; expected a number of seconds")
  path = tmp_path / "null.jsonl"
  path.write_text(
    json.dumps(dict(zip(COLUMNS, row)))
    + "\n"
    + json.dumps({**dict(zip(COLUMNS, row)), "ts": None})
    + "\n"
  )
  with pytest.raises(DataError, match=r"null.jsonl:2: column 'ts': got an empty value"):
    read_ds(path, domains=("books", "movies"))
  # JSON ids that are not strings or numbers.
  for bad_id, shown in ((True, "True"), ({"x": 1}, "{'x': 1}"), ([1, 2], "[1, 2]")):
    path.write_text(json.dumps({**dict(zip(COLUMNS, row)), "uid": bad_id}) + "\n")
    with pytest.raises(DataError) as e:
      read_ds(path, domains=("books", "movies"))
    assert str(e.value) == (
      f"{path}:1: column 'uid': got {shown}; expected a user id (a string or a number)"
    )
  # The earliest bad row is the one named, whichever column is bad.
  rows = [row, ("u1", "b2", 100, "books", 7, 1.0), ("u1", "b2", "x", "books", 1, 1.0)]
  msg, path = _error(tmp_path, rows)
  assert msg.startswith(f"{path}:3: column 'clicked'")
  # A tab-separated file read as CSV, a quoted field with a line break.
  tsv = write_table(tmp_path / "tabs.tsv", [row])
  with pytest.raises(DataError, match="separated by tabs: set the reader option table_format=tsv"):
    read_ds(tsv, table_format="csv", domains=("books", "movies"))
  quoted = tmp_path / "quoted.csv"
  quoted.write_text(",".join(COLUMNS) + '\nu1,"b1\nsecond line",100,books,1,1\n')
  with pytest.raises(DataError, match=r"quoted.csv:2: 2 fields; .* goes on past the line end"):
    read_ds(quoted, domains=("books", "movies"))
  with pytest.raises(DataError, match=r"reader_options.t_max: got 100; expected a time after"):
    events_format.check(**{**events_format.OPTIONS, "t_min": 200, "t_max": 100})


def test_parts_in_sub_folders_are_read(tmp_path):
  one = read_ds(write_table(tmp_path / "log.csv"), domains=("books", "movies"))
  for i, (lo, hi) in enumerate(((0, 6), (6, 12))):
    (tmp_path / "hive" / f"date=2026-11-0{i + 1}").mkdir(parents=True)
    write_table(tmp_path / "hive" / f"date=2026-11-0{i + 1}" / "part-0.csv", ROWS[lo:hi])
  (tmp_path / "hive" / "_temporary").mkdir()
  (tmp_path / "hive" / "_temporary" / "junk.csv").write_text("not,a,log\n")
  assert interactions(read_ds(tmp_path / "hive", domains=("books", "movies"))) == interactions(one)


def test_times_far_from_now_warn_of_the_unit(tmp_path, capsys):
  rows = [(u, i, t * 1000, d, c, v) for u, i, t, d, c, v in ROWS]  # milliseconds, read as seconds
  read_ds(write_table(tmp_path / "ms.csv", rows), domains=("books", "movies"))
  assert "if the log is not from then, its times are in another unit" in capsys.readouterr().err
  rows = [(u, i, 1_700_000_000 + t, d, c, v) for u, i, t, d, c, v in ROWS]
  read_ds(write_table(tmp_path / "s.csv", rows), domains=("books", "movies"))
  assert "another unit" not in capsys.readouterr().err


def test_export_refuses_an_id_with_a_tab(tmp_path):
  rows = [("u\tX", "b1", 100, "books"), ("u2", "m1", 100, "movies")]
  path = tmp_path / "tab.jsonl"
  path.write_text(
    "".join(json.dumps(dict(zip(("user", "item", "time", "domain"), r))) + "\n" for r in rows)
  )
  ds = events_format.read(str(path), BadLines())
  with pytest.raises(DataError, match=r"user id 'u\\tX' holds a tab or a line break"):
    recbole.export(ds, str(tmp_path / "rb"))


def test_an_option_the_format_lacks_is_named_on_the_command_line():
  from orthoalign.config import flags
  from orthoalign.errors import ConfigError

  argv = ["prog", "--config=configs/events.py", "--config.data.reader_options.colour=red"]
  with pytest.raises(ConfigError, match=r"format 'events' has no reader option 'colour'"):
    flags.check_overrides(argv)
