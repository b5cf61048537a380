"""Figure 8 (paper.md §2.1): the alignment statistics of every GCA cell, pooled.

`alignment_values` lists every value of the runs frame's `align/<cell>/<stat>` columns;
`alignment_summary` gives their quartiles per model/dataset(/variant)/stat; `alignment_markdown`
renders those.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from orthoalign.analysis import formatting
from orthoalign.analysis import variants
from orthoalign.metrics import keys

ALIGNMENT_STATS = ("mean_abs_cos", "abs_mean_cos", "xy_mean_abs_cos")
STAT_LABELS = {
  "mean_abs_cos": "mean |cos(X, X′)|",
  "abs_mean_cos": "|mean cos(X, X′)|",
  "xy_mean_abs_cos": "mean |cos(X, Y)|",
  "xy_abs_mean_cos": "|mean cos(X, Y)|",
  # X' before an orthogonal or parallel intervention (gca.intervention)
  "pre_mean_abs_cos": "mean |cos(X, X′ before the intervention)|",
  "pre_abs_mean_cos": "|mean cos(X, X′ before the intervention)|",
}
_VALUE_COLUMNS = ["model", "dataset", "variant", "run", "replica", "cell", "stat", "value"]


def alignment_values(df: pd.DataFrame, stats_: Sequence[str] = ALIGNMENT_STATS) -> pd.DataFrame:
  """Long frame of every alignment value: model, dataset, variant, run, replica, cell, stat, value.

  Only `align/<cell>/<stat>` columns of GCA cells with a stat in `stats_` count (a model's own
  cross-attentions, e.g. MERIT's, are reported per cell by results.alignment_table, not pooled
  with GCA cells here); NaN values are dropped.
  """
  df = variants.with_variant(df)
  parts = []
  for c in df.columns:
    if keys.parse_align(c) is None:
      continue
    cell, st = keys.parse_align(c)
    if st not in stats_ or not keys.is_gca_cell(cell):
      continue
    parts.append(
      pd.DataFrame(
        {
          "model": df["model"].to_numpy(),
          "dataset": df["dataset"].to_numpy(),
          "variant": df["variant"].to_numpy(),
          "run": df["run"].to_numpy(),
          "replica": df["replica"].to_numpy(),
          "cell": cell,
          "stat": st,
          "value": pd.to_numeric(df[c], errors="coerce").to_numpy(),
        }
      )
    )
  if not parts:
    return pd.DataFrame(columns=_VALUE_COLUMNS)
  out = pd.concat(parts, ignore_index=True)
  return out[out["value"].notna()].reset_index(drop=True)


def alignment_summary(
  df: pd.DataFrame, stats_: Sequence[str] = ALIGNMENT_STATS, by_variant: bool = True
) -> pd.DataFrame:
  """Figure 8's numbers: quartiles of each alignment stat pooled over cells and domains.

  The paper's slides report |cos(X, X′)| stable across models (median ≈ 0.1-0.2) while |cos(X, Y)|
  varies with the dataset (paper.md §2.1).

  Returns:
    Columns model, dataset, [variant,] stat, n, min, q1, median, q3, max.
  """
  vals = alignment_values(df, stats_)
  group_keys = ["model", "dataset"] + (["variant"] if by_variant else []) + ["stat"]
  cols = group_keys + ["n", "min", "q1", "median", "q3", "max"]
  if vals.empty:
    return pd.DataFrame(columns=cols)
  g = vals.groupby(group_keys, sort=True)["value"]
  out = pd.DataFrame(
    {
      "n": g.count(),
      "min": g.min(),
      "q1": g.quantile(0.25),
      "median": g.median(),
      "q3": g.quantile(0.75),
      "max": g.max(),
    }
  ).reset_index()
  return out[cols]


def _md(text: str) -> str:
  """Escapes the pipes of |cos| so that they do not split a markdown table cell."""
  return text.replace("|", "\\|")


def alignment_markdown(a: pd.DataFrame) -> str:
  """Markdown of `alignment_summary`: median, quartiles and range per model/dataset/stat."""
  if a.empty:
    return "(no GCA cells in these runs)\n"
  has_v = "variant" in a.columns
  lines = [
    "| model | dataset | " + ("variant | " if has_v else "") + "statistic | n | median | "
    "[q1, q3] | [min, max] |",
    "|---|---|" + ("---|" if has_v else "") + "---|---|---|---|---|",
  ]
  for _, r in a.iterrows():
    lines.append(
      f"| {r['model']} | {r['dataset']} | "
      + (f"{formatting.variant_label(r['variant'])} | " if has_v else "")
      + f"{_md(STAT_LABELS.get(r['stat'], r['stat']))} | {r['n']} | {r['median']:.4f} | "
      f"[{r['q1']:.4f}, {r['q3']:.4f}] | [{r['min']:.4f}, {r['max']:.4f}] |"
    )
  return "\n".join(lines) + "\n"


def alignment_by_condition(
  df: pd.DataFrame, stats_: Sequence[str] = ("abs_mean_cos", "pre_abs_mean_cos")
) -> pd.DataFrame:
  """Each condition's alignment statistics: per run the mean over its GCA cells, then mean ± std.

  Conditions are those of Table 1 (`variants.setting_columns`), so GCA_early with and without an
  intervention (gca.intervention) are separate rows, unlike `alignment_summary`'s variants.

  Returns:
    Columns model, dataset, variant, setting, stat, n (runs), mean, std; GCA conditions only.
  """
  df = variants.with_variant(df)
  settings = variants.setting_columns(df)
  df = variants.add_conditions(df, settings).reset_index(drop=True)
  df["_row"] = df.index
  cols = ["model", "dataset", "variant", "setting", "stat", "n", "mean", "std"]
  rows = []
  for st in stats_:
    parsed = {c: keys.parse_align(c) for c in df.columns}
    picked = [c for c, p in parsed.items() if p and p[1] == st and keys.is_gca_cell(p[0])]
    if not picked:
      continue
    per_run = df[picked].apply(pd.to_numeric, errors="coerce").mean(axis=1)
    for _, g in df.groupby(variants.condition_columns(settings), sort=False, dropna=False):
      v = per_run[g["_row"]].dropna()
      if len(v):
        rows.append(
          {
            "model": g["model"].iloc[0],
            "dataset": g["dataset"].iloc[0],
            "variant": g["variant"].iloc[0],
            "setting": g["setting"].iloc[0],
            "stat": st,
            "n": len(v),
            "mean": v.mean(),
            "std": v.std(ddof=1) if len(v) > 1 else float("nan"),
          }
        )
  out = pd.DataFrame(rows, columns=cols)
  return variants.sorted_rows(out, ["model", "dataset", "variant", "setting", "stat"])


def alignment_by_condition_markdown(a: pd.DataFrame) -> str:
  """Markdown of `alignment_by_condition`: one row per condition, one column per statistic."""
  if a.empty:
    return "(no GCA cells in these runs)\n"
  st = list(dict.fromkeys(a["stat"]))
  lines = [
    "| model | dataset | variant | setting | n | "
    + " | ".join(_md(STAT_LABELS.get(s, s)) for s in st)
    + " |",
    "|---|---|---|---|---|" + "---|" * len(st),
  ]
  for (model, dataset, variant, setting), g in a.groupby(
    ["model", "dataset", "variant", "setting"], sort=False
  ):
    cells = []
    for s in st:
      r = g[g["stat"] == s]
      cells.append(formatting.mean_std(r["mean"].iloc[0], r["std"].iloc[0]) if len(r) else "—")
    lines.append(
      f"| {model} | {dataset} | {formatting.variant_label(variant)} | "
      f"{setting or '—'} | {int(g['n'].max())} | " + " | ".join(cells) + " |"
    )
  return "\n".join(lines) + "\n"
