"""Load run results into pandas and aggregate replicas (seeds) into mean ± std tables."""

from __future__ import annotations

import json
import os
from typing import Iterable, Sequence

import pandas as pd

from orthoalign.data.errors import DataError

DOMAINS = ("A", "B")
RANK_METRICS = ("hr@5", "hr@10", "ndcg@1", "ndcg@10", "mrr", "auc")
ALIGN_STATS = ("abs_mean_cos", "mean_abs_cos", "alpha")


def load_runs(workdirs: Iterable[str]) -> pd.DataFrame:
  """One row per replica of every run; `run` = the workdir's folder name (labels the model variant).

  The nested `config` of each row is flattened into `config.<key>` columns.
  """
  rows = []
  for workdir in workdirs:
    path = os.path.join(workdir, "results.jsonl")
    if not os.path.isfile(path):
      raise DataError("no results.jsonl: has the run finished?", path=path)
    with open(path, encoding="utf-8") as f:
      for line_no, line in enumerate(f, 1):
        try:
          row = json.loads(line)
        except json.JSONDecodeError as e:
          raise DataError(f"expected one JSON object per line ({e.msg})", path=path, line=line_no)
        config = row.pop("config", {})
        row.update({f"config.{k}": json.dumps(v) if isinstance(v, list) else v
                    for k, v in config.items()})
        row["run"] = os.path.basename(os.path.abspath(workdir))
        rows.append(row)
  if not rows:
    raise DataError("no results found", key="workdirs")
  return pd.DataFrame(rows)


def mean_std(df: pd.DataFrame, columns: Sequence[str], by: str = "run") -> pd.DataFrame:
  """Mean and (sample) std of `columns` per group, as a frame with a (column, stat) MultiIndex."""
  present = [c for c in columns if c in df.columns]
  grouped = df.groupby(by, sort=False)[present]
  return pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()},
                   axis=1).swaplevel(axis=1).sort_index(axis=1, level=0, sort_remaining=False)


def _fmt(mean: float, std: float) -> str:
  if pd.isna(mean):
    return "—"
  return f"{mean:.4f} ± {std:.4f}" if not pd.isna(std) else f"{mean:.4f}"


def metric_table(df: pd.DataFrame, split: str = "test", protocol: str = "sampled",
                 metrics: Sequence[str] = RANK_METRICS, by: str = "run") -> str:
  """Markdown: one row per run and domain, mean ± std over its replicas."""
  cols = [f"{split}/{protocol}/{d}/{m}" for d in DOMAINS for m in metrics]
  stats = mean_std(df, cols, by)
  lines = ["| run | domain | n | " + " | ".join(m.upper().replace("@", "@") for m in metrics) + " |",
           "|---|---|---|" + "---|" * len(metrics)]
  for run in stats.index:
    for d in DOMAINS:
      cells = []
      n = 0
      for m in metrics:
        c = f"{split}/{protocol}/{d}/{m}"
        if c in stats.columns.get_level_values(0):
          cells.append(_fmt(stats.loc[run, (c, "mean")], stats.loc[run, (c, "std")]))
          n = int(stats.loc[run, (c, "n")])
        else:
          cells.append("—")
      lines.append(f"| {run} | {d} | {n} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def alignment_table(df: pd.DataFrame, stats: Sequence[str] = ALIGN_STATS, by: str = "run") -> str:
  """Markdown: per run and GCA cell, mean ± std of the alignment statistics at the best epoch."""
  cells = sorted({c.split("/")[1] for c in df.columns if c.startswith("align/")})
  if not cells:
    return "(no GCA cells in these runs)"
  cols = [f"align/{cell}/{s}" for cell in cells for s in stats]
  agg = mean_std(df, cols, by)
  lines = ["| run | cell | " + " | ".join(stats) + " |", "|---|---|" + "---|" * len(stats)]
  for run in agg.index:
    for cell in cells:
      vals = [_fmt(agg.loc[run, (f"align/{cell}/{s}", "mean")], agg.loc[run, (f"align/{cell}/{s}", "std")])
              if f"align/{cell}/{s}" in agg.columns.get_level_values(0) else "—" for s in stats]
      if all(v == "—" for v in vals):
        continue
      lines.append(f"| {run} | {cell} | " + " | ".join(vals) + " |")
  return "\n".join(lines)


def run_table(df: pd.DataFrame, by: str = "run") -> str:
  """Markdown: per run, parameter counts, best epochs, wall time, speed and hardware."""
  lines = ["| run | replicas | params (total) | params (trainable) | best epoch (mean) | wall time (s) | "
           "steps/s | backend × devices |", "|---|---|---|---|---|---|---|---|"]
  for run, g in df.groupby(by, sort=False):
    first = g.iloc[0]
    lines.append(f"| {run} | {len(g)} | {int(first['params/total']):,} | "
                 f"{int(first['params/trainable']):,} | {g['best_epoch'].mean():.1f} | "
                 f"{first['wall_time_s']:.0f} | {first['steps_per_s']:.1f} | "
                 f"{first['backend']} × {int(first['num_devices'])} |")
  return "\n".join(lines)
