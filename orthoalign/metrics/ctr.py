"""Click-prediction metrics of predicted logits against 0/1 labels, exact, on the host (NumPy).

  logloss   mean binary cross-entropy, natural log (nats per impression)
  auc       the probability that a random click scores above a random non-click (ties count
            one half): the Mann-Whitney statistic with average ranks
  gauc      the impression-weighted mean of per-user AUC over users with at least one click and
            one non-click (Zhou et al., "Deep Interest Network", KDD 2018, eq. 5; the weight of a
            user is their impressions)
  pcoc      predicted over observed click rate: mean predicted probability / click rate (1 =
            calibrated; He et al., "Practical Lessons from Predicting Clicks on Ads at Facebook",
            ADKDD 2014, call the ratio "calibration")

Negative downsampling (keeping each non-click with probability r while training) multiplies the
odds the model learns by 1/r; `correct_downsampling` adds log(r) back to the logits (He et al.
2014, section 6.3: q = p / (p + (1 - p) / r)).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _check(labels: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  labels = np.asarray(labels)
  logits = np.asarray(logits, np.float64)
  if labels.shape != logits.shape or labels.ndim != 1:
    raise ValueError(
      f"expected labels and logits of one shape [N], got {labels.shape}, {logits.shape}"
    )
  return labels.astype(bool), logits


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
  """Mean binary cross-entropy (nats) of logits against 0/1 labels, computed stably."""
  y, z = _check(labels, logits)
  # -log sigmoid(z) for clicks, -log(1 - sigmoid(z)) = -log sigmoid(-z) for non-clicks.
  return float(np.mean(np.logaddexp(0.0, np.where(y, -z, z)))) if y.size else float("nan")


def _average_ranks(keys: np.ndarray, scores: np.ndarray) -> np.ndarray:
  """1-based ranks of `scores` within each group of `keys` (ascending), ties sharing their mean."""
  order = np.lexsort((scores, keys))
  k, s = keys[order], scores[order]
  n = k.size
  group_start = np.flatnonzero(np.append(True, k[1:] != k[:-1]))
  start_of = np.repeat(group_start, np.diff(np.append(group_start, n)))
  position = np.arange(n) - start_of + 1  # 1-based rank within the group
  tie_start = np.flatnonzero(np.append(True, (k[1:] != k[:-1]) | (s[1:] != s[:-1])))
  tie_len = np.diff(np.append(tie_start, n))
  first = position[tie_start]
  mean_rank = np.repeat(first + (tie_len - 1) / 2, tie_len)
  out = np.empty(n)
  out[order] = mean_rank
  return out


def _group_auc(keys: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Per group of `keys`: (AUC (NaN without both a click and a non-click), impressions)."""
  uniq, group = np.unique(keys, return_inverse=True)
  ranks = _average_ranks(group, z)
  pos = np.bincount(group, weights=y, minlength=uniq.size)
  total = np.bincount(group, minlength=uniq.size)
  neg = total - pos
  rank_sum = np.bincount(group, weights=np.where(y, ranks, 0.0), minlength=uniq.size)
  with np.errstate(invalid="ignore", divide="ignore"):
    auc = (rank_sum - pos * (pos + 1) / 2) / (pos * neg)
  return np.where((pos > 0) & (neg > 0), auc, np.nan), total


def auc(labels: np.ndarray, logits: np.ndarray) -> float:
  """ROC AUC (ties count one half); NaN without both a click and a non-click."""
  y, z = _check(labels, logits)
  if not y.size:
    return float("nan")
  return float(_group_auc(np.zeros(y.size, np.int64), y, z)[0][0])


def gauc(users: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> tuple[float, int]:
  """Impression-weighted mean of per-user AUC over users with a click and a non-click.

  Returns:
    (GAUC, NaN when no user qualifies; the number of users it averages).
  """
  y, z = _check(labels, logits)
  per_user, impressions = _group_auc(np.asarray(users), y, z)
  ok = ~np.isnan(per_user)
  if not ok.any():
    return float("nan"), 0
  return float(np.average(per_user[ok], weights=impressions[ok])), int(ok.sum())


def pcoc(labels: np.ndarray, logits: np.ndarray) -> float:
  """Mean predicted click probability over the observed click rate (NaN without a click)."""
  y, z = _check(labels, logits)
  clicks = y.mean() if y.size else 0.0
  return float(np.mean(1 / (1 + np.exp(-z))) / clicks) if clicks else float("nan")


def correct_downsampling(logits: np.ndarray, rate: float) -> np.ndarray:
  """Logits of a model trained with non-clicks kept at `rate`, corrected to the full data."""
  if not 0 < rate <= 1:
    raise ValueError(f"expected 0 < rate <= 1, got {rate}")
  return np.asarray(logits, np.float64) + np.log(rate)


def ctr_metrics(users: np.ndarray, labels: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
  """Every metric of one set of impressions: logloss, auc, gauc (+ gauc_users), pcoc,
  predicted_ctr, observed_ctr, impressions, clicks.
  """
  y, z = _check(labels, logits)
  g, g_users = gauc(users, y, z)
  return {
    "logloss": logloss(y, z),
    "auc": auc(y, z),
    "gauc": g,
    "gauc_users": g_users,
    "pcoc": pcoc(y, z),
    "predicted_ctr": float(np.mean(1 / (1 + np.exp(-z)))) if y.size else float("nan"),
    "observed_ctr": float(y.mean()) if y.size else float("nan"),
    "impressions": int(y.size),
    "clicks": int(y.sum()),
  }
