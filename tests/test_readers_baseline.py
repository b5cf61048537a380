"""Tests of the baseline readers: ABXI, LLMCDSR and LLM4CDSR "handled"."""

import json
import os
import pathlib
import pickle
import pickletools
import tempfile

from conftest import require_data
import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from orthoalign.datasets import dataset
from orthoalign.datasets import splits
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import handled
from orthoalign.datasets.readers import llmcdsr
from orthoalign.datasets.readers import safe_pickle
from orthoalign.errors import DataError

FUZZ = hypothesis.settings(
  max_examples=100,
  deadline=None,
  derandomize=True,
  suppress_health_check=[hypothesis.HealthCheck.too_slow],
)


def _write(folder: pathlib.Path, files: dict[str, str | bytes]) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  for name, content in files.items():
    data = content.encode() if isinstance(content, str) else content
    (folder / name).write_bytes(data)


# ---------------------------------------------------------------- ABXI ----

# nA = 3 (ids 1..3), nB = 2 (ids 4..5). The item map is one entry per line so
# that map errors have distinct line numbers.
ABXI_ITEMS = '{\n"a1": [1, 0],\n"a2": [2, 0],\n"a3": [3, 0],\n"b1": [4, 1],\n"b2": [5, 1]\n}\n'
ABXI_USERS = '{"u0": 0, "u1": 1, "u2": 2}'
ABXI_SEQ = "0 1|100 4|100 2|200\n1 5|50 3|60 4|70 1|80\n2 2|10 5|20\n"
ABXI_SEQ_NAME = "toy_50_preprocessed.txt"


def _abxi_files(seq: str | bytes = ABXI_SEQ, items: str = ABXI_ITEMS) -> dict[str, str | bytes]:
  return {ABXI_SEQ_NAME: seq, "map_item_50.txt": items, "map_user_50.txt": ABXI_USERS}


def test_abxi_small(tmp_path):
  _write(tmp_path, _abxi_files())
  ds = abxi.read_abxi(tmp_path)
  assert (ds.num_items_a, ds.num_items_b, ds.num_users) == (3, 2, 3)
  np.testing.assert_array_equal(ds.sequence(1), [5, 3, 4, 1])
  np.testing.assert_array_equal(ds.domains[:3], [0, 1, 0])
  np.testing.assert_array_equal(ds.timestamps[:3], [100, 100, 200])
  assert list(ds.user_ids) == ["u0", "u1", "u2"]
  assert list(ds.item_keys) == ["", "a1", "a2", "a3", "b1", "b2"]
  # The preprocessed file itself is accepted too.
  same = abxi.read_abxi(tmp_path / ABXI_SEQ_NAME)
  np.testing.assert_array_equal(same.items, ds.items)


def test_abxi_without_user_map_uses_indices(tmp_path):
  files = _abxi_files()
  del files["map_user_50.txt"]
  _write(tmp_path, files)
  np.testing.assert_array_equal(abxi.read_abxi(tmp_path).user_ids, [0, 1, 2])


ABXI_BAD_LINES = [
  # (line 2 of the sequence file, phrase of the message)
  ("1x 5|50", "user index"),
  ("1 5a|50", "item id"),
  ("1 5", 'has no "|"'),
  ("1 5|abc", "timestamp"),
  ("1 5|1e9", "timestamp"),
  ("1 6|50", "item id 6 unknown"),
  ("1 0|50", "item id 0 unknown"),
  ("0 5|50", "duplicate user index 0 (first on line 1)"),
  ("1", "no interactions"),
  ("1 5|50 3|40", "timestamp 40 < previous 50"),
  (b"1 5|50 \xff|60", "not valid UTF-8"),
  ("7 5|50", "not in map_user_50.txt"),
]


def _abxi_with_bad_line(bad_line: str | bytes) -> bytes:
  lines = ABXI_SEQ.encode().splitlines(keepends=True)
  bad = bad_line if isinstance(bad_line, bytes) else bad_line.encode()
  return lines[0] + bad + b"\n" + b"".join(lines[1:])


@pytest.mark.parametrize("bad_line, phrase", ABXI_BAD_LINES)
def test_abxi_bad_line_error(tmp_path, bad_line, phrase):
  _write(tmp_path, _abxi_files(seq=_abxi_with_bad_line(bad_line)))
  with pytest.raises(DataError, match="expected|not|unknown") as info:
    abxi.read_abxi(tmp_path)
  e = info.value
  assert e.path == str(tmp_path / ABXI_SEQ_NAME)
  assert e.line == 2
  assert phrase in str(e)
  assert str(e).startswith(f"{tmp_path / ABXI_SEQ_NAME}:2: ")


@pytest.mark.parametrize("bad_line, phrase", ABXI_BAD_LINES)
def test_abxi_bad_line_skip(tmp_path, bad_line, phrase):
  del phrase
  _write(tmp_path, _abxi_files(seq=_abxi_with_bad_line(bad_line)))
  bad = BadLines("skip")
  ds = abxi.read_abxi(tmp_path, bad=bad)
  assert ds.num_users == 3  # The three good lines.
  assert bad.total == 1
  assert bad.counts == {str(tmp_path / ABXI_SEQ_NAME): 1}


def test_abxi_skip_counts_every_bad_line(tmp_path):
  seq = ABXI_SEQ + "9 1|1\nx\n5 1\n\n"  # 3 bad lines; the blank one is fine.
  _write(tmp_path, _abxi_files(seq=seq))
  bad = BadLines("skip")
  assert abxi.read_abxi(tmp_path, bad=bad).num_users == 3
  assert bad.total == 3
  assert "skipped 3 bad line(s)" in bad.summary()


@pytest.mark.parametrize(
  "old, new, line, phrase",
  [
    ('"b1": [4, 1]', '"b1": [4, 2]', 5, "domain flag 2; expected 0 (A) or 1"),
    ('"b1": [4, 1]', '"b1": [7, 1]', 5, "item id 7 out of range"),
    ('"b1": [4, 1]', '"b1": [2, 1]', 5, "also used by"),
    ('"a1": [1, 0]', '"a1": [1, 1]', 2, "expected domain-1 ids 3..5"),
    ('"b1": [4, 1]', '"b1": [4, "1"]', 5, "expected [item_id, domain]"),
    ('"b1": [4, 1]', '"a1": [4, 1]', 5, "appears twice"),
    ('"b1": [4, 1],', '"b1": [4, 1]', 6, "invalid JSON"),
  ],
)
def test_abxi_item_map_errors_are_fatal(tmp_path, old, new, line, phrase):
  assert old in ABXI_ITEMS
  _write(tmp_path, _abxi_files(items=ABXI_ITEMS.replace(old, new)))
  with pytest.raises(DataError) as info:
    abxi.read_abxi(tmp_path, bad=BadLines("skip"))  # Not skippable.
  assert info.value.path == str(tmp_path / "map_item_50.txt")
  assert info.value.line == line
  assert phrase in str(info.value)


def test_abxi_missing_files(tmp_path):
  files = _abxi_files()
  del files["map_item_50.txt"]
  _write(tmp_path, files)
  with pytest.raises(DataError, match="file not found") as info:
    abxi.read_abxi(tmp_path)
  assert info.value.path == str(tmp_path / "map_item_50.txt")
  (tmp_path / "empty").mkdir()
  with pytest.raises(DataError, match="exactly one"):
    abxi.read_abxi(tmp_path / "empty")
  with pytest.raises(DataError, match="not found"):
    abxi.read_abxi(tmp_path / "absent")


def test_abxi_real_statistics():
  ds = abxi.read_abxi(require_data("abxi-afk"))
  s = ds.summary()
  assert s["users"] == s["overlapped_users"] == 7144
  assert (s["items_a"], s["items_b"]) == (11837, 16258)
  assert (s["interactions"], s["interactions_a"], s["interactions_b"]) == (173548, 83663, 89885)
  assert (ds.lengths.min(), ds.lengths.max()) == (10, 50)
  assert round(s["mean_length"], 1) == 24.3
  assert round(s["domain_switch_rate"], 3) == 0.359
  test = splits.eval_split(ds, "test")
  assert np.bincount(test.target_domain).tolist() == [2419, 4725]
  assert ds.item_keys[1] == "616719923X"
  assert ds.user_ids[0] == "A06944662TFWOKKV4GJKX"
  np.testing.assert_array_equal(ds.sequence(0)[:3], [821, 1860, 2986])
  assert ds.timestamps[0] == 1381536000


# ------------------------------------------------------------- LLMCDSR ----

# nA = 3 (file ids 0..2), nB = 2 (file ids 3..4).
LLMCDSR_FILES = {
  "num.txt": "3\n2\n",
  "instance_num.txt": "2\n1\n1\n",
  "train_A.txt": "1\t0,1,2\n2\t2,1\n",
  "train_B.txt": "1\t3,4,3\n",
  "train_overlap.txt": "1\t0,3,1,4\n",
  "valid.txt": "1\t2,4,0\n2\t1,3\n",
  "test.txt": "1\t3,1\n",
  "item_set_A.json": '{"a0": 0, "a1": 1, "a2": 2}',
  "item_set_B.json": '{"b1": 1, "b0": 0}',
  "text_A.json": '{"a0": "Apple", "a2": "Cherry", "zz": "unknown"}',
  "text_B.json": '{"b1": "Pan"}',
}


def _llmcdsr_files(**changes: str | bytes) -> dict[str, str | bytes]:
  files = dict(LLMCDSR_FILES)
  for name, content in changes.items():
    files[name.replace("__", ".")] = content
  return files


def test_llmcdsr_small(tmp_path):
  _write(tmp_path, LLMCDSR_FILES)
  ds = llmcdsr.read_llmcdsr(tmp_path)
  assert (ds.num_items_a, ds.num_items_b, ds.num_users) == (3, 2, 7)
  assert ds.timestamps is None
  np.testing.assert_array_equal(ds.sequence(0), [1, 2, 3])
  np.testing.assert_array_equal(ds.sequence(2), [4, 5, 4])
  np.testing.assert_array_equal(ds.sequence(3), [1, 4, 2, 5])
  assert list(ds.user_ids) == [
    "train_A:1",
    "train_A:2",
    "train_B:1",
    "train_overlap:1",
    "valid:1",
    "valid:2",
    "test:1",
  ]
  np.testing.assert_array_equal(ds.user_split, [0, 0, 0, 0, 1, 1, 2])
  assert list(ds.item_keys) == ["", "a0", "a1", "a2", "b0", "b1"]
  assert list(ds.item_titles) == ["", "Apple", "", "Cherry", "", "Pan"]
  valid = splits.eval_split(ds, "valid")
  np.testing.assert_array_equal(valid.users, [4, 5])
  np.testing.assert_array_equal(valid.targets, [1, 4])
  np.testing.assert_array_equal(splits.train_lengths(ds), [3, 2, 3, 4, 0, 0, 0])


def test_llmcdsr_titles_optional(tmp_path):
  files = dict(LLMCDSR_FILES)
  del files["text_A.json"], files["text_B.json"]
  _write(tmp_path, files)
  assert llmcdsr.read_llmcdsr(tmp_path).item_titles is None


LLMCDSR_BAD_LINES = [
  # (file, bad line inserted as line 2, phrase)
  ("valid.txt", "3 0,1", "no tab"),
  ("valid.txt", "3\t0,x", "item 2: id"),
  ("valid.txt", "3\t0,1,", "item 3: id"),
  ("valid.txt", "3\t", "no interactions"),
  ("valid.txt", "u3\t0,1", "user id"),
  ("valid.txt", "3\t0,5", "id 5 out of range; expected an item id in 0..4"),
  ("valid.txt", "1\t0,1", "duplicate user id 1 (first on line 1)"),
  ("valid.txt", b"3\t0,\xc3", "not valid UTF-8"),
  ("test.txt", "3\t0,-1", "item 2: id"),
  ("train_A.txt", "3\t0,3", "A item (A-only file) id in 0..2"),
  ("train_B.txt", "3\t4,2", "B item (B-only file) id in 3..4"),
]


def _with_line_2(content: str, line: str | bytes) -> bytes:
  lines = content.encode().splitlines(keepends=True)
  bad = line if isinstance(line, bytes) else line.encode()
  return lines[0] + bad + b"\n" + b"".join(lines[1:])


@pytest.mark.parametrize("name, bad_line, phrase", LLMCDSR_BAD_LINES)
def test_llmcdsr_bad_line_error(tmp_path, name, bad_line, phrase):
  files = dict(LLMCDSR_FILES)
  files[name] = _with_line_2(files[name], bad_line)
  _write(tmp_path, files)
  with pytest.raises(DataError) as info:
    llmcdsr.read_llmcdsr(tmp_path)
  assert info.value.path == str(tmp_path / name)
  assert info.value.line == 2
  assert phrase in str(info.value)


@pytest.mark.parametrize("name, bad_line, phrase", LLMCDSR_BAD_LINES)
def test_llmcdsr_bad_line_skip(tmp_path, name, bad_line, phrase):
  del phrase
  files = dict(LLMCDSR_FILES)
  files[name] = _with_line_2(files[name], bad_line)
  if name.startswith("train_"):
    # Keep instance_num.txt consistent with the good lines.
    files["instance_num.txt"] = "2\n1\n1\n"
  _write(tmp_path, files)
  bad = BadLines("skip")
  ds = llmcdsr.read_llmcdsr(tmp_path, bad=bad)
  assert ds.num_users == 7
  assert bad.counts == {str(tmp_path / name): 1}


def test_llmcdsr_user_count_mismatch(tmp_path):
  _write(tmp_path, _llmcdsr_files(instance_num__txt="2\n1\n2\n"))
  with pytest.raises(DataError, match="train_overlap.txt has 1 users; expected 2") as info:
    llmcdsr.read_llmcdsr(tmp_path)
  assert info.value.path == str(tmp_path / "instance_num.txt")
  assert info.value.line == 3
  # Under "skip" the mismatch is counted like a bad line, never silent.
  bad = BadLines("skip")
  llmcdsr.read_llmcdsr(tmp_path, bad=bad)
  assert bad.counts == {str(tmp_path / "instance_num.txt"): 1}


def test_llmcdsr_skipped_train_line_also_breaks_count(tmp_path):
  files = dict(LLMCDSR_FILES)
  files["train_A.txt"] += "3\tx\n"
  files["instance_num.txt"] = "3\n1\n1\n"
  _write(tmp_path, files)
  bad = BadLines("skip")
  assert llmcdsr.read_llmcdsr(tmp_path, bad=bad).num_users == 7
  assert bad.counts == {str(tmp_path / "train_A.txt"): 1, str(tmp_path / "instance_num.txt"): 1}


@pytest.mark.parametrize(
  "name, content, line, phrase",
  [
    ("num.txt", "3\nx\n", 2, "not a non-negative integer"),
    ("num.txt", "3\n", None, "1 lines; expected 2"),
    ("num.txt", "3\n2\n7\n", 3, "extra line"),
    ("num.txt", "3\n0\n", None, "expected both >= 1"),
    ("instance_num.txt", "2\n1\n", None, "expected 3"),
    ("item_set_A.json", '{"a0": 0, "a1": 1}', None, "2 items but num.txt"),
    ("item_set_A.json", '{"a0": 0,\n"a1": 0,\n"a2": 2}', 2, "also used by"),
    ("item_set_B.json", '{"b0": 0,\n"b1": 2}', 2, "expected an integer in 0..1"),
    ("item_set_B.json", '{"b0": 0, "b1": 1', 1, "invalid JSON"),
    ("item_set_B.json", "[0, 1]", 1, "expected an object"),
    ("text_B.json", '{"b0": "x",\n"b1": 5}', 2, "expected a string"),
  ],
)
def test_llmcdsr_structural_errors_are_fatal(tmp_path, name, content, line, phrase):
  files = dict(LLMCDSR_FILES)
  files[name] = content
  _write(tmp_path, files)
  with pytest.raises(DataError) as info:
    llmcdsr.read_llmcdsr(tmp_path, bad=BadLines("skip"))
  assert info.value.path == str(tmp_path / name)
  assert info.value.line == line
  assert phrase in str(info.value)


def test_llmcdsr_missing_file(tmp_path):
  files = dict(LLMCDSR_FILES)
  del files["test.txt"]
  _write(tmp_path, files)
  with pytest.raises(DataError, match="file not found") as info:
    llmcdsr.read_llmcdsr(tmp_path)
  assert info.value.path == str(tmp_path / "test.txt")


# Per file of llmcdsr-food-kitchen's README: users, interactions, A items,
# B items, min length, max length, mean length (1 decimal).
LLMCDSR_README = {
  "train_A": (5472, 37281, 37281, 0, 5, 40, 6.8),
  "train_B": (38191, 265817, 0, 265817, 5, 78, 7.0),
  "train_overlap": (7501, 99170, 45849, 53321, 5, 156, 13.2),
  "valid": (960, 18133, 8739, 9394, 5, 140, 18.9),
  "test": (937, 15726, 6447, 9279, 5, 135, 16.8),
}


def test_llmcdsr_real_statistics():
  ds = llmcdsr.read_llmcdsr(require_data("llmcdsr-food-kitchen"))
  assert (ds.num_items_a, ds.num_items_b) == (8661, 27637)
  assert ds.num_users == 53061 and ds.num_interactions == 436127
  stems = np.array([u.split(":")[0] for u in ds.user_ids])
  lengths = ds.lengths
  num_b = np.add.reduceat(ds.domains.astype(np.int64), ds.offsets[:-1])
  for stem, expected in LLMCDSR_README.items():
    sel = stems == stem
    got = (
      int(sel.sum()),
      int(lengths[sel].sum()),
      int((lengths - num_b)[sel].sum()),
      int(num_b[sel].sum()),
      int(lengths[sel].min()),
      int(lengths[sel].max()),
      round(float(lengths[sel].mean()), 1),
    )
    assert got == expected, stem
  assert np.bincount(ds.user_split).tolist() == [51164, 960, 937]
  valid = splits.eval_split(ds, "valid")
  test = splits.eval_split(ds, "test")
  assert (valid.num_cases, int(np.sum(valid.target_domain == 0))) == (960, 363)
  assert (test.num_cases, int(np.sum(test.target_domain == 0))) == (937, 300)
  # Global B id = 8661 + local B id + 1.
  items_b = json.loads((require_data("llmcdsr-food-kitchen") / "item_set_B.json").read_text())
  asin = next(iter(items_b))
  assert ds.item_keys[8661 + items_b[asin] + 1] == asin
  assert ds.item_keys[1] == "B000BIZT3E"
  assert ds.item_titles[1].startswith("Enfamil Prosobee")
  assert np.all(ds.item_titles[1:] != "")  # Every item has a title.


# ------------------------------------------------------- LLM4CDSR handled --

HANDLED_ID_MAP = {
  "user_dict": {"str2id": {"ua": 1, "ub": 2, "uc": 5}, "id2str": {"1": "ua", "2": "ub", "5": "uc"}},
  "item_dict": {
    "0": {"str2id": {"x1": 1, "x2": 2, "x3": 3}, "id2str": {"1": "x1", "2": "x2", "3": "x3"}},
    "1": {"str2id": {"y1": 1, "y2": 2}, "id2str": {"1": "y1", "2": "y2"}},
    "item_count": {"0": 3, "1": 2},
  },
}


def _handled_seqs() -> tuple[dict, dict]:
  inter = {1: np.array([1, 2, 1, 3]), 2: np.array([2, 1, 3]), 5: np.array([3, 2])}
  domain = {1: np.array([0, 1, 1, 0]), 2: np.array([1, 0, 0]), 5: np.array([0, 1])}
  return inter, domain


def _as_numpy1_paths(data: bytes) -> bytes:
  """Rewrites a pickle's numpy._core.* globals to numpy 1's numpy.core.*."""
  out = []
  ops = list(pickletools.genops(data))
  for (op, arg, pos), nxt in zip(ops, ops[1:] + [(None, None, len(data))]):
    raw = data[pos : nxt[2]]
    if op.name == "FRAME":
      continue  # Frames are optional; dropping them allows resizing strings.
    if isinstance(arg, str) and "numpy._core" in arg:
      new = arg.replace("numpy._core", "numpy.core")
      if op.name == "GLOBAL":
        raw = b"c" + new.replace(" ", "\n").encode() + b"\n"
      else:
        assert op.name == "SHORT_BINUNICODE", op.name
        raw = b"\x8c" + bytes([len(new)]) + new.encode()
    out.append(raw)
  result = b"".join(out)
  assert b"numpy._core" not in result and b"numpy.core" in result
  return result


def _write_handled_files(
  folder: pathlib.Path, pickled: bytes, id_map: dict | None = None
) -> tuple[pathlib.Path, pathlib.Path]:
  folder.mkdir(parents=True, exist_ok=True)
  pkl, js = folder / "toy.pkl", folder / "id_map.json"
  pkl.write_bytes(pickled)
  js.write_text(json.dumps(HANDLED_ID_MAP if id_map is None else id_map, indent=1))
  return pkl, js


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("numpy1", [False, True])
def test_handled_from_pickle_dumps(tmp_path, protocol, numpy1):
  data = pickle.dumps(_handled_seqs(), protocol=protocol)
  if numpy1:
    data = _as_numpy1_paths(data)
  pkl, js = _write_handled_files(tmp_path, data)
  ds = handled.read_handled(pkl, js)
  assert ds.name == "toy"
  assert (ds.num_items_a, ds.num_items_b, ds.num_users) == (3, 2, 3)
  np.testing.assert_array_equal(ds.sequence(0), [1, 5, 4, 3])
  np.testing.assert_array_equal(ds.sequence(1), [5, 1, 3])
  np.testing.assert_array_equal(ds.sequence(2), [3, 5])
  assert list(ds.user_ids) == ["ua", "ub", "uc"]
  assert list(ds.item_keys) == ["", "x1", "x2", "x3", "y1", "y2"]


def test_handled_numpy_scalar_keys_and_lists(tmp_path):
  inter, domain = _handled_seqs()
  inter = {np.int64(k): v.tolist() for k, v in inter.items()}
  domain = {np.int64(k): v.astype(np.int8) for k, v in domain.items()}
  pkl, js = _write_handled_files(tmp_path, pickle.dumps((inter, domain)))
  assert handled.read_handled(pkl, js).num_interactions == 9


class _RunsCode:
  """Pickles to a call of `fn(*args)`: what a malicious pickle does."""

  def __init__(self, fn, *args):
    self.fn, self.args = fn, args

  def __reduce__(self):
    return self.fn, self.args


@pytest.mark.parametrize(
  "make_payload, refused",
  [
    (lambda marker: _RunsCode(os.system, f"touch {marker}"), "system"),
    (lambda marker: _RunsCode(os.mkdir, str(marker)), "mkdir"),
    (lambda marker: _RunsCode(eval, f'open({str(marker)!r}, "w")'), "builtins.eval"),
  ],
)
def test_handled_refuses_malicious_pickle(tmp_path, make_payload, refused):
  marker = tmp_path / "marker"
  inter, domain = _handled_seqs()
  inter[1] = make_payload(marker)  # Hidden inside an otherwise valid pickle.
  pkl, js = _write_handled_files(tmp_path / "d", pickle.dumps((inter, domain)))
  with pytest.raises(DataError, match="only builtins and numpy arrays are allowed") as info:
    handled.read_handled(pkl, js)
  assert "refusing to load " in str(info.value) and refused in str(info.value)
  assert info.value.path == str(pkl)
  assert not marker.exists()  # Nothing ran.


def test_handled_malicious_payload_is_real(tmp_path):
  # The mkdir payload does run under the stock loader; the restricted one
  # refuses the very same bytes.
  marker = tmp_path / "marker"
  data = pickle.dumps(_RunsCode(os.mkdir, str(marker)))
  (tmp_path / "evil.pkl").write_bytes(data)
  with pytest.raises(DataError, match="refusing to load posix.mkdir"):
    safe_pickle.safe_load_pickle(tmp_path / "evil.pkl")
  assert not marker.exists()
  pickle.loads(data)  # The stock loader: creates the marker.
  assert marker.is_dir()


def test_handled_refuses_other_codecs(tmp_path):
  # Protocol <= 2 bytes go through _codecs.encode; only latin-1 is allowed.
  data = (
    b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00xX\x04\x00\x00\x00zlibq\x01\x86q\x02Rq\x03."
  )
  (tmp_path / "c.pkl").write_bytes(data)
  with pytest.raises(DataError, match="not a valid pickle.*latin1"):
    safe_pickle.safe_load_pickle(tmp_path / "c.pkl")


class _Reduces:
  """Pickles as `fn(*args)` followed by BUILD `state`."""

  def __init__(self, fn, args, state):
    self.fn, self.args, self.state = fn, args, state

  def __reduce__(self):
    return self.fn, self.args, self.state


# Found by fuzzing: inputs that crash or exhaust the stock C unpickler or
# numpy's own unpickling code. Each must be a quick DataError.
@pytest.mark.parametrize(
  "data, phrase",
  [
    # numpy's dtype.__setstate__ accepts an item size of -1; using that
    # dtype then segfaults.
    (
      pickle.dumps(_Reduces(np.dtype, ("i8", False, True), (3, "<", None, -1, -1, 0)), protocol=2),
      "expected that of a plain numeric dtype",
    ),
    # LONG_BINPUT 2**31-1: the C unpickler would allocate a 32 GB memo.
    (b"\x80\x02K\x01r\xff\xff\xff\x7f.", "memo index 2147483647"),
    # BYTEARRAY8 of 2**40 bytes: allocated before reading.
    (b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b"xx.", "only 3 remain"),
    # Only plain numeric arrays: no object or string dtypes.
    (pickle.dumps(np.array([1, "a"], dtype=object)), "plain numeric dtypes"),
    (pickle.dumps(np.array(["ab"])), "plain numeric dtypes"),
    # Array data that does not match its shape.
    (
      pickle.dumps(
        _Reduces(
          np.ndarray.__reduce__(np.zeros(2))[0],
          (np.ndarray, (0,), b"b"),
          (1, (3,), np.dtype("f8"), False, b"\0" * 16),
        )
      ),
      "16 data bytes for shape (3,)",
    ),
  ],
)
def test_handled_unsafe_pickles(tmp_path, data, phrase):
  (tmp_path / "x.pkl").write_bytes(data)
  with pytest.raises(DataError, match="not a valid pickle") as info:
    safe_pickle.safe_load_pickle(tmp_path / "x.pkl")
  assert phrase in str(info.value)


def test_handled_safe_load_keeps_values(tmp_path):
  cyclic = [np.arange(3, dtype=np.int16)]
  cyclic.append(cyclic)
  value = {
    "a": np.ones((2, 3), np.float32, order="F"),
    "b": (np.uint8(7),),
    "c": cyclic,
    "d": {1.5, "x"},
    "e": b"raw",
    "f": b"",
  }
  for protocol in (0, 2, 4, 5):
    (tmp_path / "x.pkl").write_bytes(pickle.dumps(value, protocol=protocol))
    got = safe_pickle.safe_load_pickle(tmp_path / "x.pkl")
    np.testing.assert_array_equal(got["a"], value["a"])
    assert got["a"].dtype == np.float32 and got["a"].flags.f_contiguous
    assert got["b"] == (7,) and got["b"][0].dtype == np.uint8
    np.testing.assert_array_equal(got["c"][0], [0, 1, 2])
    assert got["c"][1] is got["c"]
    assert (got["d"], got["e"], got["f"]) == ({1.5, "x"}, b"raw", b"")


@pytest.mark.parametrize(
  "change, phrase",
  [
    (lambda i, d: i.__setitem__(2, np.array([2, 4, 3])), "local id 4 in domain 0; expected 1..3"),
    (lambda i, d: i.__setitem__(2, np.array([2, 0, 3])), "local id 0"),
    (lambda i, d: d.__setitem__(2, np.array([1, 2, 0])), "domain flag 2"),
    (lambda i, d: d.__setitem__(2, np.array([1, 0])), "3 item ids but 2"),
    (lambda i, d: d.pop(2), "missing from domain_seq"),
    (
      lambda i, d: (
        i.__setitem__(2, np.array([], np.int64)),
        d.__setitem__(2, np.array([], np.int64)),
      ),
      "no interactions",
    ),
    (lambda i, d: i.__setitem__(2, np.array([1.0, 2.0, 3.0])), "expected a 1-D integer array"),
    (lambda i, d: i.__setitem__(2, np.array([[1, 2, 3]])), "expected a 1-D integer array"),
  ],
)
def test_handled_bad_user(tmp_path, change, phrase):
  inter, domain = _handled_seqs()
  change(inter, domain)
  pkl, js = _write_handled_files(tmp_path, pickle.dumps((inter, domain)))
  with pytest.raises(DataError) as info:
    handled.read_handled(pkl, js)
  assert info.value.path == str(pkl)
  assert info.value.key == "user 2"  # A pickle has no lines: the user.
  assert phrase in str(info.value)
  bad = BadLines("skip")
  ds = handled.read_handled(pkl, js, bad=bad)
  assert list(ds.user_ids) == ["ua", "uc"]
  assert bad.counts == {str(pkl): 1}


def test_handled_bad_user_ids(tmp_path):
  inter, domain = _handled_seqs()
  inter["7"], domain["7"] = np.array([1]), np.array([0])
  inter[9], domain[9] = np.array([1]), np.array([0])
  pkl, js = _write_handled_files(tmp_path, pickle.dumps((inter, domain)))
  bad = BadLines("skip")
  assert handled.read_handled(pkl, js, bad=bad).num_users == 3
  assert bad.total == 2
  assert "user '7'" in bad.examples[0] and "expected an integer" in (bad.examples[0])
  assert "not in id_map.json" in bad.examples[1]


@pytest.mark.parametrize(
  "edit, phrase",
  [
    (lambda m: m["item_dict"].pop("item_count"), "expected an object"),
    (lambda m: m["item_dict"]["item_count"].__setitem__("1", 0), "item_count['1'] = 0"),
    (lambda m: m["item_dict"]["0"]["id2str"].pop("2"), "item_dict['0'].id2str has 2 entries"),
    (lambda m: m["item_dict"]["1"]["id2str"].__setitem__("x", "y3"), "has 3 entries"),
    (lambda m: m.pop("user_dict"), "expected objects"),
  ],
)
def test_handled_bad_id_map(tmp_path, edit, phrase):
  id_map = json.loads(json.dumps(HANDLED_ID_MAP))
  edit(id_map)
  pkl, js = _write_handled_files(tmp_path, pickle.dumps(_handled_seqs()), id_map)
  with pytest.raises(DataError) as info:
    handled.read_handled(pkl, js, bad=BadLines("skip"))
  assert info.value.path == str(js)
  assert info.value.line is not None
  assert phrase in str(info.value)


@pytest.mark.parametrize(
  "data, phrase",
  [
    (b"garbage", "not a valid pickle"),
    (b"", "not a valid pickle"),
    (pickle.dumps([1, 2, 3]), "expected a pair"),
    (pickle.dumps(({}, {})), "no valid users"),
  ],
)
def test_handled_bad_pickle(tmp_path, data, phrase):
  pkl, js = _write_handled_files(tmp_path, data)
  with pytest.raises(DataError, match=phrase) as info:
    handled.read_handled(pkl, js)
  assert info.value.path == str(pkl)


def test_handled_round_trip(tmp_path):
  _write(tmp_path / "abxi", _abxi_files())
  ds = abxi.read_abxi(tmp_path / "abxi")
  handled.write_handled(ds, tmp_path / "h.pkl", tmp_path / "id_map.json")
  back = handled.read_handled(tmp_path / "h.pkl", tmp_path / "id_map.json")
  for field in ("offsets", "items", "domains", "user_ids", "item_keys"):
    np.testing.assert_array_equal(getattr(back, field), getattr(ds, field))
  assert back.timestamps is None  # The format has no times.
  # The map has the LLM4CDSR layout.
  id_map = json.loads((tmp_path / "id_map.json").read_text())
  assert id_map["item_dict"]["item_count"] == {"0": 3, "1": 2}
  assert id_map["item_dict"]["1"]["id2str"] == {"1": "b1", "2": "b2"}
  assert id_map["user_dict"]["str2id"] == {"u0": 1, "u1": 2, "u2": 3}


def test_handled_round_trip_real():
  ds = abxi.read_abxi(require_data("abxi-afk"))
  with tempfile.TemporaryDirectory() as tmp:
    pkl, js = pathlib.Path(tmp, "afk.pkl"), pathlib.Path(tmp, "id_map.json")
    handled.write_handled(ds, pkl, js)
    back = handled.read_handled(pkl, js)
  for field in ("offsets", "items", "user_ids", "item_keys"):
    np.testing.assert_array_equal(getattr(back, field), getattr(ds, field))


# ---------------------------------------------------------------- fuzz ----

_BYTES = st.one_of(st.integers(0, 255), st.sampled_from(list(b'0123456789|,\t\n :"[]{}-\xff')))
_MUTATION = st.one_of(
  st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
  st.tuples(st.just("insert"), st.integers(0, 10**6), _BYTES),
  st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 4)),
  st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
  st.tuples(st.just("dup_line"), st.integers(0, 10**6), st.just(0)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
  buf = bytearray(data)
  for kind, pos, arg in mutations:
    i = pos % (len(buf) + 1)
    if kind == "flip" and buf:
      buf[i % len(buf)] ^= 1 << arg
    elif kind == "insert":
      buf[i:i] = bytes([arg])
    elif kind == "delete":
      del buf[i : i + arg]
    elif kind == "truncate":
      del buf[i:]
    elif kind == "dup_line":
      lines = bytes(buf).splitlines(keepends=True)
      if lines:
        j = pos % len(lines)
        lines.insert(j, lines[j])
        buf = bytearray(b"".join(lines))
  return bytes(buf)


def _load_or_data_error(load, policy: str) -> None:
  try:
    ds = load(BadLines(policy))
  except DataError:
    return
  assert isinstance(ds, dataset.CDSRDataset)


@FUZZ
@hypothesis.given(
  name=st.sampled_from(sorted(_abxi_files())),
  mutations=st.lists(_MUTATION, min_size=1, max_size=4),
  policy=st.sampled_from(["error", "skip"]),
)
def test_fuzz_abxi(name, mutations, policy):
  files = _abxi_files()
  content = files[name]
  files[name] = _mutate(content if isinstance(content, bytes) else content.encode(), mutations)
  with tempfile.TemporaryDirectory() as tmp:
    _write(pathlib.Path(tmp), files)
    _load_or_data_error(lambda bad: abxi.read_abxi(tmp, bad=bad), policy)


@FUZZ
@hypothesis.given(
  name=st.sampled_from(sorted(LLMCDSR_FILES)),
  mutations=st.lists(_MUTATION, min_size=1, max_size=4),
  policy=st.sampled_from(["error", "skip"]),
)
def test_fuzz_llmcdsr(name, mutations, policy):
  files = dict(LLMCDSR_FILES)
  files[name] = _mutate(files[name].encode(), mutations)
  with tempfile.TemporaryDirectory() as tmp:
    _write(pathlib.Path(tmp), files)
    _load_or_data_error(lambda bad: llmcdsr.read_llmcdsr(tmp, bad=bad), policy)


@FUZZ
@hypothesis.given(
  target=st.sampled_from(["pickle", "id_map"]),
  protocol=st.sampled_from([2, 4, 5]),
  mutations=st.lists(_MUTATION, min_size=1, max_size=4),
  policy=st.sampled_from(["error", "skip"]),
)
def test_fuzz_handled(target, protocol, mutations, policy):
  data = pickle.dumps(_handled_seqs(), protocol=protocol)
  id_map = json.dumps(HANDLED_ID_MAP, indent=1).encode()
  if target == "pickle":
    data = _mutate(data, mutations)
  else:
    id_map = _mutate(id_map, mutations)
  with tempfile.TemporaryDirectory() as tmp:
    pkl, js = pathlib.Path(tmp, "x.pkl"), pathlib.Path(tmp, "id_map.json")
    pkl.write_bytes(data)
    js.write_bytes(id_map)
    _load_or_data_error(lambda bad: handled.read_handled(pkl, js, bad=bad), policy)
