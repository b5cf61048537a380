"""orthoalign.analysis.stats against hand-computed values and independent scipy calls."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from orthoalign.analysis import stats
from orthoalign.errors import DataError


def test_paired_comparison_known_numbers():
  control = np.array([0.10, 0.20, 0.30, 0.40, 0.50])
  diffs = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
  res = stats.paired_comparison(control + diffs, control)
  assert res.n == 5 and res.mean_diff == pytest.approx(3.0)
  # By hand: sd = sqrt(2.5), se = sd / sqrt(5), t = 3 / se, p = 2 * t.sf(|t|, 4).
  se = math.sqrt(2.5) / math.sqrt(5)
  assert res.t_stat == pytest.approx(3.0 / se)
  assert res.t_p == pytest.approx(2 * sps.t.sf(3.0 / se, 4))
  assert res.t_p == pytest.approx(sps.ttest_rel(control + diffs, control).pvalue)
  half = sps.t.ppf(0.975, 4) * se
  assert res.ci95 == pytest.approx((3.0 - half, 3.0 + half))
  # All five differences positive: the exact two-sided Wilcoxon p is its floor 2 / 2**5.
  assert res.wilcoxon_p == pytest.approx(0.0625)
  assert res.wilcoxon_min_p == pytest.approx(2 / 2**5)


def test_paired_comparison_mixed_signs_and_small_n():
  t = np.array([0.3, 0.1, 0.5, 0.2, 0.45, 0.6])
  c = np.array([0.2, 0.25, 0.3, 0.1, 0.4, 0.3])
  res = stats.paired_comparison(t, c)
  assert res.wilcoxon_p == pytest.approx(sps.wilcoxon(t - c).pvalue)
  assert res.wilcoxon_min_p == pytest.approx(2 / 2**6)
  one = stats.paired_comparison([1.0], [0.5])
  assert one.n == 1 and one.mean_diff == pytest.approx(0.5)
  assert math.isnan(one.t_p) and math.isnan(one.wilcoxon_p) and math.isnan(one.ci95[0])
  # NaN pairs are dropped; identical pairs give p = 1.
  nan = stats.paired_comparison([1.0, np.nan, 2.0], [1.0, 3.0, 2.0])
  assert nan.n == 2 and nan.t_p == 1.0 and nan.wilcoxon_p == 1.0
  with pytest.raises(DataError, match="equal length"):
    stats.paired_comparison([1, 2], [1, 2, 3])


def test_correlation_matches_scipy_and_bootstrap_is_reproducible():
  rng = np.random.default_rng(1)
  x = rng.uniform(0, 0.4, 30)
  y = 0.18 - 0.05 * x + rng.normal(0, 0.004, 30)
  c = stats.correlation(x, y, n_boot=500, seed=3)
  assert c.n == 30
  assert c.pearson_r == pytest.approx(sps.pearsonr(x, y).statistic)
  assert c.pearson_p == pytest.approx(sps.pearsonr(x, y).pvalue)
  assert c.spearman_rho == pytest.approx(sps.spearmanr(x, y).statistic)
  assert c.spearman_p == pytest.approx(sps.spearmanr(x, y).pvalue)
  assert c.pearson_ci[0] <= c.pearson_r <= c.pearson_ci[1]
  assert c.spearman_ci[0] <= c.spearman_rho <= c.spearman_ci[1]
  assert c == stats.correlation(x, y, n_boot=500, seed=3)
  assert c.pearson_ci != stats.correlation(x, y, n_boot=500, seed=4).pearson_ci


def test_correlation_degenerate_inputs_are_nan():
  assert math.isnan(stats.correlation([1, 2], [3, 4]).pearson_r)
  assert math.isnan(stats.correlation([1, 1, 1, 1], [1, 2, 3, 4]).spearman_rho)
  c = stats.correlation([1, 2, np.nan, 4, 5], [2, 4, 1, 8, 10], n_boot=0)
  assert c.n == 4 and c.pearson_r == pytest.approx(1.0) and math.isnan(c.pearson_ci[0])


def test_partial_correlation_removes_a_constructed_confound():
  # Two widths: width shifts both |cos| (x) and NDCG (y); within a width they are unrelated.
  rng = np.random.default_rng(0)
  width = np.repeat(["64", "256"], 40)
  shift = np.where(width == "64", 1.0, 0.0)
  x = shift * 0.2 + rng.normal(0, 0.02, 80)
  y = shift * 0.05 + rng.normal(0, 0.005, 80)
  assert stats.correlation(x, y, n_boot=0).pearson_r > 0.8  # the pooled, confounded correlation
  pc = stats.partial_correlation(x, y, {"width": width})
  assert pc.n == 80 and pc.k == 1
  assert abs(pc.r) < 0.3 and pc.p > 0.01
  # Independent check: Pearson r of the within-width residuals (group-mean centred).
  rx = x - np.where(width == "64", x[width == "64"].mean(), x[width == "256"].mean())
  ry = y - np.where(width == "64", y[width == "64"].mean(), y[width == "256"].mean())
  assert pc.r == pytest.approx(sps.pearsonr(rx, ry).statistic)
  # A numeric covariate is used linearly unless flagged categorical.
  num = stats.partial_correlation(x, y, [np.where(width == "64", 64, 256)])
  assert num.r == pytest.approx(pc.r)
  assert (
    stats.partial_correlation(x, y, [width, np.arange(80) % 3], categorical=[True, True]).k == 3
  )


def test_linear_fit():
  fit = stats.linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
  assert fit.slope == pytest.approx(2.0) and fit.intercept == pytest.approx(1.0)
  assert math.isnan(stats.linear_fit([1, 1], [0, 1]).slope)


# The digitised ABXI / Food-Kitchen Domain A baseline curve (paper.md §4.3), params in 1e7.
BASE_P = [0.964, 1.175, 1.388, 1.595, 1.806]
BASE_M = [0.1541, 0.1711, 0.1721, 0.1734, 0.1789]


def test_efficiency_ratio_worked_example():
  ratio, bound = stats.efficiency_ratio(BASE_P, BASE_M, 1.175, 0.1757)
  assert bound == "="
  p_star = 1.595 + (0.1757 - 0.1734) / (0.1789 - 0.1734) * (1.806 - 1.595)
  assert p_star == pytest.approx(1.683, abs=1e-3)
  assert ratio == pytest.approx(p_star / 1.175) and ratio == pytest.approx(1.43, abs=0.005)
  # Order of the points does not matter.
  assert stats.efficiency_ratio(BASE_P[::-1], BASE_M[::-1], 1.175, 0.1757) == (ratio, "=")
  assert stats.format_ratio(ratio, bound) == "1.43×"


def test_efficiency_ratio_bounds_and_nonmonotone():
  ratio, bound = stats.efficiency_ratio(BASE_P, BASE_M, 1.175, 0.19)
  assert bound == ">" and ratio == pytest.approx(1.806 / 1.175)
  assert stats.format_ratio(ratio, bound) == "> 1.54×"
  ratio, bound = stats.efficiency_ratio(BASE_P, BASE_M, 1.175, 0.15)
  assert bound == "<" and ratio == pytest.approx(0.964 / 1.175)
  # Between the two smallest sizes: interpolated, below 1 (baseline needs fewer parameters).
  ratio, bound = stats.efficiency_ratio(BASE_P, BASE_M, 1.175, 0.1626)
  assert bound == "=" and ratio == pytest.approx((0.964 + 0.5 * 0.211) / 1.175)
  # Non-monotone curve: the first crossing from the small end is used.
  ratio, bound = stats.efficiency_ratio([1, 2, 3, 4], [0.10, 0.20, 0.12, 0.30], 1.0, 0.15)
  assert (ratio, bound) == (pytest.approx(1.5), "=")
  assert math.isnan(stats.efficiency_ratio([], [], 1.0, 0.1)[0])


def _scipy_bootstrap_ci(x, y, n_boot, seed, fn):
  """The same resamples as stats.correlation, each scored by scipy (which NaNs a constant side by
  testing its values for equality), skipping the resamples with a constant side.
  """
  x, y = np.asarray(x, float), np.asarray(y, float)
  idx = np.random.default_rng(seed).integers(0, x.size, size=(n_boot, x.size))
  vals = [
    fn(x[i], y[i]).statistic
    for i in idx
    if not (np.all(x[i] == x[i][0]) or np.all(y[i] == y[i][0]))
  ]
  return tuple(np.percentile(vals, [2.5, 97.5]))


def test_bootstrap_skips_resamples_with_a_constant_side_whose_mean_is_inexact():
  # Resample (0.1, 0.1, 0.1): its mean is not exactly 0.1 in float, so a variance test saw a
  # non-constant side and scored r ≈ 0 (the CI was (-4e-16, 1.0)).
  x, y = [0.1, 0.7, 0.1], [0.2, 0.9, 0.4]
  c = stats.correlation(x, y, n_boot=2000, seed=0)
  assert c.pearson_ci[0] == pytest.approx(0.9608, abs=1e-3)
  assert c.pearson_ci == pytest.approx(_scipy_bootstrap_ci(x, y, 2000, 0, sps.pearsonr))
  assert c.spearman_ci == pytest.approx(_scipy_bootstrap_ci(x, y, 2000, 0, sps.spearmanr))
  assert -1.0 <= c.pearson_ci[0] <= c.pearson_ci[1] <= 1.0  # rounding never leaves [-1, 1]
  # A constant y side that is inexact too (mean of 0.7s), more points, other seeds.
  rng = np.random.default_rng(5)
  for seed in range(3):
    x = rng.choice([0.1, 0.3, 0.7], 6)
    y = np.where(rng.random(6) < 0.5, 0.7, 0.1) + (x > 0.5) * 0.2
    c = stats.correlation(x, y, n_boot=400, seed=seed)
    if not np.isfinite(c.pearson_r):
      continue
    assert c.pearson_ci == pytest.approx(_scipy_bootstrap_ci(x, y, 400, seed, sps.pearsonr))
    assert c.spearman_ci == pytest.approx(_scipy_bootstrap_ci(x, y, 400, seed, sps.spearmanr))


def test_partial_correlation_is_nan_when_the_covariates_explain_a_side():
  # x is a function of the category: its residual is rounding noise, whose "r" means nothing.
  y = np.array([0.2, 0.5, 0.9, 0.4, 0.3, 0.1, 0.6, 0.8])
  pc = stats.partial_correlation(
    [0.1, 0.1, 0.7, 0.7, 0.3, 0.3, 0.9, 0.9], y, {"w": np.array(list("aabbccdd"))}
  )
  assert pc.n == 8 and pc.k == 3 and math.isnan(pc.r) and math.isnan(pc.p)
  # x linear in a numeric covariate (0.1 steps, not exact in float).
  pc = stats.partial_correlation(0.3 + 0.1 * np.arange(8), y, [np.arange(8.0)])
  assert math.isnan(pc.r) and math.isnan(pc.p)
  # y explained instead of x.
  assert math.isnan(
    stats.partial_correlation(
      y, [0.1, 0.1, 0.7, 0.7, 0.3, 0.3, 0.9, 0.9], {"w": np.array(list("aabbccdd"))}
    ).r
  )


def test_paired_comparison_identical_differences_have_no_spread():
  # Every difference is exactly 0.1, but their mean is not: a variance test gave a finite t.
  res = stats.paired_comparison([0.2, 0.2, 0.2], [0.1, 0.1, 0.1])
  assert res.t_stat == math.inf and res.t_p == 0.0
  assert res.ci95 == (res.mean_diff, res.mean_diff)
