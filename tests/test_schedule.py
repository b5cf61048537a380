"""The training schedule and model selection: warm-up, reduce-on-plateau, composite selection
metric, per replica.
"""

import math

import pytest

from orthoalign.train import schedule
from orthoalign.train import selection


def test_warmup_matches_torch_linear_lr_stepped_per_epoch():
  # torch.optim.lr_scheduler.LinearLR(start_factor=1e-5, total_iters=10), .step() after each epoch.
  f = [schedule.warmup_factor(e, 10, 1e-5) for e in range(1, 13)]
  assert f[0] == pytest.approx(1e-5)
  assert f[1] == pytest.approx(1e-5 + (1 - 1e-5) * 0.1)
  assert f[9] == pytest.approx(1e-5 + (1 - 1e-5) * 0.9)
  assert f[10] == f[11] == 1.0
  assert schedule.warmup_factor(1, 0, 1e-5) == 1.0


def test_select_value_sums_keys():
  m = {"valid/sampled/A/mrr": 0.2, "valid/sampled/B/mrr": 0.1}
  assert selection.select_value(m, "valid/sampled/A/mrr+valid/sampled/B/mrr") == pytest.approx(0.3)
  assert math.isnan(selection.select_value(m, "valid/sampled/A/mrr+valid/full/B/mrr"))


def test_plateau_and_early_stopping_per_replica():
  t = selection.Selection.new(2)
  key = "k"
  # Replica 0 improves once then stalls; replica 1 keeps improving.
  for epoch in range(1, 9):
    improved = t.update(
      epoch,
      [{key: 1.0 if epoch == 1 else 0.5}, {key: float(epoch)}],
      key,
      patience=6,
      plateau_patience=2,
      plateau_factor=0.5,
    )
    assert improved[1]
    assert improved[0] == (epoch == 1)
  # Replica 0: 7 bad evals -> reduced after the 3rd and 6th bad eval (count > 2), stopped at the
  # 6th.
  assert t.lr_scale == [0.25, 1.0]
  assert t.stopped == [True, False]
  assert t.best_epoch == [1, 8]
  assert t.best_metrics[0] == {key: 1.0}


def test_nan_metric_is_never_an_improvement():
  t = selection.Selection.new(1)
  assert not t.update(1, [{"k": float("nan")}], "k", patience=5)[0]
  assert t.bad_evals == [1]
