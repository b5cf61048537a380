"""Tests of the IM-VAE / AMID open-world CSV reader (orthoalign/datasets/readers/imvae.py)."""

import collections
import pathlib

from conftest import require_data
import numpy as np
import pytest

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load
from orthoalign.datasets import splits
from orthoalign.datasets import summary
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import imvae
from orthoalign.errors import DataError

HEADER = "user_id,seq_d1,seq_d2,domain_id\n"
# Domain 1 ids used: 5, 7, 9 (-> A 1, 2, 3); domain 2 ids: 5, 8 (-> B 4, 5).
# Id 5 is in both domains (quirk a); user 10 has two rows (quirk b, as in the real files:
# identical lists, the other target domain); test user 10 also trains (quirk c).
TRAIN = (
  HEADER + '10,"[7, 5]","[8]",0\n'  # line 2: target d1 id 5
  '10,"[7, 5]","[8]",1\n'  # line 3: target d2 id 8
  '11,[],"[5, 8]",1\n'  # line 4: B-only
  '12,"[9, 7]",[],0\n'
)  # line 5: A-only
TEST = (
  HEADER + '10,"[7]","[5, 8]",1\n'  # line 2: seen user, target d2 id 8
  '20,"[9]",[],0\n'
)  # line 3: target only, no history


def write_pair(
  folder: pathlib.Path, train: str | bytes = TRAIN, test: str | bytes = TEST, pair: str = "toy"
) -> pathlib.Path:
  folder.mkdir(parents=True, exist_ok=True)
  for suffix, content in (("_train.csv", train), ("_test_csu.csv", test)):
    data = content.encode() if isinstance(content, str) else content
    (folder / f"{pair}{suffix}").write_bytes(data)
  return folder


def read(folder, **kw):
  kw.setdefault("valid_fraction", 0.0)
  return imvae.read_imvae(folder, **kw)


def test_mapping_layout_and_split(tmp_path):
  ds = read(write_pair(tmp_path / "toy-pair"))
  assert ds.name == "toy-pair"
  assert (ds.num_items_a, ds.num_items_b, ds.num_users) == (3, 2, 6)
  assert ds.merged_timeline is False and ds.timestamps is None
  # Separate, ascending id maps per domain; the original id is the item key.
  assert list(ds.item_keys) == ["", "5", "7", "9", "5", "8"]
  # Non-target domain's list first, then the target's, each in file order.
  expected = [[5, 2, 1], [2, 1, 5], [4, 5], [3, 2], [2, 4, 5], [3]]
  assert [ds.sequence(u).tolist() for u in range(6)] == expected
  assert ds.user_ids.tolist() == [10, 10, 11, 12, 10, 20] and ds.user_ids.dtype == np.int64
  np.testing.assert_array_equal(ds.user_split, [0, 0, 0, 0, 2, 2])
  test = splits.eval_split(ds, "test")
  # Row 5 is its target alone: no input, so the user-level rule leaves it out.
  np.testing.assert_array_equal(test.users, [4])
  np.testing.assert_array_equal(test.targets, [5])  # d2 id 8
  np.testing.assert_array_equal(test.target_domain, [1])
  np.testing.assert_array_equal(splits.train_lengths(ds), [3, 3, 2, 2, 0, 0])


def test_same_id_in_both_domains_is_two_items(tmp_path):
  """Quirk (a): id 5 of seq_d1 and id 5 of seq_d2 are different items."""
  ds = read(write_pair(tmp_path))
  a5, b5 = 1, ds.num_items_a + 1
  assert ds.item_keys[a5] == ds.item_keys[b5] == "5"
  np.testing.assert_array_equal(ds.to_local([a5, b5])[1], [0, 1])
  assert a5 in ds.sequence(0) and b5 in ds.sequence(2) and b5 not in ds.sequence(0)


def test_repeated_user_ids_stay_separate_rows(tmp_path):
  """Quirk (b): both rows of user 10 are examples; the carve moves them together."""
  ds = read(write_pair(tmp_path))
  assert np.sum(ds.user_ids[ds.user_split != dataset_lib.USER_TEST] == 10) == 2
  rows = TRAIN + "".join(f'{30 + u},"[7]","[8, 5]",1\n' for u in range(40))
  rows += "".join(f'{30 + u},"[7]","[8, 5]",0\n' for u in range(40))  # Every id twice.
  for seed in range(5):
    ds = read(write_pair(tmp_path / f"s{seed}", train=rows), valid_fraction=0.3, valid_seed=seed)
    train_file = ds.user_split != dataset_lib.USER_TEST
    for uid in np.unique(ds.user_ids[train_file]):
      assert len(set(ds.user_split[train_file & (ds.user_ids == uid)])) == 1


def test_test_users_seen_in_training_are_flagged(tmp_path):
  """Quirk (c): kept, and `user_in_train` marks them."""
  ds = read(write_pair(tmp_path))
  np.testing.assert_array_equal(ds.user_in_train, [0, 0, 0, 0, 1, 0])
  seen = ds.user_in_train[splits.eval_split(ds, "test").users]
  np.testing.assert_array_equal(seen, [True])


def test_validation_carve_is_seeded_and_spares_test_users(tmp_path):
  rows = TRAIN + "".join(f'{100 + u},"[7, 9]","[8]",{u % 2}\n' for u in range(97))
  folder = write_pair(tmp_path, train=rows)
  ds = read(folder, valid_fraction=0.2, valid_seed=3)
  valid = ds.user_split == dataset_lib.USER_VALID
  # 100 distinct training ids, 99 of them not in the test file: round(0.2 * 99) = 20 ids.
  assert len(np.unique(ds.user_ids[valid])) == 20
  assert 10 not in ds.user_ids[valid]  # a test-file user id is never carved
  assert not ds.user_in_train[valid].any()  # valid ids own no training rows
  again = read(folder, valid_fraction=0.2, valid_seed=3)
  np.testing.assert_array_equal(again.user_split, ds.user_split)
  other = read(folder, valid_fraction=0.2, valid_seed=4)
  assert not np.array_equal(other.user_split, ds.user_split)
  # Validation users are evaluated on their last item and never trained on.
  split = splits.eval_split(ds, "valid")
  np.testing.assert_array_equal(split.users, np.flatnonzero(valid))
  assert np.all(splits.train_lengths(ds)[valid] == 0)
  assert imvae.read_imvae(folder).user_split.tolist().count(dataset_lib.USER_VALID) == 10


@pytest.mark.parametrize(
  "kw, match",
  [
    ({"valid_fraction": 1.0}, "valid_fraction: 1.0 is outside"),
    ({"valid_fraction": -0.1}, "valid_fraction: -0.1 is outside"),
    ({"valid_fraction": True}, "valid_fraction: expected a number"),
    ({"valid_seed": -1}, "valid_seed: expected a non-negative int"),
    ({"valid_seed": 1.5}, "valid_seed: expected a non-negative int"),
  ],
)
def test_bad_parameters(tmp_path, kw, match):
  with pytest.raises(DataError, match=match):
    imvae.read_imvae(write_pair(tmp_path), **kw)


BAD_ROWS = [
  ('10,"[7, 5","[8]",0', "seq_d1 .* is not valid JSON"),
  ('10,"{""a"": 1}","[8]",0', "seq_d1 is a JSON dict; expected a JSON list"),
  ('10,"[7]","[8, -1]",1', "seq_d2 item 2: .*-1.* not a non-negative integer"),
  ('10,"[7]","[8, 2.0]",1', "seq_d2 item 2: .*2.0.* not a non-negative integer"),
  ('10,"[7]","[8, true]",1', "seq_d2 item 2: .*true"),
  ('10,"[07]","[8]",0', "seq_d1 .* is not valid JSON"),
  ('10,"[7]","[8]",2', "domain_id '2'; expected 0"),
  ('10,"[7]","[8]",x', "domain_id 'x'; expected 0"),
  ('10,"[7]",[],1', "domain_id is 1 but seq_d2 is empty"),
  ('10,[],"[8]",0', "domain_id is 0 but seq_d1 is empty"),
  ('10,"[7]","[8]"', "3 fields; expected 4"),
  ('10,"[7]","[8]",0,extra', "5 fields; expected 4"),
  ('u10,"[7]","[8]",0', "user_id 'u10' is not a non-negative integer"),
]


@pytest.mark.parametrize("row, match", BAD_ROWS)
def test_bad_row_names_file_and_line(tmp_path, row, match):
  write_pair(tmp_path, train=TRAIN + row + "\n")
  with pytest.raises(DataError, match=match) as err:
    read(tmp_path)
  assert err.value.path == str(tmp_path / "toy_train.csv") and err.value.line == 6
  assert str(err.value).startswith(f"{tmp_path / 'toy_train.csv'}:6: ")


def test_bad_rows_are_skipped_and_counted(tmp_path):
  rows = "".join(row + "\n" for row, _ in BAD_ROWS)
  write_pair(tmp_path, train=TRAIN + rows, test=TEST + "\n" + "\u00ff,[],[],0\n")
  bad = BadLines("skip")
  ds = read(tmp_path, bad=bad)
  assert ds.num_users == 6  # Only the good rows; blank lines are ignored.
  assert bad.counts == {
    str(tmp_path / "toy_train.csv"): len(BAD_ROWS),
    str(tmp_path / "toy_test_csu.csv"): 1,
  }


def test_non_utf8_line(tmp_path):
  write_pair(tmp_path, test=TEST.encode() + b'21,"[9]",[],0\xff\n')
  with pytest.raises(DataError, match="toy_test_csu.csv:4: byte 0xff .* not valid UTF-8"):
    read(tmp_path)


@pytest.mark.parametrize(
  "train, match",
  [
    ("", "toy_train.csv: empty file; expected the header"),
    ("user,seq_d1,seq_d2,domain_id\n10,[7],[],0\n", "toy_train.csv:1: header"),
    (HEADER, "toy_train.csv: no data rows"),
  ],
)
def test_fatal_file_errors(tmp_path, train, match):
  write_pair(tmp_path, train=train)
  with pytest.raises(DataError, match=match):
    read(tmp_path, bad=BadLines("skip"))  # Not skippable.


def test_all_rows_bad_under_skip_is_fatal(tmp_path):
  write_pair(tmp_path, test=HEADER + "1,[],[],0\n")
  with pytest.raises(DataError, match="toy_test_csu.csv: no data rows"):
    read(tmp_path, bad=BadLines("skip"))


def test_header_may_have_a_bom(tmp_path):
  write_pair(tmp_path, train="\ufeff" + TRAIN)
  assert read(tmp_path).num_users == 6


def test_domain_without_items(tmp_path):
  write_pair(tmp_path, train=HEADER + '1,"[3]",[],0\n', test=HEADER + '2,"[4]",[],0\n')
  with pytest.raises(DataError, match="no domain-2 \\(seq_d2\\) items"):
    read(tmp_path)


def test_file_pair_errors(tmp_path):
  with pytest.raises(DataError, match="not found"):
    read(tmp_path / "missing")
  folder = tmp_path / "f"
  folder.mkdir()
  (folder / "toy_train.csv").write_text(TRAIN)
  with pytest.raises(DataError, match=r"found 0 \*_test_csu.csv files \(none\); expected exactly"):
    read(folder)
  (folder / "toy_test_csu.csv").write_text(TEST)
  (folder / "toy_train_updated.csv").write_text("ignored")  # The `_updated` variants are ignored.
  (folder / "README.md").write_text("ignored")
  assert read(folder).num_users == 6
  (folder / "other_train.csv").write_text(TRAIN)
  with pytest.raises(
    DataError,
    match=r"found 2 \*_train.csv files \(other_train.csv, "
    "toy_train.csv\\)",
  ):
    read(folder)
  (folder / "toy_train.csv").unlink()
  with pytest.raises(DataError, match="other_train.csv and toy_test_csu.csv name different pairs"):
    read(folder)


def test_stats_show_the_missing_timeline(tmp_path):
  s = summary.compute(read(write_pair(tmp_path)))
  assert s["merged_timeline"] is False
  assert s["held_out_in_train"] == {"valid": 0, "test": 1}
  text = summary.format_text(s)
  assert "timeline:      NOT merged" in text
  assert "in training:   valid 0, test 1 held-out users also have training rows" in text


def test_load_through_cache(tmp_path, capsys):
  folder = write_pair(tmp_path / "data")
  cache = str(tmp_path / "cache")
  ds = data_load.load_path("imvae", str(folder), cache_dir=cache)
  assert "building dataset" in capsys.readouterr().err
  again = data_load.load_path("imvae", str(folder), cache_dir=cache)
  assert "loaded cached" in capsys.readouterr().err
  assert again.merged_timeline is False
  for field in ("items", "offsets", "user_split", "user_in_train", "user_ids"):
    np.testing.assert_array_equal(getattr(again, field), getattr(ds, field))
  data_load.load_path("imvae", str(folder), cache_dir=cache, reader_options={"valid_seed": 1})
  assert "params['reader_options'] changed" in capsys.readouterr().err


# ---------------------------------------------------------------- real data ----

# From the README files under ../shared/data/imvae-*: per file, rows, rows with both domains,
# d1 only, d2 only, distinct d1 items, distinct d2 items, interactions, share of targets in d2.
README = {
  "imvae-phone-elec": {
    "train": (16092, 5971, 3750, 6371, 6978, 27298, 179791, 0.58),
    "test": (4024, 1509, 892, 1623, 4777, 14248, 42086, 0.59),
    "distinct_train_users": 15472,
    "test_users_in_train": 312,
    "shared_ids": 322,
    "max_id": 40717,
    "train_mean_list_lengths": (3.3, 7.9),
  },
  "imvae-cloth-sport": {
    "train": (18537, 5942, 6422, 6173, 13420, 10770, 138605, 0.49),
    "test": (4635, 1542, 1626, 1467, 7873, 7472, 32742, 0.48),
    "test_users_in_train": 609,
    "shared_ids": 638,
    "max_id": 24506,
  },
}


def file_stats(ds, rows):
  """The README's per-file columns, recomputed from the dataset rows `rows` (bool [U])."""
  users = np.flatnonzero(rows)
  seqs = [ds.sequence(u) for u in users]
  has_b = np.array([np.any(s > ds.num_items_a) for s in seqs])
  has_a = np.array([np.any(s <= ds.num_items_a) for s in seqs])
  items = np.unique(np.concatenate(seqs))
  last = np.array([s[-1] for s in seqs])
  return (
    len(users),
    int(np.sum(has_a & has_b)),
    int(np.sum(~has_b)),
    int(np.sum(~has_a)),
    int(np.sum(items <= ds.num_items_a)),
    int(np.sum(items > ds.num_items_a)),
    int(sum(len(s) for s in seqs)),
    round(float(np.mean(last > ds.num_items_a)), 2),
  )


@pytest.mark.parametrize("name", sorted(README))
def test_real_folders_match_readme(name):
  path = require_data(name)
  ds = imvae.read_imvae(path)
  expected = README[name]
  train_file = ds.user_split != dataset_lib.USER_TEST
  test_file = ds.user_split == dataset_lib.USER_TEST
  assert file_stats(ds, train_file) == expected["train"]
  assert file_stats(ds, test_file) == expected["test"]
  if "distinct_train_users" in expected:
    assert len(np.unique(ds.user_ids[train_file])) == expected["distinct_train_users"]
  if "train_mean_list_lengths" in expected:
    in_train = np.repeat(train_file, ds.lengths)
    mean_b = ds.domains[in_train].sum() / train_file.sum()
    mean_a = in_train.sum() / train_file.sum() - mean_b
    assert (round(mean_a, 1), round(mean_b, 1)) == expected["train_mean_list_lengths"]
  assert len(np.unique(ds.user_ids[ds.user_in_train])) == expected["test_users_in_train"]
  assert not ds.user_in_train[ds.user_split == dataset_lib.USER_VALID].any()
  assert max(int(k) for k in ds.item_keys[1:]) == expected["max_id"]
  # Ids in both domains' lists, over the training file.
  train_items = np.unique(np.concatenate([ds.sequence(u) for u in np.flatnonzero(train_file)]))
  key_a = {ds.item_keys[g] for g in train_items if g <= ds.num_items_a}
  key_b = {ds.item_keys[g] for g in train_items if g > ds.num_items_a}
  assert len(key_a & key_b) == expected["shared_ids"]
  # The seeded carve: about 10 % of the eligible training ids.
  eligible = np.setdiff1d(ds.user_ids[train_file], ds.user_ids[test_file])
  valid_ids = np.unique(ds.user_ids[ds.user_split == dataset_lib.USER_VALID])
  assert len(valid_ids) == round(0.1 * len(eligible))
  assert np.all(splits.train_lengths(ds)[ds.user_split != dataset_lib.USER_TRAIN] == 0)
  counts = collections.Counter(ds.user_split.tolist())
  assert counts[dataset_lib.USER_TEST] == expected["test"][0]
