"""Results -> pandas -> markdown tables (mean ± std over replicas)."""

import json

import numpy as np
import pytest

from orthoalign.analysis import report
from orthoalign.analysis import results
from orthoalign.errors import DataError


def _write_run(folder, seeds, base):
  folder.mkdir()
  rows = []
  for i, seed in enumerate(seeds):
    row = {
      "replica": i,
      "seed": seed,
      "params/total": 1000,
      "params/trainable": 900,
      "best_epoch": 3 + i,
      "wall_time_s": 12.0,
      "steps_per_s": 5.0,
      "backend": "cpu",
      "num_devices": 1,
      "config": {"eval.num_negatives": 999, "gca.positions": [0]},
      "align/gca0_A/abs_mean_cos": 0.1 * (i + 1),
      "align/gca0_A/alpha": 0.5,
    }
    for d in ("A", "B"):
      for m in results.RANK_METRICS:
        row[f"test/sampled/{d}/{m}"] = base + 0.01 * i
        row[f"test/full/{d}/{m}"] = base / 2
    rows.append(row)
  (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_mean_std_over_replicas(tmp_path):
  _write_run(tmp_path / "abxi", [3407, 0, 1], 0.2)
  df = results.load_runs([tmp_path / "abxi"])
  assert len(df) == 3 and set(df["run"]) == {"abxi"}
  stats = results.mean_std(df, ["test/sampled/A/mrr"])
  assert stats.loc["abxi", ("test/sampled/A/mrr", "mean")] == pytest.approx(0.21)
  assert stats.loc["abxi", ("test/sampled/A/mrr", "std")] == pytest.approx(
    np.std([0.2, 0.21, 0.22], ddof=1)
  )
  table = results.metric_table(df)
  assert "| abxi | A | 3 | 0.2100 ± 0.0100 |" in table


@pytest.mark.smoke
def test_report_end_to_end(tmp_path, capsys):
  _write_run(tmp_path / "abxi", [3407, 0], 0.2)
  _write_run(tmp_path / "abxi_gca_early", [3407, 0], 0.25)
  out = tmp_path / "r.md"
  assert (
    report.main(
      [str(tmp_path / "abxi"), str(tmp_path / "abxi_gca_early"), "--title=T", f"--out={out}"]
    )
    == 0
  )
  text = out.read_text()
  assert text.startswith("# T") and "999 negatives" in text and "abxi_gca_early" in text
  assert "| abxi | gca0_A | 0.1500 ± 0.0707 |" in text
  assert "| abxi | 2 | 1,000 | 900 | 3.5 |" in text


def test_missing_or_bad_results_named(tmp_path):
  with pytest.raises(DataError, match="results.jsonl: no results.jsonl"):
    results.load_runs([tmp_path])
  good = '{"replica": 0, "best_epoch": 3, "test/sampled/A/mrr": 0.5}'
  (tmp_path / "results.jsonl").write_text(good + "\nnot json\n")
  with pytest.raises(DataError, match=r"results.jsonl:2: expected one JSON object per line"):
    results.load_runs([tmp_path])
  damaged = {  # a hand-edited row: one line naming file, line and what was expected
    '{"replica": 0}': r"results.jsonl:1: the results row has no 'best_epoch'",
    '{"replica": 0, "best_epoch": 3, "config": 5}': r"results.jsonl:1: expected 'config' to be",
    '{"replica": 0, "best_epoch": 3, "test/sampled/A/mrr": "x"}': r":1: expected a number for 'te",
    "[1, 2]": r"results.jsonl:1: expected a JSON object",
  }
  for text, match in damaged.items():
    (tmp_path / "results.jsonl").write_text(text + "\n")
    with pytest.raises(DataError, match=match):
      results.load_runs([tmp_path])
