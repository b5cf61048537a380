"""Tests for the dataset statistics and their CLI."""

import json

from conftest import require_data
import numpy as np
import pytest

from orthoalign.datasets import stats
from orthoalign.datasets import store
from orthoalign.datasets import summary
from orthoalign.datasets.dataset import USER_TEST
from orthoalign.datasets.dataset import USER_TRAIN
from orthoalign.datasets.dataset import USER_VALID
from orthoalign.datasets.dataset import CDSRDataset

# nA = 4 (ids 1..4), nB = 3 (ids 5..7).
TOY_SEQS = [[1, 5, 2, 6], [3, 4], [7, 6, 5], [2, 1, 3]]


def toy(**kwargs) -> CDSRDataset:
  return CDSRDataset.from_sequences("toy", 4, 3, [np.array(s) for s in TOY_SEQS], **kwargs)


def test_compute_leave_one_out():
  s = summary.compute(toy())
  assert (s["users"], s["overlapped_users"], s["a_only_users"], s["b_only_users"]) == (4, 1, 2, 1)
  assert (s["items_a"], s["items_b"]) == (4, 3)
  assert (s["interactions"], s["interactions_a"], s["interactions_b"]) == (12, 7, 5)
  assert s["length"] == pytest.approx(
    {"min": 2, "p25": 2.75, "p50": 3.0, "p75": 3.25, "p95": 3.85, "max": 4, "mean": 3.0}
  )
  # Switches: user 0 has 3 of 3 pairs, user 1 0 of 1, user 2 0 of 2, user 3 0 of 2.
  assert s["domain_switch_rate"] == pytest.approx(3 / 8)
  assert s["split"] == "leave-one-out" and "split_users" not in s
  assert s["targets"] == {
    "valid": {"A": 2, "B": 1, "total": 3},
    "test": {"A": 1, "B": 2, "total": 3},
  }
  json.dumps(s)  # Plain Python values only.


def test_compute_user_level():
  s = summary.compute(toy(user_split=[USER_TRAIN, USER_TRAIN, USER_VALID, USER_TEST]))
  assert s["split"] == "user-level"
  assert s["split_users"] == {"train": 2, "valid": 1, "test": 1}
  # Held-out users are scored on their last item: user 2 -> 5 (B), user 3 -> 3 (A).
  assert s["targets"] == {
    "valid": {"A": 0, "B": 1, "total": 1},
    "test": {"A": 1, "B": 0, "total": 1},
  }


def test_text_output():
  text = summary.format_text(summary.compute(toy()))
  assert "users:" in text and "4 (overlapped 1, A-only 2, B-only 1)" in text
  assert "min 2, p25 2.75, p50 3, p75 3.25, p95 3.85, max 4, mean 3.00" in text
  assert "test targets:  A 1, B 2 (total 3)" in text


def test_cli_prepared(tmp_path, capsys):
  store.save_dataset(toy(), tmp_path)
  assert stats.main(["--format=prepared", f"--path={tmp_path}"]) == 0
  assert "interactions:  12 (A 7, B 5)" in capsys.readouterr().out
  assert stats.main(["--format=prepared", f"--path={tmp_path}", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["targets"]["test"]["B"] == 2


def test_cli_synthetic_ignores_path(capsys):
  assert stats.main(["--format=synthetic", "--json"]) == 0
  assert json.loads(capsys.readouterr().out)["name"] == "synthetic"


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--format=nope", "--path=x"], "error: --format: unknown format 'nope'; valid formats: "),
    (["--format=prepared"], "error: --path: --format=prepared needs --path"),
    (
      ["--format=prepared", "--path=/nonexistent/store"],
      "error: data.path: expected a folder of prepared files, got '/nonexistent/store'",
    ),
  ],
)
def test_cli_errors(argv, message, capsys):
  assert stats.main(argv) == 1
  captured = capsys.readouterr()
  assert captured.err.startswith(message) and captured.out == ""


def test_cli_usage_error_exits_1(capsys):
  with pytest.raises(SystemExit) as exit_info:
    stats.main([])
  assert exit_info.value.code == 1
  assert "error: the following arguments are required: --format" in capsys.readouterr().err


def test_loaders_registry():
  assert {"prepared", "synthetic", "abxi", "llmcdsr", "handled"} <= set(stats.loaders())


def test_cli_abxi_matches_readme(capsys):
  path = require_data("abxi-afk")
  assert stats.main(["--format=abxi", f"--path={path}", "--json"]) == 0
  s = json.loads(capsys.readouterr().out)
  assert (s["users"], s["items_a"], s["items_b"], s["interactions"]) == (7144, 11837, 16258, 173548)
  assert s["targets"]["test"] == {"A": 2419, "B": 4725, "total": 7144}
  assert s["domain_switch_rate"] == pytest.approx(0.359, abs=5e-4)
