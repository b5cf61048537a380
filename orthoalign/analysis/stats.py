"""Statistics behind the paper's claims, on plain numpy arrays (scipy.stats).

- `paired_comparison`: GCA variant vs. plain baseline over matching seeds (Table 1, paper.md §3.1).
- `correlation`, `partial_correlation`, `linear_fit`: |cos(X, X′)| against NDCG@10 (Figure 2,
  paper.md §2.1-2.2).
- `efficiency_ratio`: parameter efficiency read off the scaling curves (Figure 3, paper.md §4.4).

NaN in an input marks a missing value: pairs with a NaN on either side are dropped first. Results
that need more points than remain are NaN rather than errors, so that a sparse grid still reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import math
from typing import NamedTuple
import warnings

import numpy as np
from scipy import stats as sps

from orthoalign.errors import DataError

_NAN = float("nan")


def _pairs(x: Sequence[float], y: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
  """Two 1-D float arrays of equal length, without the pairs where either is NaN."""
  x = np.asarray(x, dtype=float).ravel()
  y = np.asarray(y, dtype=float).ravel()
  if x.shape != y.shape:
    raise DataError(f"expected two arrays of equal length, got {x.size} and {y.size}", key=what)
  keep = np.isfinite(x) & np.isfinite(y)
  return x[keep], y[keep]


@dataclasses.dataclass(frozen=True)
class PairedComparison:
  """Treated minus control over paired observations (e.g. the same seed with and without GCA).

  Attributes:
    n: number of complete pairs.
    mean_diff: mean of treated - control.
    ci95: 95 % t-interval of the mean difference, (low, high).
    t_stat, t_p: paired t-test statistic and two-sided p-value (n - 1 degrees of freedom).
    wilcoxon_p: two-sided Wilcoxon signed-rank p-value (exact for small n without ties; zero
      differences are dropped, scipy's "wilcox" rule).
    wilcoxon_min_p: the smallest two-sided p the exact Wilcoxon test can give with these pairs,
      2 / 2**n' (n' = non-zero differences). With n = 5 seeds it is 0.0625: five seeds can never
      be "significant at 5 %" by this test, however large the effect.
  """

  n: int
  mean_diff: float
  ci95: tuple[float, float]
  t_stat: float
  t_p: float
  wilcoxon_p: float
  wilcoxon_min_p: float


def paired_comparison(treated: Sequence[float], control: Sequence[float]) -> PairedComparison:
  """Paired t-test, its 95 % CI and the Wilcoxon signed-rank test of treated - control.

  Args:
    treated: shape [n], e.g. test NDCG@10 of the GCA model per seed.
    control: shape [n], the plain baseline with the same seeds, in the same order.

  Returns:
    A `PairedComparison`. With n < 2 everything but n and mean_diff is NaN (one pair has no
    spread). Identical pairs (all differences 0) give t_p = wilcoxon_p = 1.

  Raises:
    DataError: if the arrays differ in length.
  """
  t, c = _pairs(treated, control, "treated/control")
  d = t - c
  n = int(d.size)
  mean = float(d.mean()) if n else _NAN
  nonzero = int(np.count_nonzero(d))
  min_p = min(1.0, 2.0 / 2.0**nonzero) if nonzero else 1.0
  if n < 2:
    return PairedComparison(n, mean, (_NAN, _NAN), _NAN, _NAN, _NAN, min_p if n else _NAN)
  # Identical differences have no spread, tested by equality: their std is rounding noise when
  # their mean is inexact (three 0.1s), which would make t finite and huge instead of ±inf.
  sd = 0.0 if np.all(d == d[0]) else float(d.std(ddof=1))
  se = sd / math.sqrt(n)
  half = float(sps.t.ppf(0.975, n - 1)) * se
  if se == 0.0:
    # No spread: the t statistic is ±inf (or undefined when the mean is 0 too).
    t_stat = _NAN if mean == 0.0 else math.copysign(math.inf, mean)
    t_p = 1.0 if mean == 0.0 else 0.0
  else:
    t_stat = mean / se
    t_p = float(2.0 * sps.t.sf(abs(t_stat), n - 1))
  if nonzero == 0:
    w_p = 1.0
  else:
    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # scipy warns when it falls back to the normal approximation
      w_p = float(sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
  return PairedComparison(n, mean, (mean - half, mean + half), float(t_stat), t_p, w_p, min_p)


@dataclasses.dataclass(frozen=True)
class Correlation:
  """Pearson r and Spearman ρ with p-values and 95 % percentile-bootstrap intervals.

  Attributes:
    n: complete (x, y) pairs used.
    pearson_r, pearson_p: Pearson's r and its two-sided p (t-distribution, n - 2 dof).
    pearson_ci: 2.5 and 97.5 percentiles of r over bootstrap resamples of the pairs.
    spearman_rho, spearman_p, spearman_ci: the same for Spearman's rank correlation.
  """

  n: int
  pearson_r: float
  pearson_p: float
  pearson_ci: tuple[float, float]
  spearman_rho: float
  spearman_p: float
  spearman_ci: tuple[float, float]


def _constant_rows(a: np.ndarray) -> np.ndarray:
  """[k, n] -> bool [k]: rows whose values are all identical.

  Tested by equality, not by a variance near 0: centring a constant row whose mean is not exactly
  representable (three 0.1s average to 0.10000000000000002) leaves rounding noise, which would
  score as a correlation (r ≈ 0 or ±1) instead of none.
  """
  return np.all(a == a[:, :1], axis=1)


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Pearson r of each row pair of a, b: [k, n] -> [k], clipped to [-1, 1].

  NaN where a row of either side is constant (`_constant_rows`).
  """
  skip = _constant_rows(a) | _constant_rows(b)
  a = a - a.mean(axis=1, keepdims=True)
  b = b - b.mean(axis=1, keepdims=True)
  den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
  with np.errstate(invalid="ignore", divide="ignore"):
    r = np.clip((a * b).sum(axis=1) / den, -1.0, 1.0)
  return np.where(~skip & (den > 0), r, np.nan)


def _ci(values: np.ndarray) -> tuple[float, float]:
  values = values[np.isfinite(values)]
  if values.size == 0:
    return (_NAN, _NAN)
  lo, hi = np.percentile(values, [2.5, 97.5])
  return (float(lo), float(hi))


def correlation(
  x: Sequence[float], y: Sequence[float], n_boot: int = 2000, seed: int = 0
) -> Correlation:
  """Pearson and Spearman correlation of paired samples, with bootstrap CIs.

  The paper prints Pearson's r per baseline and domain (paper.md §2.2); Spearman's ρ is the
  rank-based check recommended in §2.3. CIs resample the (x, y) pairs with replacement `n_boot`
  times from `numpy.random.default_rng(seed)`, so they are reproducible; resamples in which either
  side's values are all identical (no correlation defined) are skipped, for Pearson and Spearman
  alike, and the percentiles are taken over the rest.

  Args:
    x: shape [n], e.g. |cos(X, X′)| per run.
    y: shape [n], e.g. test NDCG@10 per run.
    n_boot: bootstrap resamples (0 = no CIs).
    seed: bootstrap seed.

  Returns:
    A `Correlation`; every statistic is NaN with fewer than 3 pairs or a constant side.

  Raises:
    DataError: if the arrays differ in length.
  """
  x, y = _pairs(x, y, "x/y")
  n = int(x.size)
  nan2 = (_NAN, _NAN)
  if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
    return Correlation(n, _NAN, _NAN, nan2, _NAN, _NAN, nan2)
  pr = sps.pearsonr(x, y)
  sr = sps.spearmanr(x, y)
  p_ci = s_ci = nan2
  if n_boot > 0:
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    bx, by = x[idx], y[idx]
    keep = ~(_constant_rows(bx) | _constant_rows(by))
    bx, by = bx[keep], by[keep]
    p_ci = _ci(_rowwise_pearson(bx, by))
    s_ci = _ci(_rowwise_pearson(sps.rankdata(bx, axis=1), sps.rankdata(by, axis=1)))
  return Correlation(
    n, float(pr.statistic), float(pr.pvalue), p_ci, float(sr.statistic), float(sr.pvalue), s_ci
  )


@dataclasses.dataclass(frozen=True)
class PartialCorrelation:
  """Pearson r of x and y after removing what the covariates explain linearly.

  Attributes:
    n: complete rows used.
    r: partial correlation.
    p: two-sided p from the t-distribution with n - 2 - k degrees of freedom.
    k: number of covariate columns after one-hot encoding (the intercept not counted).
  """

  n: int
  r: float
  p: float
  k: int


def _design(
  covariates: Mapping[str, Sequence] | Sequence[Sequence],
  n: int,
  categorical: Sequence[bool] | None,
) -> np.ndarray:
  """Covariates -> [n, k] float matrix; category columns one-hot with the first level dropped."""
  cols = list(covariates.values()) if isinstance(covariates, Mapping) else list(covariates)
  if categorical is not None and len(categorical) != len(cols):
    raise DataError(
      f"expected one flag per covariate ({len(cols)}), got {len(categorical)}", key="categorical"
    )
  blocks = []
  for i, col in enumerate(cols):
    arr = np.asarray(col)
    if arr.shape != (n,):
      raise DataError(f"covariate {i}: expected shape ({n},), got {arr.shape}", key="covariates")
    is_cat = (
      categorical[i]
      if categorical is not None
      else not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    )
    if is_cat:
      keys = np.array([str(v) for v in arr])
      levels = sorted(set(keys.tolist()))
      blocks += [(keys == lv).astype(float) for lv in levels[1:]]
    else:
      blocks.append(arr.astype(float))
  return np.stack(blocks, axis=1) if blocks else np.zeros((n, 0))


def partial_correlation(
  x: Sequence[float],
  y: Sequence[float],
  covariates: Mapping[str, Sequence] | Sequence[Sequence],
  categorical: Sequence[bool] | None = None,
) -> PartialCorrelation:
  """Pearson r of the residuals of x and y after least squares on [1, covariates].

  Used to ask whether |cos(X, X′)| and NDCG@10 are related beyond what hidden size and dataset
  explain (both shift |cos| and NDCG, so pooling them can create or hide a correlation).

  Args:
    x, y: shape [n].
    covariates: k columns of shape [n] (a mapping name -> column, or a sequence of columns).
      Non-numeric (or bool) columns are categories and are one-hot encoded (first level dropped).
    categorical: optional per-column override of that rule, e.g. to treat hidden size 64/128 as
      categories rather than as a linear effect.

  Returns:
    A `PartialCorrelation`; r and p are NaN when fewer than k + 3 complete rows remain, when x or
    y is constant, or when the covariates explain x or y entirely (its residual is at the
    rounding level of the fit, `_RESIDUAL_RTOL`: such a residual's "correlation" is noise).

  Raises:
    DataError: on length mismatches.
  """
  x = np.asarray(x, dtype=float).ravel()
  y = np.asarray(y, dtype=float).ravel()
  if x.shape != y.shape:
    raise DataError(f"expected two arrays of equal length, got {x.size} and {y.size}", key="x/y")
  z = _design(covariates, x.size, categorical)
  keep = np.isfinite(x) & np.isfinite(y) & np.all(np.isfinite(z), axis=1)
  x, y, z = x[keep], y[keep], z[keep]
  # Covariates centred and scaled (the residuals are the same): raw columns such as parameter
  # counts (~1e7) next to the intercept would make the fit ill-conditioned, and its rounding noise
  # could pass for a residual.
  if z.size:
    z = z - z.mean(axis=0)
    scale = np.abs(z).max(axis=0)
    z = z / np.where(scale > 0, scale, 1.0)
  # Levels absent after dropping rows (or duplicated columns) would make lstsq rank-deficient;
  # lstsq copes, but the degrees of freedom must count only independent columns.
  design = np.column_stack([np.ones(x.size), z])
  n = int(x.size)
  k = int(np.linalg.matrix_rank(design)) - 1 if n else 0
  dof = n - 2 - k
  if dof < 1:
    return PartialCorrelation(n, _NAN, _NAN, k)
  rx, ry = _residual(design, x), _residual(design, y)
  if rx is None or ry is None:
    return PartialCorrelation(n, _NAN, _NAN, k)
  r = float(_rowwise_pearson(rx[None], ry[None])[0])
  if not np.isfinite(r):
    return PartialCorrelation(n, _NAN, _NAN, k)
  if abs(r) == 1.0:
    return PartialCorrelation(n, r, 0.0, k)
  t = r * math.sqrt(dof / (1.0 - r * r))
  return PartialCorrelation(n, r, float(2.0 * sps.t.sf(abs(t), dof)), k)


# A residual below this fraction of its variable's spread (‖v − mean v‖) is the fit's rounding
# noise: the covariates explain the variable (the noise of a well-conditioned least-squares fit is
# ~1e-15 of it).
_RESIDUAL_RTOL = 1e-9


def _residual(design: np.ndarray, v: np.ndarray) -> np.ndarray | None:
  """v minus its least-squares fit on `design` ([n, p]), or None when nothing is left of v.

  None when v is constant (its values all identical) or when the residual is rounding noise
  (‖residual‖ <= `_RESIDUAL_RTOL` · ‖v − mean v‖).
  """
  if v.size == 0 or np.all(v == v[0]):
    return None
  centred = v - v.mean()  # the design holds the intercept: same residual, less noise
  res = centred - design @ np.linalg.lstsq(design, centred, rcond=None)[0]
  if np.linalg.norm(res) <= _RESIDUAL_RTOL * np.linalg.norm(centred):
    return None
  return res


class LinearFit(NamedTuple):
  """y ≈ slope * x + intercept (least squares)."""

  slope: float
  intercept: float


def linear_fit(x: Sequence[float], y: Sequence[float]) -> LinearFit:
  """Least-squares line through the complete (x, y) pairs: the fitted line of Figure 2.

  Returns NaNs with fewer than 2 pairs or a constant x.
  """
  x, y = _pairs(x, y, "x/y")
  if x.size < 2 or np.ptp(x) == 0:
    return LinearFit(_NAN, _NAN)
  slope, intercept = np.polyfit(x, y, 1)
  return LinearFit(float(slope), float(intercept))


def efficiency_ratio(
  base_params: Sequence[float], base_metric: Sequence[float], params: float, metric: float
) -> tuple[float, str]:
  """Parameter efficiency of one GCA model against the baseline's scaling curve (paper.md §4.4).

  The baseline curve (sorted by parameter count) is interpolated linearly to find the parameter
  count p* at which it first reaches `metric`; the ratio is p* / params. "First" means the first
  crossing walking up from the smallest baseline, so a non-monotone curve (a larger baseline that
  scores worse) is read at its earliest size that is good enough. Worked example (ABXI /
  Food-Kitchen, Domain A): baseline points (1.595e7, 0.1734) and (1.806e7, 0.1789) reach 0.1757 at
  ≈1.683e7, so a GCA model of 1.175e7 params is ≈1.43× as parameter efficient.

  Args:
    base_params: shape [m], total parameters of the baseline sizes.
    base_metric: shape [m], their metric (e.g. mean test NDCG@10).
    params: total parameters of the GCA model.
    metric: its metric.

  Returns:
    (ratio, bound):
      - bound "=": the curve reaches `metric`; ratio = p* / params (< 1 when the baseline needs
        fewer parameters, i.e. GCA is less efficient).
      - bound ">": the GCA model beats every baseline size; the true ratio exceeds
        ratio = largest baseline params / params.
      - bound "<": even the smallest baseline scores higher; the true ratio is below
        ratio = smallest baseline params / params.
    (NaN, "=") when the curve has no complete point or the GCA point is missing.
  """
  bp, bm = _pairs(base_params, base_metric, "base_params/base_metric")
  if bp.size == 0 or not (np.isfinite(params) and np.isfinite(metric)) or params <= 0:
    return (_NAN, "=")
  order = np.argsort(bp, kind="stable")
  bp, bm = bp[order], bm[order]
  reached = np.nonzero(bm >= metric)[0]
  if reached.size == 0:
    return (float(bp[-1] / params), ">")
  i = int(reached[0])
  if i == 0:
    if bm[0] == metric:
      return (float(bp[0] / params), "=")
    return (float(bp[0] / params), "<")
  # bm[i-1] < metric <= bm[i]: interpolate within that segment.
  frac = (metric - bm[i - 1]) / (bm[i] - bm[i - 1])
  p_star = bp[i - 1] + frac * (bp[i] - bp[i - 1])
  return (float(p_star / params), "=")


def format_ratio(ratio: float, bound: str) -> str:
  """(1.43, "=") -> "1.43×", (1.25, ">") -> "> 1.25×", NaN -> "—"."""
  if not np.isfinite(ratio):
    return "—"
  return f"{ratio:.2f}×" if bound == "=" else f"{bound} {ratio:.2f}×"
