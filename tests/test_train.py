"""End-to-end training: outputs, replicas vs standalone runs, data parallel, resume, divergence."""

import json
import os

from conftest import tiny_run
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from orthoalign import errors
from orthoalign.train import build
from orthoalign.train import loop
from orthoalign.train import metric_writer
from orthoalign.train import results
from orthoalign.train import step as step_lib

METRICS = (
  "train/loss",
  "train/rec_loss",
  "valid/sampled/all/ndcg@10",
  "test/sampled/A/ndcg@10",
  "test/full/B/mrr",
  "test/sampled/all/auc",
  "align/gca0_A/abs_mean_cos",
  "align/gca0_B/alpha",
)


run = tiny_run


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("base")
  return workdir, run(workdir, **{"sweep.seeds": (0, 1), "train.max_epochs": 3})


def test_outputs(baseline):
  workdir, rows = baseline
  assert len(rows) == 2
  files = os.listdir(workdir)
  assert {"config.json", "results.jsonl", "checkpoints", "tb"} <= set(files)
  with open(workdir / "results.jsonl") as f:
    disk = [json.loads(line) for line in f]
  assert [r["seed"] for r in disk] == [0, 1]
  for row in disk:
    for key in METRICS:
      assert key in row and row[key] is not None, key
    assert 0.0 <= row["test/sampled/all/auc"] <= 1.0
    assert row["params/total"] > row["params/trainable"] > 0
    assert 1 <= row["best_epoch"] <= 3
    assert row["config"]["gca.positions"] == [0]
  assert os.listdir(workdir / "tb")
  with open(workdir / "config.json") as f:
    assert json.load(f)["model"]["name"] == "llm4cdsr"
  table = results.results_table(rows, tiny.get_config())
  for needle in ("NDCG@1", "NDCG@10", "HR@10", "MRR", "AUC", "gca0_A", "gca0_B", "alpha"):
    assert needle in table


def test_metrics_per_user_group_partition_the_test_users(baseline):
  """overlapped + non-overlapped cases are all cases, and the all-users metric is their
  case-weighted mean (inputs/eval_cases.py user groups).
  """
  _, rows = baseline
  row = rows[0]
  n = {g: row[f"test/{g}/sampled/all/count"] for g in ("overlapped", "non-overlapped")}
  assert n["overlapped"] > 0 and n["non-overlapped"] > 0
  for key in ("sampled/all/ndcg@10", "full/all/mrr", "sampled/all/auc"):
    mixed = sum(n[g] * row[f"test/{g}/{key}"] for g in n) / sum(n.values())
    assert mixed == pytest.approx(row[f"test/{key}"], rel=1e-5), key
  assert "non-overlapped" in results.results_table(rows, tiny.get_config())


def test_replica_equals_standalone_run(baseline, tmp_path):
  """Replica 1 (seed 1) of the R=2 run vs a standalone seed-1 run: equal within rtol = atol = 1e-4.

  (vmap batches the matmuls differently, so the float32 sums differ in the last bits.)
  """
  _, rows = baseline
  alone = run(tmp_path, **{"sweep.seeds": (1,), "train.max_epochs": 3})[0]
  assert alone["best_epoch"] == rows[1]["best_epoch"]
  for key in METRICS:
    np.testing.assert_allclose(alone[key], rows[1][key], rtol=1e-4, atol=1e-4, err_msg=key)
  assert rows[0]["test/sampled/all/ndcg@10"] != rows[1]["test/sampled/all/ndcg@10"]


def test_hyperparameter_replicas_differ(tmp_path):
  rows = run(
    tmp_path,
    **{"sweep.learning_rates": (1e-3, 1e-2), "sweep.gate_inits": (0.0, 2.0), "train.max_epochs": 1},
  )
  assert [(r["learning_rate"], r["gate_init"]) for r in rows] == [
    (1e-3, 0.0),
    (1e-3, 2.0),
    (1e-2, 0.0),
    (1e-2, 2.0),
  ]
  alphas = [r["align/gca0_A/alpha"] for r in rows]
  assert alphas[1] > alphas[0] + 0.2  # sigmoid(2) vs sigmoid(0), barely moved by 1 epoch


def test_data_parallel_matches_single_device(tmp_path):
  assert jax.device_count() >= 4
  one = run(tmp_path / "one", **{"train.max_epochs": 2})[0]
  four = run(tmp_path / "four", **{"train.max_epochs": 2, "train.num_devices": 4})[0]
  assert four["num_devices"] == 4
  for key in METRICS:
    np.testing.assert_allclose(four[key], one[key], rtol=1e-4, atol=1e-4, err_msg=key)


@pytest.mark.smoke
def test_resume_after_interruption_gives_identical_results(tmp_path, monkeypatch):
  full = run(tmp_path / "full", **{"train.max_epochs": 4})[0]
  real_epoch = step_lib.train_epoch
  calls = {"n": 0}

  class Killed(Exception):
    pass

  def dying_writer(self, step, *parts):
    calls["n"] += 1
    if calls["n"] == 2:  # "killed" after epoch 2 was checkpointed
      raise Killed()

  monkeypatch.setattr(metric_writer.MetricWriter, "report", dying_writer)
  with pytest.raises(Killed):
    run(tmp_path / "resumed", **{"train.max_epochs": 4})
  monkeypatch.undo()
  assert step_lib.train_epoch is real_epoch
  resumed = run(tmp_path / "resumed", **{"train.max_epochs": 4})[0]
  for key in METRICS + ("best_epoch",):
    np.testing.assert_allclose(resumed[key], full[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_changed_config_is_refused_on_resume(tmp_path):
  run(tmp_path, **{"train.max_epochs": 1})
  with pytest.raises(loop.errors.RunError, match=r"model.width: \d+ in the run, 8 now"):
    run(tmp_path, **{"train.max_epochs": 1, "model.width": 8})


def _poison_from_epoch_3(monkeypatch):
  """The training loss turns NaN from epoch 3 on (one program for both tests below)."""
  real = step_lib.train_epoch

  def poisoned(state, data, frozen, epoch, **kw):
    state, metrics = real(state, data, frozen, epoch, **kw)
    metrics["loss"] = jnp.where(epoch >= 3, jnp.nan, metrics["loss"])
    return state, metrics

  monkeypatch.setattr(step_lib, "train_epoch", poisoned)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
  _poison_from_epoch_3(monkeypatch)
  with pytest.raises(loop.TrainingDiverged, match=r"epoch 3 .*last good checkpoint \(epoch 2\)"):
    run(tmp_path, **{"train.max_epochs": 4})
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["2"]


def test_nan_loss_before_any_checkpoint_says_so(tmp_path, monkeypatch):
  """It said "the last good checkpoint (epoch None)"."""
  _poison_from_epoch_3(monkeypatch)
  with pytest.raises(loop.TrainingDiverged) as info:
    run(tmp_path, **{"train.max_epochs": 4, "train.checkpoint_every": 10})
  assert "epoch 3" in str(info.value) and "no checkpoint was saved before it" in str(info.value)
  assert "None" not in str(info.value)
  assert not os.listdir(tmp_path / "checkpoints")


def test_schedule_warmup_plateau_and_sparse_checkpoints(tmp_path):
  rows = run(
    tmp_path,
    **{
      "train.max_epochs": 4,
      "train.warmup_epochs": 2,
      "train.plateau_patience": 1,
      "train.checkpoint_every": 3,
      "train.select_metric": "valid/sampled/A/mrr+valid/sampled/B/mrr",
    },
  )
  row = rows[0]
  assert row["best_epoch"] >= 3  # no validation during the 2 warm-up epochs
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["4"]  # epoch 3 and the last; keep 1
  value = row["valid/sampled/A/mrr"] + row["valid/sampled/B/mrr"]
  assert np.isfinite(value)


def test_model_hyperparameter_replica_equals_standalone_run(tmp_path):
  """A loss weight swept as replicas (sweep.model.alpha) trains as a standalone run with that value.

  Replica 1 has alpha = 0.5 and tau_reg = 2.0 (a weight and a temperature that are arrays in the
  program); the standalone run gets them as plain config values.
  """
  rows = run(
    tmp_path / "sweep",
    **{"sweep.model.alpha": (0.0, 0.5), "model.tau_reg": 2.0, "train.max_epochs": 2},
  )
  assert [r["model.alpha"] for r in rows] == [0.0, 0.5]
  alone = run(
    tmp_path / "alone", **{"model.alpha": 0.5, "model.tau_reg": 2.0, "train.max_epochs": 2}
  )[0]
  for key in METRICS + ("train/reg_loss",):
    np.testing.assert_allclose(alone[key], rows[1][key], rtol=1e-4, atol=1e-4, err_msg=key)
  assert rows[0]["train/loss"] != pytest.approx(rows[1]["train/loss"], rel=1e-3)


def test_unknown_model_hyperparameter_sweep_is_refused(tmp_path):

  cfg = tiny.get_config()
  cfg.sweep.model.gamma = (0.1,)
  with pytest.raises(errors.ConfigError, match=r"sweep.model.gamma.*valid: \['alpha', 'beta'"):
    loop.train_and_evaluate(cfg, str(tmp_path))


def test_history_rows_per_epoch_and_replica(baseline):
  workdir, rows = baseline
  with open(workdir / "history.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert [(h["epoch"], h["replica"]) for h in history] == [
    (e, r) for e in (1, 2, 3) for r in (0, 1)
  ]
  for h in history:
    assert {
      "train/loss",
      "train/learning_rate",
      "valid/sampled/A/ndcg@10",
      "align/gca0_A/abs_mean_cos",
      "align/gca0_B/alpha",
    } <= set(h)
    assert not any(k.startswith("test/") for k in h)  # eval.track_test is off
  best = [h for h in history if h["replica"] == 1 and h["epoch"] == rows[1]["best_epoch"]][0]
  assert best["valid/sampled/all/ndcg@10"] == pytest.approx(rows[1]["valid/sampled/all/ndcg@10"])


def test_history_resume_keeps_only_checkpointed_epochs(tmp_path):
  """Rows past the checkpoint (epochs a resumed run replays) are dropped, then written again."""
  path = tmp_path / "history.jsonl"
  path.write_text(
    "".join(json.dumps({"epoch": e, "replica": 0}) + "\n" for e in (1, 2, 3)) + '{"epoch": 4, "repl'
  )  # cut short by the interruption
  history = metric_writer.History(str(tmp_path), resume_epoch=2)
  history.append([{"epoch": 3, "replica": 0, "x": 1.0}])
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["x"] == 1.0
  metric_writer.History(str(tmp_path), resume_epoch=None)  # a fresh run starts empty
  assert path.read_text() == ""


def test_track_test_writes_test_metrics_per_epoch(tmp_path):
  run(tmp_path, **{"train.max_epochs": 2, "eval.track_test": True})
  with open(tmp_path / "history.jsonl") as f:
    history = [json.loads(line) for line in f]
  assert len(history) == 2
  assert all("test/sampled/A/ndcg@10" in h and "test/full/all/mrr" in h for h in history)


def test_compile_together_returns_in_order_and_raises():
  """build.compile_together compiles jobs in threads: results in job order, errors re-raised."""
  double, square = jax.jit(lambda x: 2 * x), jax.jit(lambda x: x * x)
  x = jnp.arange(3.0)
  (a, ta), (b, tb) = build.compile_together((double, (x,)), (square, (x,)))
  np.testing.assert_array_equal(a(x), [0.0, 2.0, 4.0])
  np.testing.assert_array_equal(b(x), [0.0, 1.0, 4.0])
  assert ta >= 0 and tb >= 0

  def bad(x):
    raise ValueError("traced and failed")

  with pytest.raises(ValueError, match="traced and failed"):
    build.compile_together((double, (x,)), (jax.jit(bad), (x,)))
