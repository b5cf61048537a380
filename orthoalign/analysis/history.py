"""Per-epoch trajectories from history.jsonl ("as training goes by, cos(X, X′) goes to zero",
paper.md §2.1). The file is read by `results.load_histories`.
"""

from __future__ import annotations

import os

import pandas as pd

from orthoalign.analysis import results


def trajectory(workdir: str | os.PathLike[str] | pd.DataFrame, stat: str = "abs_mean_cos",
               metric: str = "ndcg@10", protocol: str = "sampled") -> pd.DataFrame:
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
  cells = sorted({c.split("/")[1] for c in h.columns if c.startswith("align/")})
  cols = {}
  for cell in cells:
    for name, st in (("cos", stat), ("alpha", "alpha")):
      if f"align/{cell}/{st}" in h.columns:
        cols[f"{name}/{cell}"] = f"align/{cell}/{st}"
  for d in results.DOMAINS + ("all",):
    if f"valid/{protocol}/{d}/{metric}" in h.columns:
      cols[f"valid/{d}"] = f"valid/{protocol}/{d}/{metric}"
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
