"""Per-epoch trajectories from history.jsonl ("as training goes by, cos(X, X′) goes to zero",
paper.md §2.1). The file is read by `results.load_histories`.
"""

from __future__ import annotations

import os

import pandas as pd

from orthoalign.analysis import results
from orthoalign.metrics import keys


def trajectory(
  workdir: str | os.PathLike[str] | pd.DataFrame,
  stat: str = "abs_mean_cos",
  metric: str = "ndcg@10",
  protocol: str = "sampled",
) -> pd.DataFrame:
  """Per-epoch alignment and validation accuracy of one program.

  Args:
    workdir: a run folder with history.jsonl, or a `load_histories` frame (of one run).
    stat: alignment statistic per cell (|mean cos(X, X′)| by default).
    metric, protocol: validation metric (valid/<protocol>/<A|B|all>/<metric>).

  Returns:
    One row per (epoch, replica) on epochs with validation, plus rows with replica == "mean" (the
    mean over replicas). Columns: epoch, replica, `cos/<cell>` (the stat, validation inputs),
    `alpha/<cell>`, `valid/<domain>` (the metric per domain present).

  Raises:
    DataError: as `results.load_histories` when given a folder.
  """
  h = workdir if isinstance(workdir, pd.DataFrame) else results.load_histories([workdir])
  cols = {}
  for cell in keys.align_cells(h.columns):
    for name, st in (("cos", stat), ("alpha", "alpha")):
      if keys.align_key(cell, st) in h.columns:
        cols[f"{name}/{cell}"] = keys.align_key(cell, st)
  for d in results.DOMAINS + ("all",):
    if keys.metric_key("valid", protocol, d, metric) in h.columns:
      cols[f"valid/{d}"] = keys.metric_key("valid", protocol, d, metric)
  out = pd.DataFrame({"epoch": h["epoch"].to_numpy(), "replica": h["replica"].to_numpy()})
  for name, src in cols.items():
    out[name] = pd.to_numeric(h[src], errors="coerce").to_numpy()
  value_cols = list(cols)
  if value_cols:
    out = out[out[value_cols].notna().any(axis=1)]
  out = out.sort_values(["epoch", "replica"]).reset_index(drop=True)
  if out.empty:
    return out
  mean = out.groupby("epoch", sort=True)[value_cols].mean().reset_index()
  mean.insert(1, "replica", "mean")
  out["replica"] = out["replica"].astype(object)
  return pd.concat([out, mean], ignore_index=True)


def validated_epochs(t: pd.DataFrame) -> int:
  """Distinct epochs with a value in a `trajectory` frame (0 for an empty one)."""
  return int(t["epoch"].nunique()) if "epoch" in t.columns and not t.empty else 0


def trajectory_summary(histories: pd.DataFrame, stat: str = "abs_mean_cos") -> pd.DataFrame:
  """Per program: the alignment statistic and gate α at its first and last validated epoch.

  Args:
    histories: a `results.load_histories` frame (any number of programs, column `run`).
    stat: the alignment statistic, averaged over the program's cells and replicas.

  Returns:
    One row per run: run, first_epoch, last_epoch, cos_first, cos_last (mean over cells and
    replicas), alpha_first, alpha_last (each a (min, max) over replicas of the cells' mean gate:
    replicas may start from different gate inits, so their mean would say little), cos_drop
    (cos_first - cos_last; positive = X′ became more orthogonal to X).
  """
  rows = []
  for run, h in histories.groupby("run", sort=False):
    t = trajectory(h, stat)
    if t.empty:
      continue
    mean = t[t["replica"].astype(str) == "mean"].sort_values("epoch")
    cos = [c for c in mean.columns if c.startswith("cos/")]
    alpha = [c for c in mean.columns if c.startswith("alpha/")]
    if not cos:
      continue
    first, last = mean.iloc[0], mean.iloc[-1]
    per_replica = t[t["replica"].astype(str) != "mean"]

    def alpha_range(epoch: int) -> tuple[float, float]:
      if not alpha:
        return (float("nan"), float("nan"))
      values = per_replica[per_replica["epoch"] == epoch][alpha].mean(axis=1)
      return (float(values.min()), float(values.max()))

    rows.append(
      {
        "run": run,
        "first_epoch": int(first["epoch"]),
        "last_epoch": int(last["epoch"]),
        "cos_first": float(first[cos].mean()),
        "cos_last": float(last[cos].mean()),
        "alpha_first": alpha_range(first["epoch"]),
        "alpha_last": alpha_range(last["epoch"]),
      }
    )
  out = pd.DataFrame(
    rows,
    columns=[
      "run",
      "first_epoch",
      "last_epoch",
      "cos_first",
      "cos_last",
      "alpha_first",
      "alpha_last",
    ],
  )
  out["cos_drop"] = out["cos_first"] - out["cos_last"]
  return out


def trajectory_summary_markdown(t: pd.DataFrame) -> str:
  """Markdown of `trajectory_summary`, with the share of programs whose |cos| fell."""
  if t.empty:
    return "(no GCA cells in these histories)"
  lines = [
    "| run | epochs | \\|cos(X, X′)\\| first → last | α over replicas, first → last |",
    "|---|---|---|---|",
  ]
  span = lambda lo_hi: (
    f"{lo_hi[0]:.3f}" if lo_hi[0] == lo_hi[1] else f"[{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]"
  )
  for _, r in t.iterrows():
    lines.append(
      f"| {r['run']} | {r['first_epoch']}–{r['last_epoch']} | {r['cos_first']:.4f} → "
      f"{r['cos_last']:.4f} | {span(r['alpha_first'])} → {span(r['alpha_last'])} |"
    )
  # A program validated once has no change to count.
  moved = t[t["last_epoch"] > t["first_epoch"]]
  single = len(t) - len(moved)
  note = (
    f" ({single} program{'s' if single > 1 else ''} validated at a single epoch not counted)"
    if single
    else ""
  )
  if moved.empty:
    lines += ["", "No program has ≥ 2 validated epochs: no change of |cos(X, X′)| to report."]
  else:
    fell = int((moved["cos_drop"] > 0).sum())
    lines += [
      "",
      f"|cos(X, X′)| fell in {fell} of {len(moved)} programs (median change "
      f"{-moved['cos_drop'].median():+.4f}){note}.",
    ]
  return "\n".join(lines)
