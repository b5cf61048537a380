"""Training/eval windows of three-stream models, against hand-worked examples."""

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import windows


def _ds():
  # nA = 5, nB = 4: A ids 1..5, B ids 6..9.
  seqs = [
    np.array([1, 6, 2, 7, 3, 8, 9]),  # prefix (len-2) = 1 6 2 7 3
    np.array([6, 7, 1, 8, 2]),  # prefix = 6 7 1
    np.array([2, 3]),
  ]  # too short: never trained or evaluated
  return dataset_lib.CDSRDataset.from_sequences("toy", 5, 4, seqs)


def test_train_windows_hand_worked():
  w = windows.train_windows(_ds(), max_len=4)
  assert w["user"].tolist() == [0, 1]
  # User 0: window = last 5 of "1 6 2 7 3" = all; mixed inputs 1 6 2 7 -> targets 6 2 7 3.
  np.testing.assert_array_equal(w["seq"][0], [1, 6, 2, 7])
  np.testing.assert_array_equal(w["pos"][0], [6, 2, 7, 3])
  np.testing.assert_array_equal(w["positions"][0], [1, 2, 3, 4])
  np.testing.assert_array_equal(w["in_dom"][0], [0, 1, 0, 1])
  # A items of the window: 1 2 3 (window idx 0, 2, 4): inputs 1 2 -> targets 2 3.
  np.testing.assert_array_equal(w["seq_a"][0], [0, 0, 1, 2])
  np.testing.assert_array_equal(w["pos_a"][0], [0, 0, 2, 3])
  np.testing.assert_array_equal(w["time_a"][0], [-1, -1, 0, 2])
  # B items: 6 7 (idx 1, 3) -> local 1 2: input 1 -> target 2.
  np.testing.assert_array_equal(w["seq_b"][0], [0, 0, 0, 1])
  np.testing.assert_array_equal(w["pos_b"][0], [0, 0, 0, 2])
  # User 1: prefix 6 7 1: mixed 6 7 -> 7 1 (right-aligned in 4).
  np.testing.assert_array_equal(w["seq"][1], [0, 0, 6, 7])
  np.testing.assert_array_equal(w["pos"][1], [0, 0, 7, 1])
  np.testing.assert_array_equal(w["seq_a"][1], [0, 0, 0, 0])  # one A item: input nothing
  np.testing.assert_array_equal(w["hist"][1][-3:], [1, 6, 7])  # sorted, left-padded


def test_domain_targets_point_at_the_same_mixed_target():
  """pos_a[s] == pos[mix_idx_a[s]] (local vs global ids): the score-sum pairing of LLM4CDSR."""
  rng = np.random.default_rng(0)
  seqs = []
  for _ in range(50):
    n = rng.integers(3, 30)
    seqs.append(rng.permutation(np.arange(1, 41))[:n])
  ds = dataset_lib.CDSRDataset.from_sequences("rand", 20, 20, seqs)
  w = windows.train_windows(ds, max_len=12)
  for name, offset in (("a", 0), ("b", 20)):
    valid = w[f"pos_{name}"] > 0
    assert np.all((w[f"mix_idx_{name}"] >= 0) == valid)
    rows = np.nonzero(valid)
    mixed = w["pos"][rows[0], w[f"mix_idx_{name}"][rows]]
    np.testing.assert_array_equal(mixed, w[f"pos_{name}"][rows] + offset)


def test_eval_windows():
  ds = _ds()
  split = splits.eval_split(ds, "test")
  w = windows.eval_windows(ds, split, max_len=4)
  # User 0 test input = 1 6 2 7 3 8, target 9 (B).
  np.testing.assert_array_equal(w["seq"][0], [2, 7, 3, 8])
  assert w["target"][0] == 9 and w["domain"][0] == 1
  np.testing.assert_array_equal(w["seq_b"][0], [0, 0, 2, 3])
  np.testing.assert_array_equal(w["time_b"][0], [-1, -1, 1, 3])
  np.testing.assert_array_equal(w["hist"][0], [1, 2, 3, 6, 7, 8])
