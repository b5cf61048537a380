"""Declared evaluation protocols (eval.extra_negatives) and metric keys (metrics/keys.py)."""

import pytest

from orthoalign import errors
from orthoalign import evaluate
from orthoalign.config import validation
from orthoalign.metrics import keys
from tests.conftest import tiny_config
from tests.conftest import tiny_run


def test_keys_round_trip_and_order():
  for split, group, protocol in (
    ("test", "", "sampled"),
    ("valid", "switch", "sampled259"),
    ("test", "non-overlapped", "full"),
    ("", "stay", "sampled"),
  ):
    key = keys.metric_key(split, protocol, "A", "ndcg@10", group)
    assert keys.parse(key, with_split=bool(split)) == keys.MetricKey(
      split, group, protocol, "A", "ndcg@10"
    )
  for other in (
    "align/gca0_A/mean_cos",
    "test/sampled0/A/mrr",
    "test/bogus/A/mrr",
    "steps_per_s",
    "config.eval.ties",
    "test/sampled//mrr",
  ):
    assert keys.parse(other) is None
  # A domain is named by its dataset (CDSRDataset.domain_names), so any name parses.
  assert keys.parse("test/sampled/Kitchen/mrr").domain == "Kitchen"
  rows = [
    {
      "test/full/A/mrr": 1,
      "test/sampled259/A/mrr": 1,
      "test/sampled/A/mrr": 1,
      "test/sampled50/A/mrr": 1,
      "test/stay/sampled/all/count": 3,
      "test/overlapped/sampled/all/count": 4,
      "valid/sampled7/A/mrr": 1,
    }
  ]
  assert keys.row_protocols(rows) == ["sampled", "sampled50", "sampled259", "full"]
  assert keys.row_groups(rows) == ["overlapped", "stay"]


def test_select_metric_must_name_a_declared_protocol():
  cfg = tiny_config()
  cfg.train.select_metric = "valid/sampled40/all/ndcg@10"
  with pytest.raises(errors.ConfigError, match=r"valid/<sampled\|full>/"):
    validation.validate(cfg)
  cfg.eval.extra_negatives = (40,)
  validation.validate(cfg)
  for bad in ((40, 40), (0,), ("40",), (True,)):
    cfg.eval.extra_negatives = bad
    with pytest.raises(errors.ConfigError, match="eval.extra_negatives=.*distinct positive ints"):
      validation.validate(cfg)


def test_one_run_reports_every_declared_protocol(tmp_path, capsys):
  # LLM4CDSR without its independent-negatives quirk scores a candidate as full ranking does, so
  # an extra protocol with the main one's size and seed must give the main protocol's metrics.
  rows = tiny_run(
    tmp_path / "run",
    **{
      "eval.extra_negatives": (20, 30),
      "model.independent_negatives": False,
      "train.max_epochs": 2,
    },
  )
  row = rows[0]
  for split in ("valid", "test"):
    for dom in ("A", "B", "all"):
      for metric in ("ndcg@10", "hr@10", "mrr", "auc"):
        main = row[f"{split}/sampled/{dom}/{metric}"]
        assert row[f"{split}/sampled20/{dom}/{metric}"] == pytest.approx(main, abs=1e-6)
        assert 0.0 <= row[f"{split}/sampled30/{dom}/{metric}"] <= 1.0
    assert row[f"{split}/overlapped/sampled30/all/ndcg@10"] >= 0.0
  # More negatives, lower HR@10: 30 negatives rank the target no better than 20 in expectation.
  assert row["test/sampled30/all/hr@10"] < row["test/sampled20/all/hr@10"] + 0.05
  out = capsys.readouterr().out
  assert "sampled30 = target vs 30 (own frozen set" in out
  assert len([ln for ln in out.splitlines() if " sampled30 " in ln]) >= 3 + 2  # table + groups
  # A protocol declared after training: orthoalign.evaluate reports it for the trained run.
  again = evaluate.evaluate(str(tmp_path / "run"), ["eval.extra_negatives=(25,)"])
  assert "test/sampled25/all/ndcg@10" in again[0] and "test/sampled30/all/ndcg@10" not in again[0]
  assert again[0]["test/sampled/all/ndcg@10"] == pytest.approx(row["test/sampled/all/ndcg@10"])


def test_alignment_keys_are_built_and_parsed_in_one_place():
  key = keys.align_key(keys.cell_name(0, "Kitchen"), "mean_abs_cos")
  assert key == "align/gca0_Kitchen/mean_abs_cos"
  assert keys.parse_align(key) == ("gca0_Kitchen", "mean_abs_cos")
  for other in ("align/gca0_A", "align//x", "test/sampled/A/mrr", "align/a/b/c", "alignment/x/y"):
    assert keys.parse_align(other) is None, other
  assert keys.align_cells(["align/gca1_B/alpha", "align/gca0_A/alpha", "steps_per_s"]) == [
    "gca0_A",
    "gca1_B",
  ]
