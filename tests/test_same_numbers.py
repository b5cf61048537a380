"""tools/same_numbers.py: what it compares (the runs themselves are too long for the suite)."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location(
  "same_numbers", os.path.join(ROOT, "tools", "same_numbers.py")
)
same_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(same_numbers)


def test_metrics_must_match_and_times_are_ignored():
  ref = [
    {
      "replica": 0,
      "test/sampled/A/ndcg@10": 0.25,
      "align/gca0_A/abs_mean_cos": 0.1,
      "params/total": 100,
      "wall_time_s": 5.0,
      "run": "a",
      "valid/x": None,
    }
  ]
  same = [dict(ref[0], wall_time_s=9.0, run="b")]
  assert same_numbers.compare(ref, same, 0.0) == ([], [], 5)
  off = [dict(ref[0], **{"align/gca0_A/abs_mean_cos": 0.1 + 1e-12})]
  diffs, _, _ = same_numbers.compare(ref, off, 0.0)
  assert len(diffs) == 1 and diffs[0].startswith(
    "replica 0 align/gca0_A/abs_mean_cos: 0.1 -> 0.1000"
  )
  assert same_numbers.compare(ref, off, 1e-9)[0] == []


def test_keys_of_one_side_are_listed_apart_and_replica_counts_must_match():
  ref = [{"replica": 0, "test/full/A/mrr": 0.5}]
  new = [{"replica": 0, "test/full/A/mrr": 0.5, "test/full/A/hr@1": 0.4}]
  diffs, apart, count = same_numbers.compare(ref, new, 0.0)
  assert diffs == [] and apart == ["only in the working tree: test/full/A/hr@1"] and count == 2
  assert same_numbers.compare(ref, ref + ref, 0.0)[0] == ["replicas: 1 -> 2"]
