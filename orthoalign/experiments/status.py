"""State of a grid on disk: grid.json, per-run status and a summary table (no JAX, no pandas).

The results of a grid's finished runs as a DataFrame: `orthoalign.analysis.results.load_grid`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Sequence

from orthoalign.data.errors import DataError
from orthoalign.experiments import job
from orthoalign.fileio import format_duration  # local.py's progress line uses it from here too

GRID_JSON = "grid.json"
METRIC = "test/sampled/all/ndcg@10"


def read_grid(root: str | os.PathLike[str]) -> dict[str, Any]:
  """The `<root>/grid.json` a runner wrote: {"name", "grid", "cwd", "created", "runs": [...]}.

  Raises:
    DataError: grid.json missing, not JSON (naming the line), or without a "runs" list (naming
      the key); the message starts with the path.
  """
  path = os.path.join(os.fspath(root), GRID_JSON)
  if not os.path.isfile(path):
    raise DataError("no grid.json: run `python -m orthoalign.grid --grid=... --root=...` first",
                    path=path)
  try:
    with open(path, encoding="utf-8") as f:
      meta = json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"expected a JSON object ({e.msg})", path=path, line=e.lineno) from e
  if not isinstance(meta, dict) or not isinstance(meta.get("runs"), list):
    raise DataError("expected a list of runs", path=path, key="runs")
  for i, run in enumerate(meta["runs"]):
    if not isinstance(run, dict) or not isinstance(run.get("name", run.get("workdir")), str):
      raise DataError("expected an object with a 'name' (and 'workdir')", path=path,
                      key=f"runs[{i}]")
    run.setdefault("name", run.get("workdir"))
    run.setdefault("workdir", run["name"])     # the runner names each workdir after its run
    run.setdefault("axes", {})
  return meta


def run_status(workdir: str) -> str:
  """done, running, failed, interrupted (has checkpoints or was stopped) or pending."""
  if job.finished(workdir):
    return "done"
  if job.locked(workdir):
    return "running"
  try:
    with open(os.path.join(workdir, job.ATTEMPT), encoding="utf-8") as f:
      last = json.load(f).get("status")
  except (OSError, ValueError):
    last = None
  if last == "failed":
    return "failed"
  if last in ("running", "interrupted") or os.path.isdir(os.path.join(workdir, "checkpoints")):
    return "interrupted"
  return "pending"


def metric_mean(workdir: str, metric: str = METRIC) -> float | None:
  """Mean of `metric` over the replicas in results.jsonl (None if absent)."""
  try:
    with open(os.path.join(workdir, job.RESULTS), encoding="utf-8") as f:
      values = [json.loads(line).get(metric) for line in f if line.strip()]
  except (OSError, ValueError):
    return None
  values = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
  return sum(values) / len(values) if values else None


def table(rows: Sequence[Sequence[str]]) -> str:
  """Left-aligned columns; the first row is the header."""
  widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
  return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def summary(rows: Sequence[dict[str, Any]], metric: str = METRIC) -> str:
  """Table of runs: name, status, wall time, then the metric (finished) or the log (others).

  Each row: {"name", "status", "workdir", optional "wall_s"}.
  """
  out = [["run", "status", "wall", f"{metric} (mean) / log"]]
  for r in rows:
    value = metric_mean(r["workdir"], metric) if r["status"].startswith("done") else None
    wall = r.get("wall_s")
    out.append([r["name"], r["status"], format_duration(wall) if wall else "-",
                f"{value:.4f}" if value is not None else os.path.join(r["workdir"], job.LOG)])
  return table(out)


def statuses(root: str) -> list[dict[str, Any]]:
  """Every run of the grid at `root`: {"name", "workdir", "status", "log", "axes", "wall_s"}."""
  rows = []
  for run in read_grid(root)["runs"]:
    workdir = os.path.join(root, run["workdir"])
    state = run_status(workdir)
    rows.append({"name": run["name"], "workdir": workdir, "status": state,
                 "log": os.path.join(workdir, job.LOG), "axes": run["axes"],
                 "wall_s": metric_mean(workdir, "wall_time_s") if state == "done" else None})
  return rows


def unfinished(root: str) -> list[dict[str, Any]]:
  """The runs of the grid at `root` without results (failed, running, interrupted, pending)."""
  return [r for r in statuses(root) if r["status"] != "done"]

