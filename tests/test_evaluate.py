"""orthoalign.evaluate: re-evaluating a run's best parameters, with and without protocol changes."""

import numpy as np
import pytest
from test_abxi import small_config

from orthoalign import errors
from orthoalign import evaluate
from orthoalign.train import loop


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  cfg = small_config()
  cfg.train.update(max_epochs=3, warmup_epochs=0)
  cfg.sweep.seeds = (0, 1)
  workdir = str(tmp_path_factory.mktemp("eval") / "abxi")
  return workdir, loop.train_and_evaluate(cfg, workdir)


def test_reproduces_the_runs_test_metrics(trained):
  workdir, rows = trained
  again = evaluate.evaluate(workdir)
  assert len(again) == 2 and again[0]["overrides"] == {}
  keys = [k for k in rows[0] if k.startswith("test/")]
  assert len(keys) > 20
  for a, b in zip(rows, again):
    assert b["seed"] == a["seed"] and b["best_epoch"] == a["best_epoch"]
    np.testing.assert_allclose([b[k] for k in keys], [a[k] for k in keys], rtol=1e-5, atol=1e-7)


def test_protocol_override_changes_the_metrics(trained):
  workdir, rows = trained
  compact = evaluate.evaluate(workdir, ["model.eval_domain_seq=compact"])
  assert compact[0]["overrides"] == {"model.eval_domain_seq": "compact"}
  diff = [abs(compact[0][k] - rows[0][k]) for k in rows[0] if k.startswith("test/sampled/")]
  assert max(diff) > 1e-4
  fewer = evaluate.evaluate(workdir, ["eval.num_negatives=5"])
  assert fewer[0]["test/sampled/all/hr@10"] == pytest.approx(1.0)  # 1 + 5 candidates: rank <= 6
  assert fewer[0]["test/full/all/mrr"] == pytest.approx(rows[0]["test/full/all/mrr"], rel=1e-5)


@pytest.mark.parametrize(
  "override,message",
  [
    ("model.width=8", "only evaluation settings may change"),
    (
      "eval.num_negatives=many",
      r"eval.num_negatives='many' \(in --set eval.num_negatives=many\): "
      "expected a value of type int",
    ),
    (
      "eval.nope=1",
      r"unknown config key 'eval.nope' \(in --set eval.nope=1\); valid keys under eval",
    ),
    ("eval.batch_size", "expected key=value"),
  ],
)
def test_bad_overrides_name_the_key(trained, override, message):
  with pytest.raises(errors.ConfigError, match=message):
    evaluate.evaluate(trained[0], [override])


def test_set_parses_values_like_config_flags():
  """--set values parse as --config.<key> flags do (dicts.parse_value), without a run."""
  import ml_collections

  config = ml_collections.ConfigDict(
    {
      "eval": {"num_negatives": 99, "exact": False, "ks": (1, 5)},
      "model": {"name": "abxi", "eval_domain_seq": "full", "width": 8},
    }
  )
  keys = evaluate.apply_overrides(
    config,
    ["eval.num_negatives=0x10", "eval.exact=t", "eval.ks=(1,10)", "model.eval_domain_seq=compact"],
  )
  assert keys == ["eval.num_negatives", "eval.exact", "eval.ks", "model.eval_domain_seq"]
  assert (config.eval.num_negatives, config.eval.exact, config.eval.ks) == (16, True, (1, 10))
  assert config.model.eval_domain_seq == "compact"
  with pytest.raises(errors.ConfigError, match="eval.exact='yes'.*expected a value of type bool"):
    evaluate.apply_overrides(config, ["eval.exact=yes"])  # was silently False


def test_out_may_not_replace_the_runs_own_files(tmp_path):
  """--out=<workdir>/results.jsonl replaced the training rows, after which the run could not be
  read; a folder or a path through a file failed after the evaluation.
  """
  from orthoalign import errors

  with pytest.raises(errors.ConfigError, match="would replace the run's own results.jsonl"):
    evaluate.check_out(str(tmp_path), str(tmp_path / "results.jsonl"))
  with pytest.raises(errors.ConfigError, match="is a folder"):
    evaluate.check_out(str(tmp_path), str(tmp_path))
  (tmp_path / "afile").write_text("x")
  with pytest.raises(errors.RunError, match="cannot write the evaluation rows"):
    evaluate.check_out(str(tmp_path), str(tmp_path / "afile" / "rows.jsonl"))
  evaluate.check_out(str(tmp_path), str(tmp_path / "eval.jsonl"))


def test_each_model_declares_its_own_evaluation_settings():
  """--set may change a model's scoring-only keys (Baseline.EVAL_SETTINGS), no other model key."""
  import ml_collections

  config = ml_collections.ConfigDict({"model": {"name": "merit", "eval_stream": "swapped"}})
  assert evaluate.apply_overrides(config, ["model.eval_stream=own"]) == ["model.eval_stream"]
  assert config.model.eval_stream == "own"
  config.model.positions = "rotated"
  with pytest.raises(
    errors.ConfigError, match=r"--set model.positions: .*eval\.\*, model.eval_stream"
  ):
    evaluate.apply_overrides(config, ["model.positions=own"])
