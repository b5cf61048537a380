"""Regression tests of data faults: sub-second order, duplicate rows, BOM / CRLF, surrogates."""

import json
import pathlib

import numpy as np
import pytest

from orthoalign.datasets import prepare
from orthoalign.datasets import recipes
from orthoalign.datasets import stats
from orthoalign.datasets import store
from orthoalign.datasets import summary
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import amazon
from orthoalign.datasets.readers import imvae
from orthoalign.datasets.readers import llmcdsr
from orthoalign.errors import DataError

BOM = b"\xef\xbb\xbf"
# Every filter off, so the tests see each row the reader kept.
OPEN = {
  "abxi": {"k_i": 0, "k_u": 1, "max_len": 50},
  "llm4cdsr": {"t_min": None, "t_max": None, "user_core": 0, "item_core": 0},
}


def _jsonl(path: pathlib.Path, rows: list[dict]) -> str:
  path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
  return str(path)


def _r23(user: str, item: str, ts_ms: int) -> dict:
  return {"user_id": user, "parent_asin": item, "rating": 5.0, "timestamp": ts_ms}


# --- 1. Same-second events keep their millisecond order ---------------------------------------


@pytest.mark.parametrize("recipe", ["abxi", "llm4cdsr"])
def test_2023_same_second_events_sort_on_milliseconds(tmp_path, recipe):
  t = 1_600_000_000_000
  # A review at ...999 ms and a B review at ...001 ms of the same second: A came last.
  a = _jsonl(tmp_path / "a.jsonl", [_r23("u", "a0", t - 5000), _r23("u", "a1", t + 999)])
  b = _jsonl(tmp_path / "b.jsonl", [_r23("u", "b1", t + 1)])
  ds = recipes.RECIPES[recipe].run(a, b, OPEN[recipe], BadLines())
  keys = ds.item_keys[ds.sequence(0)].tolist()
  assert keys == ["a0", "b1", "a1"]  # Before the fix: ['a0', 'a1', 'b1'] (B the test target).
  assert ds.timestamps.tolist() == [t // 1000 - 5, t // 1000, t // 1000]  # Still seconds.


def test_read_interactions_ms_keeps_full_precision(tmp_path):
  path = _jsonl(tmp_path / "r.jsonl", [_r23("u", "p", 1588615855070)])
  ((record, millis),) = amazon.read_interactions_ms(path, BadLines())
  assert (record.timestamp, millis) == (1588615855, 1588615855070)
  csv_path = tmp_path / "r.csv"
  csv_path.write_text("u,p,5.0,100\n")
  assert [m for _, m in amazon.read_interactions_ms(csv_path, BadLines())] == [100_000]


# --- 2. Exact duplicate rows: counted, kept (warning) or dropped ------------------------------


def _dup_files(tmp_path):
  a = tmp_path / "a.csv"
  a.write_text("u,a1,5.0,1\nu,a2,5.0,2\nu,a2,5.0,2\n")  # Last two rows identical.
  b = tmp_path / "b.csv"
  b.write_text("u,b1,5.0,0\n")
  return str(a), str(b)


@pytest.mark.parametrize("recipe", ["abxi", "llm4cdsr"])
def test_duplicates_kept_by_default_counted_and_warned(tmp_path, capsys, recipe):
  a, b = _dup_files(tmp_path)
  report = {}
  ds = recipes.RECIPES[recipe].run(a, b, OPEN[recipe], BadLines(), report=report)
  assert report["duplicates"] == {"policy": "keep", "found": 1, "dropped": 0}
  assert "warning" in capsys.readouterr().err
  assert ds.item_keys[ds.sequence(0)].tolist() == ["b1", "a1", "a2", "a2"]
  assert summary.compute(ds)["duplicate_rows"] == 1
  assert "duplicates" in summary.format_text(summary.compute(ds))


@pytest.mark.parametrize("recipe", ["abxi", "llm4cdsr"])
def test_duplicates_drop(tmp_path, recipe):
  a, b = _dup_files(tmp_path)
  report = {}
  ds = recipes.RECIPES[recipe].run(
    a, b, {**OPEN[recipe], "duplicates": "drop"}, BadLines(), report=report
  )
  assert report["duplicates"] == {"policy": "drop", "found": 1, "dropped": 1}
  assert ds.item_keys[ds.sequence(0)].tolist() == ["b1", "a1", "a2"]
  assert summary.compute(ds)["duplicate_rows"] == 0
  with pytest.raises(DataError, match="keep or drop"):
    recipes.RECIPES[recipe].resolve_params({"duplicates": "maybe"})


def test_prepare_records_duplicates_in_manifest(tmp_path, capsys):
  a, b = _dup_files(tmp_path)
  out = tmp_path / "store"
  assert (
    prepare.main(
      [
        "--recipe=llm4cdsr",
        f"--domain-a={a}",
        f"--domain-b={b}",
        f"--out={out}",
        "--param",
        "t_min=none",
        "--param",
        "t_max=none",
        "--param",
        "user_core=0",
        "--param",
        "item_core=0",
      ]
    )
    == 0
  )
  assert "duplicate" in capsys.readouterr().err
  _, manifest = store.load_dataset(out)
  assert manifest["duplicates"] == {"policy": "keep", "found": 1, "dropped": 0}
  assert manifest["statistics"]["duplicate_rows"] == 1
  assert manifest["params"]["duplicates"] == "keep"


def test_stats_without_timestamps_has_no_duplicate_count(tmp_path):
  from orthoalign.datasets.dataset import CDSRDataset

  ds = CDSRDataset.from_sequences("t", 2, 1, [np.array([1, 1, 3], np.int32)])
  assert "duplicate_rows" not in summary.compute(ds)


# --- 3. A UTF-8 byte-order mark and CRLF line ends in every text reader -----------------------


def _crlf_bom(text: str) -> bytes:
  return BOM + text.replace("\n", "\r\n").encode()


def test_abxi_bom_and_crlf(tmp_path):
  (tmp_path / "toy_50_preprocessed.txt").write_bytes(_crlf_bom("0 1|100 3|100 2|200\n"))
  (tmp_path / "map_item_50.txt").write_bytes(
    _crlf_bom('{"a1": [1, 0], "a2": [2, 0], "b1": [3, 1]}\n')
  )
  (tmp_path / "map_user_50.txt").write_bytes(_crlf_bom('{"u0": 0}\n'))
  ds = abxi.read_abxi(tmp_path)  # Before the fix: "user index '\ufeff0' is not ...".
  assert ds.sequence(0).tolist() == [1, 3, 2]
  assert ds.user_ids.tolist() == ["u0"]


def test_llmcdsr_bom_and_crlf(tmp_path):
  files = {
    "num.txt": "2\n1\n",
    "instance_num.txt": "1\n1\n1\n",
    "train_A.txt": "1\t0,1\n",
    "train_B.txt": "1\t2\n",
    "train_overlap.txt": "1\t0,2\n",
    "valid.txt": "1\t1,2\n",
    "test.txt": "1\t2,0\n",
    "item_set_A.json": '{"a0": 0, "a1": 1}',
    "item_set_B.json": '{"b0": 0}',
    "text_A.json": '{"a0": "Apple"}',
  }
  for name, text in files.items():
    (tmp_path / name).write_bytes(_crlf_bom(text))
  ds = llmcdsr.read_llmcdsr(tmp_path)
  assert ds.num_users == 5
  assert ds.item_titles[1] == "Apple"


def test_imvae_bom_and_crlf(tmp_path):
  header = "user_id,seq_d1,seq_d2,domain_id\n"
  (tmp_path / "p_train.csv").write_bytes(_crlf_bom(header + '1,"[1, 2]","[3]",0\n'))
  (tmp_path / "p_test_csu.csv").write_bytes(_crlf_bom(header + '2,"[1]","[3]",1\n'))
  ds = imvae.read_imvae(tmp_path, valid_fraction=0.0)
  assert ds.num_users == 2


def test_amazon_raw_bom_and_crlf(tmp_path):
  path = tmp_path / "r.csv"
  path.write_bytes(_crlf_bom("u,a,5.0,1\nu,b,4.0,2\n"))
  assert [r.item for r in amazon.read_interactions(path, BadLines())] == ["a", "b"]
  meta = tmp_path / "m.json"
  meta.write_bytes(_crlf_bom('{"asin": "a", "title": "T"}\n'))
  assert amazon.read_titles(meta, BadLines()) == {"a": "T"}


# --- 4. Lone UTF-16 surrogates become U+FFFD, counted -----------------------------------------


def test_amazon_meta_surrogate_is_replaced_and_stored(tmp_path, capsys):
  a, b = _dup_files(tmp_path)
  meta = tmp_path / "meta.jsonl"
  # A raw "\ud800" escape, as scraped metadata holds (json.dumps would escape it the same way).
  meta.write_text('{"parent_asin": "a1", "title": "Bad \\ud800 title"}\n')
  out = tmp_path / "store"
  assert (
    prepare.main(
      [
        "--recipe=llm4cdsr",
        f"--domain-a={a}",
        f"--domain-b={b}",
        f"--out={out}",
        f"--meta-a={meta}",
        "--param",
        "t_min=none",
        "--param",
        "t_max=none",
        "--param",
        "user_core=0",
        "--param",
        "item_core=0",
      ]
    )
    == 0
  )
  assert "U+FFFD" in capsys.readouterr().err
  ds, manifest = store.load_dataset(out)  # Before the fix: UnicodeEncodeError while storing.
  assert "Bad \ufffd title" in ds.item_titles.tolist()
  assert manifest["bad_lines"]["replaced_characters"] == 1
  assert stats.main(["--format=prepared", f"--path={out}"]) == 0


def test_amazon_meta2014_literal_and_review_ids(tmp_path):
  meta = tmp_path / "meta.py"
  meta.write_text("{'asin': 'a', 'title': 'x\\ud83dy'}\n")
  bad = BadLines()
  assert amazon.read_titles(meta, bad) == {"a": "x\ufffdy"}
  assert bad.report()["replaced_characters"] == 1
  reviews = tmp_path / "r.jsonl"
  reviews.write_text(
    '{"user_id": "u\\udc00", "parent_asin": "p", "rating": 5, "timestamp": 1000}\n'
  )
  bad = BadLines()
  (record,) = amazon.read_interactions(reviews, bad)
  assert record.user == "u\ufffd"
  assert bad.replaced[str(reviews)] == 1
  assert "replaced 1" in bad.summary()


def test_llmcdsr_titles_surrogate(tmp_path):
  files = {
    "num.txt": "2\n1\n",
    "instance_num.txt": "1\n1\n1\n",
    "train_A.txt": "1\t0,1\n",
    "train_B.txt": "1\t2\n",
    "train_overlap.txt": "1\t0,2\n",
    "valid.txt": "1\t1,2\n",
    "test.txt": "1\t2,0\n",
    "item_set_A.json": '{"a0": 0, "a1": 1}',
    "item_set_B.json": '{"b0": 0}',
    "text_A.json": '{"a0": "App\\ud800le"}',
  }
  for name, text in files.items():
    (tmp_path / name).write_text(text)
  bad = BadLines()
  ds = llmcdsr.read_llmcdsr(tmp_path, bad)
  assert ds.item_titles[1] == "App\ufffdle"
  assert bad.report()["replaced_characters"] == 1
  store.save_dataset(ds, tmp_path / "store")  # Before the fix: UnicodeEncodeError.
  assert store.load_dataset(tmp_path / "store")[0].item_titles[1] == "App\ufffdle"
