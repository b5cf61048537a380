"""Figure 3 (paper.md §4): test metric against total parameters, with the parameter efficiency
of every GCA point against the plain baseline's curve (`stats.efficiency_ratio`, paper.md §4.4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from orthoalign.analysis import formatting
from orthoalign.analysis import results
from orthoalign.analysis import stats
from orthoalign.analysis import variants
from orthoalign.metrics import keys


def scaling(df: pd.DataFrame, metric: str = "ndcg@10", protocol: str = "sampled") -> pd.DataFrame:
  """Figure 3's series: test metric against total parameters per model/dataset/domain/variant.

  Points are (model, dataset, variant, params/total) groups; other settings at the same size are
  pooled. Every non-plain point gets the efficiency ratio against the plain series of its
  model/dataset/domain (`stats.efficiency_ratio`, paper.md §4.4; the plain curve is the mean per
  size, and a non-monotone curve is read at its first crossing from the small end).

  Args:
    df: `load_runs` frame.
    metric, protocol: y = test/<protocol>/<domain>/<metric>.

  Returns:
    Columns model, dataset, domain, variant, params, mean, std, n, ratio, bound, ratio_str
    (ratio NaN for plain points or without a plain series).

  Raises:
    DataError: if model, dataset, params/total or the GCA positions are missing.
  """
  df = variants.with_variant(df)
  variants.require_columns(df, ("model", "dataset", "params/total"))
  rows = []
  for d in results.DOMAINS:
    col = keys.metric_key("test", protocol, d, metric)
    if col not in df.columns:
      continue
    vals = pd.DataFrame(
      {
        "model": df["model"],
        "dataset": df["dataset"],
        "variant": df["variant"],
        "params": pd.to_numeric(df["params/total"], errors="coerce"),
        "v": pd.to_numeric(df[col], errors="coerce"),
      }
    )
    for (model, dataset, variant, params), g in vals.groupby(
      ["model", "dataset", "variant", "params"], sort=True
    ):
      v = g["v"].dropna()
      rows.append(
        {
          "model": model,
          "dataset": dataset,
          "domain": d,
          "variant": variant,
          "params": float(params),
          "mean": v.mean() if len(v) else np.nan,
          "std": v.std(ddof=1) if len(v) > 1 else np.nan,
          "n": int(len(v)),
        }
      )
  cols = [
    "model",
    "dataset",
    "domain",
    "variant",
    "params",
    "mean",
    "std",
    "n",
    "ratio",
    "bound",
    "ratio_str",
  ]
  out = pd.DataFrame(rows, columns=cols[:8])
  ratios, bounds = [], []
  for _, r in out.iterrows():
    base = out[
      (out["model"] == r["model"])
      & (out["dataset"] == r["dataset"])
      & (out["domain"] == r["domain"])
      & (out["variant"] == "plain")
    ]
    if r["variant"] == "plain" or base.empty:
      ratios.append(np.nan)
      bounds.append("")
      continue
    ratio, bound = stats.efficiency_ratio(base["params"], base["mean"], r["params"], r["mean"])
    ratios.append(ratio)
    bounds.append(bound)
  out["ratio"] = ratios
  out["bound"] = bounds
  out["ratio_str"] = [stats.format_ratio(r, b) if b else "" for r, b in zip(ratios, bounds)]
  return variants.sorted_rows(out, ["model", "dataset", "domain", "variant"])


def scaling_markdown(s: pd.DataFrame, metric: str = "ndcg@10") -> str:
  """Markdown of `scaling`: one row per point, with the efficiency ratio of GCA points."""
  if s.empty:
    return "(no points)\n"
  lines = [
    f"| model | dataset | domain | series | params (total) | "
    f"{formatting.metric_label(metric)} (mean ± std) | n | efficiency vs. baseline |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for _, r in s.iterrows():
    lines.append(
      f"| {r['model']} | {r['dataset']} | {r['domain']} | "
      f"{formatting.variant_label(r['variant'])} | {r['params']:,.0f} | "
      f"{formatting.mean_std(r['mean'], r['std'])} | {r['n']} | "
      f"{r['ratio_str'] or '—'} |"
    )
  lines += [
    "",
    "Efficiency = parameters the baseline curve (linear interpolation, first crossing "
    "from the smallest size) needs to reach the GCA model's mean, divided by the GCA "
    'model\'s parameters (paper.md §4.4); "> x": the GCA model beats every baseline size, '
    '"< x": even the smallest baseline is better.',
  ]
  return "\n".join(lines) + "\n"
