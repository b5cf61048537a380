"""Tests for CDSRDataset, the leave-one-out split and frozen candidates."""

import numpy as np
import pytest

from orthoalign.datasets import splits
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.splits import eval_split
from orthoalign.datasets.splits import train_lengths
from orthoalign.errors import DataError
from orthoalign.inputs import candidates
from orthoalign.inputs.candidates import history_matrix
from orthoalign.inputs.candidates import sample_candidates

# nA = 4 (ids 1..4), nB = 3 (ids 5..7).
TOY_SEQS = [
  [1, 5, 2, 6],  # Overlapped.
  [3, 4],  # A-only, too short to evaluate.
  [7, 6, 5],  # B-only.
  [2, 1, 3],  # A-only.
]


def toy(**kwargs) -> CDSRDataset:
  return CDSRDataset.from_sequences("toy", 4, 3, [np.array(s) for s in TOY_SEQS], **kwargs)


def toy_arrays() -> dict:
  ds = toy()
  return dict(
    name="toy",
    num_items_a=4,
    num_items_b=3,
    offsets=ds.offsets.copy(),
    items=ds.items.copy(),
    domains=ds.domains.copy(),
  )


def random_dataset(num_users=300, n_a=60, n_b=40, seed=0) -> CDSRDataset:
  rng = np.random.default_rng(seed)
  seqs = []
  for _ in range(num_users):
    length = rng.integers(1, 25)
    pool = rng.permutation(n_a + n_b)[:length] + 1
    seqs.append(pool)
  return CDSRDataset.from_sequences("random", n_a, n_b, seqs)


class TestErrors:
  def test_message_has_location(self):
    e = DataError("expected 3 columns", path="x/train.txt", line=7, key="user 12")
    assert str(e) == "x/train.txt:7: user 12: expected 3 columns"
    assert (e.path, e.line, e.key) == ("x/train.txt", 7, "user 12")
    assert isinstance(e, ValueError)
    assert str(DataError("bad")) == "bad"


class TestDataset:
  def test_from_sequences_round_trip(self):
    ds = toy()
    assert ds.num_users == 4 and ds.num_items == 7
    assert ds.offsets.tolist() == [0, 4, 6, 9, 12]
    assert ds.offsets.dtype == np.int64 and ds.items.dtype == np.int32
    assert ds.domains.dtype == np.int8
    assert ds.domains.tolist() == [0, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 0]
    assert ds.lengths.tolist() == [4, 2, 3, 3]
    for u, s in enumerate(TOY_SEQS):
      assert ds.sequence(u).tolist() == s
    with pytest.raises(IndexError):
      ds.sequence(4)

  def test_arrays_are_read_only(self):
    ds = toy()
    with pytest.raises(ValueError):
      ds.items[0] = 2

  def test_optional_fields(self):
    ts = [np.arange(len(s)) * 10 for s in TOY_SEQS]
    emb = np.zeros((8, 3))
    emb[1:] = 1.0
    ds = toy(timestamps=ts, item_text_emb=emb, user_ids=["a", "b", "c", "d"])
    assert ds.timestamps.dtype == np.int64
    assert ds.item_text_emb.dtype == np.float32
    assert ds.user_ids.tolist() == ["a", "b", "c", "d"]

  def test_summary(self):
    assert toy().summary() == {
      "name": "toy",
      "users": 4,
      "overlapped_users": 1,
      "a_only_users": 2,
      "b_only_users": 1,
      "items_a": 4,
      "items_b": 3,
      "interactions": 12,
      "interactions_a": 7,
      "interactions_b": 5,
      "mean_length": 3.0,
      # Only user 0 switches (3 of its 3 pairs); 8 same-user pairs in all.
      "domain_switch_rate": 3 / 8,
    }

  def test_to_local(self):
    local, dom = toy().to_local(np.array([[0, 1, 4], [5, 7, 0]]))
    assert local.tolist() == [[0, 1, 4], [1, 3, 0]]
    assert dom.tolist() == [[-1, 0, 0], [1, 1, -1]]
    with pytest.raises(DataError, match="out of range"):
      toy().to_local([8])


def _with(**changes) -> dict:
  arrays = toy_arrays()
  for key, value in changes.items():
    arrays[key] = value(arrays) if callable(value) else value
  return arrays


def _set(field, index, value):
  def change(arrays):
    arr = arrays[field].copy()
    arr[index] = value
    return arr

  return change


BAD_TS = np.array([0, 1, 2, 3, 0, 1, 5, 4, 6, 0, 0, 0])


@pytest.mark.parametrize(
  "arrays, pattern",
  [
    (_with(items=_set("items", 2, 0)), r"user 0, position 2\): item id 0 out of range"),
    (
      _with(items=_set("items", 7, 8), domains=_set("domains", 7, 1)),
      r"user 2.*item id 8 out of range; expected 1\.\.7",
    ),
    (_with(domains=_set("domains", 1, 0)), r"domain 0 disagrees with item id 5"),
    (_with(domains=np.zeros(11, np.int8)), r"len\(domains\) = 11"),
    (_with(offsets=np.array([0, 4, 3, 9, 12])), r"offsets not monotone"),
    (_with(offsets=np.array([0, 4, 6, 9, 11])), r"len\(items\) = 12"),
    (_with(offsets=np.array([1, 4, 6, 9, 12])), r"offsets\[0\] == 0"),
    (_with(offsets=np.array([0, 4, 4, 6, 9, 12])), r"user 1: empty sequence"),
    (_with(timestamps=BAD_TS), r"user 2, position 1\): timestamp 4 < previous 5"),
    (_with(timestamps=np.zeros(11, np.int64)), r"len\(timestamps\) = 11"),
    (_with(item_text_emb=np.zeros((7, 4))), r"item_text_emb: shape \(7, 4\)"),
    (_with(item_text_emb=np.ones((8, 4))), r"row 0 \(padding\) must be all zeros"),
    (_with(item_text_emb=np.full((8, 4), np.nan)), r"non-finite"),
    (_with(user_ids=np.arange(3)), r"user_ids.*expected \[4\]"),
    (_with(items=np.full(12, 1.5)), r"items: expected integers"),
    (_with(num_items_b=0), r"num_items_b: expected >= 1"),
  ],
)
def test_validate_catches(arrays, pattern):
  with pytest.raises(DataError, match=pattern) as info:
    CDSRDataset(**arrays)
  assert "dataset 'toy'" in str(info.value)


def test_timestamps_may_drop_across_users():
  ts = np.array([5, 6, 7, 8, 0, 1, 0, 0, 0, 3, 3, 4])  # Ties are fine too.
  CDSRDataset(**_with(timestamps=ts))


def test_from_sequences_checks_timestamp_lengths():
  with pytest.raises(DataError, match="user 1: 1 timestamps for 2 items"):
    toy(timestamps=[np.arange(4), np.arange(1), np.arange(3), np.arange(3)])


class TestSplit:
  def test_test_split(self):
    sp = eval_split(toy(), "test")
    assert sp.name == "test"
    assert sp.users.tolist() == [0, 2, 3]  # User 1 has only 2 items.
    assert sp.targets.tolist() == [6, 5, 3]
    assert sp.target_domain.tolist() == [1, 1, 0]
    assert sp.input_len.tolist() == [3, 2, 2]

  def test_valid_split(self):
    sp = eval_split(toy(), "valid")
    assert sp.users.tolist() == [0, 2, 3]
    assert sp.targets.tolist() == [2, 6, 1]
    assert sp.target_domain.tolist() == [0, 1, 0]
    assert sp.input_len.tolist() == [2, 1, 1]

  def test_target_follows_input(self):
    ds = random_dataset()
    for name in ("valid", "test"):
      sp = eval_split(ds, name)
      for u, t, n in zip(sp.users, sp.targets, sp.input_len):
        assert ds.sequence(u)[n] == t

  def test_train_lengths(self):
    assert train_lengths(toy()).tolist() == [2, 0, 1, 1]

  def test_unknown_split(self):
    with pytest.raises(ValueError, match="split"):
      eval_split(toy(), "train")


class TestCandidates:
  def check(self, ds, sp, cands, n):
    assert cands.shape == (sp.users.shape[0], 1 + n)
    assert cands.dtype == np.int32
    np.testing.assert_array_equal(cands[:, 0], sp.targets)
    for row, u, d in zip(cands, sp.users, sp.target_domain):
      neg = row[1:]
      assert len(set(neg.tolist())) == n
      assert np.all((neg > ds.num_items_a) == bool(d))
      assert np.all((neg >= 1) & (neg <= ds.num_items))
      assert not set(neg.tolist()) & set(ds.sequence(u).tolist())

  @pytest.mark.parametrize("split", ["valid", "test"])
  def test_properties(self, split):
    ds = random_dataset()
    sp = eval_split(ds, split)
    self.check(ds, sp, sample_candidates(ds, sp, 15, seed=3), 15)

  def test_deterministic_per_seed_and_split(self):
    ds = random_dataset()
    test, valid = eval_split(ds, "test"), eval_split(ds, "valid")
    a = sample_candidates(ds, test, 15, seed=3)
    np.testing.assert_array_equal(a, sample_candidates(ds, test, 15, seed=3))
    assert not np.array_equal(a, sample_candidates(ds, test, 15, seed=4))
    assert not np.array_equal(a[:, 1:], sample_candidates(ds, valid, 15, seed=3)[:, 1:])

  def test_uniform(self):
    # Same sequence for every user; the B target leaves B items 23..30 (8 of
    # them) eligible, so each should appear in 5/8 of the lists, and in each
    # single column 1/8 of the time.
    seqs = [np.array([1, 2, 21, 3, 22])] * 4000
    ds = CDSRDataset.from_sequences("u", 20, 10, seqs)
    cands = sample_candidates(ds, eval_split(ds, "test"), 5, seed=0)
    assert set(np.unique(cands[:, 1:]).tolist()) == set(range(23, 31))
    freq = np.bincount(cands[:, 1:].ravel(), minlength=31)[23:]
    np.testing.assert_allclose(freq, 4000 * 5 / 8, rtol=0.05)
    for col in range(1, 6):
      per_column = np.bincount(cands[:, col], minlength=31)[23:]
      np.testing.assert_allclose(per_column, 4000 / 8, rtol=0.2)

  def test_fallback_path(self, monkeypatch):
    # Too few draws per row forces most rows through the exact fallback.
    monkeypatch.setattr(
      candidates, "_draws_needed", lambda eligible, n_d, n: np.full(eligible.shape, n)
    )
    ds = random_dataset()
    sp = eval_split(ds, "test")
    self.check(ds, sp, sample_candidates(ds, sp, 15, seed=1), 15)

  def test_large_is_fast_enough(self):
    ds = random_dataset(num_users=3000, n_a=2000, n_b=1500)
    sp = eval_split(ds, "test")
    cands = sample_candidates(ds, sp, 999, seed=0)
    self.check(ds, eval_split(ds, "test"), cands, 999)

  def test_domain_too_small(self):
    ds = toy()
    sp = eval_split(ds, "test")
    # User 2 (B target) has all 3 B items in its sequence: 0 eligible.
    with pytest.raises(
      DataError,
      match=r"user 2.*domain B has 3 items, 3 of "
      r"them .* leaving 0 eligible items, fewer than the 1 negatives asked for",
    ):
      sample_candidates(ds, sp, 1, seed=0)

  def test_zero_negatives(self):
    ds = toy()
    sp = eval_split(ds, "test")
    assert sample_candidates(ds, sp, 0, seed=0).tolist() == [[6], [5], [3]]


class TestHistoryMatrix:
  def test_contents(self):
    ds = CDSRDataset.from_sequences("h", 4, 3, [np.array([3, 5, 1]), np.array([2])])
    np.testing.assert_array_equal(history_matrix(ds), [[1, 3, 5], [2, 0, 0]])
    assert history_matrix(ds, max_len=5).shape == (2, 5)
    assert history_matrix(ds).dtype == np.int32

  def test_repeats_are_collapsed(self):
    ds = CDSRDataset.from_sequences("h", 4, 3, [np.array([3, 3, 1])])
    np.testing.assert_array_equal(history_matrix(ds), [[1, 3]])

  def test_too_narrow(self):
    with pytest.raises(DataError, match="user 0: 4 distinct items but max_len = 3"):
      history_matrix(toy(), max_len=3)


def test_user_level_split():
  """LLMCDSR-style data: held-out users are evaluated on their last item, never trained on."""
  from orthoalign.datasets import dataset as dataset_lib

  seqs = [np.array([1, 6, 2]), np.array([6, 7, 1, 8]), np.array([2, 9]), np.array([3, 7, 4])]
  ds = dataset_lib.CDSRDataset.from_sequences(
    "split",
    5,
    4,
    seqs,
    user_split=[
      dataset_lib.USER_TRAIN,
      dataset_lib.USER_VALID,
      dataset_lib.USER_TEST,
      dataset_lib.USER_TEST,
    ],
  )
  np.testing.assert_array_equal(splits.train_lengths(ds), [3, 0, 0, 0])
  valid = splits.eval_split(ds, "valid")
  np.testing.assert_array_equal(valid.users, [1])
  np.testing.assert_array_equal(valid.targets, [8])
  np.testing.assert_array_equal(valid.input_len, [3])
  test = splits.eval_split(ds, "test")
  np.testing.assert_array_equal(test.users, [2, 3])
  np.testing.assert_array_equal(test.targets, [9, 4])
  np.testing.assert_array_equal(test.target_domain, [1, 0])
  with pytest.raises(DataError, match="user_split"):
    dataset_lib.CDSRDataset.from_sequences("bad", 5, 4, seqs, user_split=[0, 1, 2, 7])


def test_overlapped_users():
  from orthoalign.datasets.splits import overlapped_users

  flags = overlapped_users(toy())
  np.testing.assert_array_equal(flags, [True, False, False, False])
  assert flags.dtype == np.bool_
  assert int(flags.sum()) == toy().summary()["overlapped_users"]
  # A single item of the other domain, anywhere in the sequence (target included), counts.
  ds = CDSRDataset.from_sequences("o", 4, 3, [np.array([1, 2, 7]), np.array([5]), np.array([6, 3])])
  np.testing.assert_array_equal(overlapped_users(ds), [True, False, True])
  empty = CDSRDataset.from_sequences("e", 4, 3, [])
  assert overlapped_users(empty).shape == (0,)


def test_merged_timeline_flag():
  assert toy().merged_timeline is True
  ds = toy(merged_timeline=False)
  assert ds.merged_timeline is False
  assert CDSRDataset(**toy_arrays(), merged_timeline=np.bool_(False)).merged_timeline is False
  with pytest.raises(DataError, match="dataset 'toy', merged_timeline: expected a bool, got 0"):
    toy(merged_timeline=0)


def test_user_in_train():
  from orthoalign.datasets.dataset import USER_TEST
  from orthoalign.datasets.dataset import USER_TRAIN
  from orthoalign.datasets.dataset import USER_VALID

  split = [USER_TRAIN, USER_TRAIN, USER_VALID, USER_TEST]
  ds = toy(user_split=split, user_in_train=[0, 0, 0, 1])
  np.testing.assert_array_equal(ds.user_in_train, [False, False, False, True])
  assert ds.user_in_train.dtype == np.bool_ and not ds.user_in_train.flags.writeable
  with pytest.raises(DataError, match="user_in_train: set without a user_split"):
    toy(user_in_train=[False] * 4)
  with pytest.raises(DataError, match=r"user_in_train: shape \(3,\); expected \[4\]"):
    toy(user_split=split, user_in_train=[False] * 3)
  with pytest.raises(DataError, match="user_in_train: True for training user 1"):
    toy(user_split=split, user_in_train=[False, True, False, False])
  with pytest.raises(DataError, match=r"user_in_train: expected bools \(or integers 0/1\)"):
    toy(user_split=split, user_in_train=[0, 0, 2, 0])
  with pytest.raises(DataError, match="user_in_train: expected bools, got dtype float64"):
    toy(user_split=split, user_in_train=[0.0, 0.0, 1.0, 0.0])
