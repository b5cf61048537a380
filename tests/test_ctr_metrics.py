"""Click-prediction metrics against brute-force definitions."""

import itertools

import numpy as np
import pytest

from orthoalign.metrics import ctr


def brute_auc(y, z):
  pos, neg = z[y == 1], z[y == 0]
  pairs = [(p > n) + 0.5 * (p == n) for p, n in itertools.product(pos, neg)]
  return float(np.mean(pairs)) if pairs else float("nan")


@pytest.mark.parametrize("seed", range(5))
def test_auc_and_gauc_equal_their_pairwise_definitions(seed):
  rng = np.random.default_rng(seed)
  n = 300
  users = rng.integers(0, 25, n)
  y = (rng.random(n) < 0.2).astype(np.int8)
  z = np.round(rng.normal(size=n) + y, 1)  # rounded: many ties, within and across users
  assert ctr.auc(y, z) == pytest.approx(brute_auc(y, z), abs=1e-12)
  per_user, weights = [], []
  for u in np.unique(users):
    mine = users == u
    if 0 < y[mine].sum() < mine.sum():
      per_user.append(brute_auc(y[mine], z[mine]))
      weights.append(mine.sum())
  g, count = ctr.gauc(users, y, z)
  assert count == len(per_user)
  assert g == pytest.approx(np.average(per_user, weights=weights), abs=1e-12)


def test_logloss_pcoc_and_the_downsampling_correction():
  y = np.array([1, 0, 0, 1, 0])
  z = np.array([2.0, -1.0, 0.5, -30.0, 10.0])
  p = 1 / (1 + np.exp(-z))
  expected = -np.mean(np.where(y == 1, np.log(p), np.log1p(-p)))
  assert ctr.logloss(y, z) == pytest.approx(expected, rel=1e-9)
  assert np.isfinite(ctr.logloss(np.array([1]), np.array([-800.0])))  # no overflow
  assert ctr.pcoc(y, z) == pytest.approx(p.mean() / 0.4)
  # A model trained on clicks and 10 % of the non-clicks predicts odds 10x too high; the
  # correction gives back the click rate of the full data.
  rng = np.random.default_rng(0)
  labels = (rng.random(200_000) < 0.02).astype(np.int8)
  kept = (labels == 1) | (rng.random(labels.size) < 0.1)
  logit_down = np.log(labels[kept].mean() / (1 - labels[kept].mean()))
  corrected = ctr.correct_downsampling(np.full(labels.size, logit_down), 0.1)
  assert 1 / (1 + np.exp(-corrected[0])) == pytest.approx(labels.mean(), rel=0.05)


def test_degenerate_inputs():
  assert np.isnan(ctr.auc(np.zeros(4), np.arange(4.0)))
  assert ctr.gauc(np.zeros(3), np.array([0, 1, 1]), np.array([0.0, 0, 0])) == (0.5, 1)
  assert ctr.gauc(np.arange(3), np.array([0, 1, 1]), np.zeros(3)) == (
    pytest.approx(np.nan, nan_ok=True),
    0,
  )
  with pytest.raises(ValueError, match="one shape"):
    ctr.auc(np.zeros(3), np.zeros(4))
  m = ctr.ctr_metrics(np.array([0, 0, 1, 1]), np.array([1, 0, 1, 0]), np.array([1.0, -1, 2, 0]))
  assert m["auc"] == 1.0 and m["gauc"] == 1.0 and m["gauc_users"] == 2 and m["clicks"] == 2
