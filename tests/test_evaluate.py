"""orthoalign.evaluate: re-evaluating a run's best parameters, with and without protocol changes."""

import numpy as np
import pytest

from orthoalign import config_lib
from orthoalign import evaluate
from orthoalign.train import loop
from test_abxi import small_config


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


@pytest.mark.parametrize("override,message", [
    ("model.d_embed=8", "only evaluation settings may change"),
    ("eval.num_negatives=many", "expected a int"),
    ("eval.nope=1", "no such key"),
    ("eval.batch_size", "expected key=value"),
])
def test_bad_overrides_name_the_key(trained, override, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    evaluate.evaluate(trained[0], [override])
