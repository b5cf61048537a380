r"""Figure 2 (paper.md §2.1-2.2): |cos(X, X′)| of a GCA cell against the test metric.

- `correlation_points`: the scatter points, one per (run, replica, domain) with that cell, at the
  best validation epoch or (the paper's choice) at the best test epoch of history.jsonl.
- `correlation`: per model (and stratum) and domain, Pearson r, Spearman ρ, bootstrap CIs, the
  fitted line and a partial correlation controlling for width and dataset.
- `correlation_markdown`: that table in markdown.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from orthoalign.analysis import formatting
from orthoalign.analysis import results
from orthoalign.analysis import stats
from orthoalign.analysis import variants
from orthoalign.errors import DataError
from orthoalign.metrics import keys

BEST_TEST_LABEL = "best test epoch (paper's choice: selected on the test set)"
BEST_VALID_LABEL = "best validation epoch"


def correlation_points(
  df: pd.DataFrame,
  stat: str = "abs_mean_cos",
  position: int = 0,
  metric: str = "ndcg@10",
  protocol: str = "sampled",
  epoch: str = "best_valid",
  histories: pd.DataFrame | None = None,
) -> pd.DataFrame:
  """The scatter points of Figure 2: one row per (run, replica, domain) with a GCA cell.

  Args:
    df: `load_runs` frame.
    stat: alignment statistic of cell `gca<position>_<domain>` (abs_mean_cos = |mean cos(X, X′)|,
      the paper's scatter metric; mean_abs_cos = mean |cos(X, X′)|).
    position: GCA position whose cell is used.
    metric, protocol: y = test/<protocol>/<domain>/<metric>.
    epoch: "best_valid" (x and y of the results row: the best validation epoch, test metric of
      that checkpoint) or "best_test" (the paper's choice, paper.md §2.1: per replica and domain the
      epoch with the highest test metric, and the alignment stat of that epoch; needs `histories`
      from runs trained with eval.track_test=True).
    histories: `load_histories` frame (only for epoch="best_test").

  Returns:
    Columns model, dataset, run, replica, seed, variant, width, domain, x, y, epoch (plus every
    other column of df, for stratifying); rows without x or y dropped.

  Raises:
    DataError: unknown `epoch`, or "best_test" without per-epoch test metrics.
  """
  df = variants.with_variant(df)
  variants.require_columns(df, ("model", "run", "replica"))
  if epoch not in ("best_valid", "best_test"):
    raise DataError(f"expected 'best_valid' or 'best_test', got {epoch!r}", key="epoch")
  if epoch == "best_test" and (
    histories is None
    or not any(
      keys.metric_key("test", protocol, d, metric) in histories.columns for d in results.DOMAINS
    )
  ):
    raise DataError(
      f"epoch='best_test' needs per-epoch test/{protocol}/<domain>/{metric} in "
      "history.jsonl: train with --config.eval.track_test=True and pass "
      "histories=load_histories(...)",
      key="histories",
    )
  known = {p[1] for p in map(keys.parse_align, df.columns) if p is not None}
  if known and stat not in known:
    raise DataError(f"no alignment statistic {stat!r}; the runs have {sorted(known)}", key="stat")
  if not any(c.startswith("test/") and c.endswith(f"/{metric}") for c in df.columns):
    raise DataError(
      f"no test metric {metric!r} in the runs (e.g. ndcg@10, hr@10, mrr, auc)", key="metric"
    )
  parts = []
  for d in results.DOMAINS:
    xcol = keys.align_key(keys.cell_name(position, d), stat)
    ycol = keys.metric_key("test", protocol, d, metric)
    base = df.copy()
    base["width"] = variants.width_of(df)
    base["domain"] = d
    if epoch == "best_valid":
      if xcol not in df.columns or ycol not in df.columns:
        continue
      base["x"] = pd.to_numeric(df[xcol], errors="coerce")
      base["y"] = pd.to_numeric(df[ycol], errors="coerce")
      base["epoch"] = df["best_epoch"] if "best_epoch" in df.columns else np.nan
    else:
      if ycol not in histories.columns:
        continue
      best = _best_test_epochs(histories, xcol, ycol)
      base = base.drop(columns=[c for c in ("x", "y", "epoch") if c in base.columns])
      base = base.merge(best, on=["run", "replica"], how="inner")
    parts.append(base)
  if not parts:
    return pd.DataFrame(columns=["model", "dataset", "run", "replica", "domain", "x", "y"])
  out = pd.concat(parts, ignore_index=True)
  return out[out["x"].notna() & out["y"].notna()].reset_index(drop=True)


def _best_test_epochs(histories: pd.DataFrame, xcol: str, ycol: str) -> pd.DataFrame:
  """Per (run, replica): the epoch of the highest `ycol` in the history, with x and y there."""
  empty = pd.DataFrame(columns=["run", "replica", "epoch", "x", "y"])
  if xcol not in histories.columns:
    return empty
  h = histories[["run", "replica", "epoch", xcol, ycol]].copy()
  h[ycol] = pd.to_numeric(h[ycol], errors="coerce")
  h = h[h[ycol].notna()]
  if h.empty:
    return empty
  # The first epoch wins ties (the earliest checkpoint that reaches the best test value).
  idx = h.sort_values(["run", "replica", "epoch"]).groupby(["run", "replica"])[ycol].idxmax()
  best = h.loc[idx.to_numpy()]
  return pd.DataFrame(
    {
      "run": best["run"].to_numpy(),
      "replica": best["replica"].to_numpy(),
      "epoch": best["epoch"].to_numpy(),
      "x": pd.to_numeric(best[xcol], errors="coerce").to_numpy(),
      "y": best[ycol].to_numpy(),
    }
  )


def correlation(
  df: pd.DataFrame,
  stat: str = "abs_mean_cos",
  position: int = 0,
  metric: str = "ndcg@10",
  protocol: str = "sampled",
  epoch: str = "best_valid",
  histories: pd.DataFrame | None = None,
  by: Sequence[str] | None = None,
  controls: Sequence[str] = ("width", "dataset"),
  n_boot: int = 2000,
  seed: int = 0,
) -> pd.DataFrame:
  """Figure 2's statistics: |cos(X, X′)| against the test metric per model and domain.

  x is `align/gca<position>_<domain>/<stat>`, y is `test/<protocol>/<domain>/<metric>`, one point
  per replica that has that GCA cell (see `correlation_points` for `epoch`; "best_test" is the
  paper's selection, on the test set, and is labelled so in the `selection` column).

  The partial correlation controls for model width and dataset (categories, one-hot): |cos| of
  unrelated d-dimensional vectors shrinks like 1/√d, and both width and dataset move NDCG, so
  pooling widths or datasets can produce a correlation that neither width alone shows (or hide
  one). Controls that do not vary within a group are left out (`controls_used`); with none left
  the partial columns are NaN.

  Args:
    df, stat, position, metric, protocol, epoch, histories: see `correlation_points`.
    by: extra columns to stratify on (e.g. ("config.model.width",) or ("dataset",)).
    controls: columns of the points frame for the partial correlation ("width" = model width).
    n_boot, seed: bootstrap of the CIs (`stats.correlation`).

  Returns:
    One row per model × by-values × domain: n, pearson_r, pearson_p, pearson_ci_low/high,
    spearman_rho, spearman_p, spearman_ci_low/high, slope, intercept, partial_r, partial_p,
    controls_used, selection, x_col, y_col.

  Raises:
    DataError: as `correlation_points`, or a `by` column missing from the points.
  """
  pts = correlation_points(df, stat, position, metric, protocol, epoch, histories)
  by = list(by or ())
  if not pts.empty:
    variants.require_columns(pts, by)
  group_keys = ["model"] + by + ["domain"]
  selection = BEST_TEST_LABEL if epoch == "best_test" else BEST_VALID_LABEL
  rows = []
  if not pts.empty:
    for key, g in pts.groupby(group_keys, sort=True, dropna=False):
      key = key if isinstance(key, tuple) else (key,)
      c = stats.correlation(g["x"], g["y"], n_boot=n_boot, seed=seed)
      fit = stats.linear_fit(g["x"], g["y"])
      used = [k for k in controls if k in g.columns and g[k].map(variants.as_key).nunique() > 1]
      if used:
        pc = stats.partial_correlation(
          g["x"],
          g["y"],
          [g[k].map(variants.as_key).to_numpy() for k in used],
          categorical=[True] * len(used),
        )
        partial = (pc.r, pc.p)
      else:
        partial = (np.nan, np.nan)
      d = key[-1]
      rows.append(
        {
          **dict(zip(group_keys, key)),
          "n": c.n,
          "pearson_r": c.pearson_r,
          "pearson_p": c.pearson_p,
          "pearson_ci_low": c.pearson_ci[0],
          "pearson_ci_high": c.pearson_ci[1],
          "spearman_rho": c.spearman_rho,
          "spearman_p": c.spearman_p,
          "spearman_ci_low": c.spearman_ci[0],
          "spearman_ci_high": c.spearman_ci[1],
          "slope": fit.slope,
          "intercept": fit.intercept,
          "partial_r": partial[0],
          "partial_p": partial[1],
          "controls_used": ", ".join(used) or "—",
          "selection": selection,
          "x_col": keys.align_key(keys.cell_name(position, d), stat),
          "y_col": keys.metric_key("test", protocol, d, metric),
        }
      )
  cols = group_keys + [
    "n",
    "pearson_r",
    "pearson_p",
    "pearson_ci_low",
    "pearson_ci_high",
    "spearman_rho",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "slope",
    "intercept",
    "partial_r",
    "partial_p",
    "controls_used",
    "selection",
    "x_col",
    "y_col",
  ]
  return pd.DataFrame(rows, columns=cols)


def correlation_markdown(c: pd.DataFrame) -> str:
  """Markdown table of `correlation` output (one row per model/stratum/domain)."""
  if c.empty:
    return "(no runs with that GCA cell)\n"
  num, p_value = formatting.number, formatting.p_value
  extra = [k for k in c.columns[: list(c.columns).index("n")] if k not in ("model", "domain")]
  lines = [
    f"Points: {c['selection'].iloc[0]}; x = `{c['x_col'].iloc[0].rsplit('/', 1)[1]}` of "
    f"cell gca…_<domain>, y = `{c['y_col'].iloc[0].rsplit('/', 2)[0]}/<domain>/"
    f"{c['y_col'].iloc[0].rsplit('/', 1)[1]}`.",
    "",
    "| model | "
    + "".join(f"{variants.short_name(k)} | " for k in extra)
    + "domain | n | Pearson r [95 % CI] | p | Spearman ρ [95 % CI] | p | slope | "
    "partial r (controls) | p |",
    "|---|" + "---|" * len(extra) + "---|---|---|---|---|---|---|---|---|",
  ]
  for _, r in c.iterrows():
    lines.append(
      f"| {r['model']} | "
      + "".join(f"{variants.as_key(r[k])} | " for k in extra)
      + f"{r['domain']} | {r['n']} | {num(r['pearson_r'], '+.3f')} "
      f"[{num(r['pearson_ci_low'], '+.2f')}, {num(r['pearson_ci_high'], '+.2f')}] | "
      f"{p_value(r['pearson_p'])} | {num(r['spearman_rho'], '+.3f')} "
      f"[{num(r['spearman_ci_low'], '+.2f')}, {num(r['spearman_ci_high'], '+.2f')}] | "
      f"{p_value(r['spearman_p'])} | {num(r['slope'], '+.3g')} | "
      f"{num(r['partial_r'], '+.3f')} ({r['controls_used']}) | {p_value(r['partial_p'])} |"
    )
  return "\n".join(lines) + "\n"
