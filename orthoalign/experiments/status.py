"""State of a grid on disk: grid.json, per-run status and a summary table (no JAX, no pandas).

The results of a grid's finished runs as a DataFrame: `orthoalign.analysis.results.load_grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import math
import os
from typing import Any

from orthoalign import run_lock
from orthoalign.config import upgrade
from orthoalign.errors import DataError
from orthoalign.experiments import job
from orthoalign.fileio import format_duration  # local.py's progress line uses it from here too
from orthoalign.train import timing

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
    raise DataError(
      "no grid.json: run `python -m orthoalign.grid --grid=... --root=...` first", path=path
    )
  try:
    with open(path, encoding="utf-8") as f:
      meta = json.load(f)
  except json.JSONDecodeError as e:
    raise DataError(f"expected a JSON object ({e.msg})", path=path, line=e.lineno) from e
  except UnicodeDecodeError as e:
    raise DataError(f"byte {e.start} is not UTF-8; expected a JSON object", path=path) from None
  except OSError as e:
    raise DataError(f"cannot read it ({e.strerror or e})", path=path) from None
  if not isinstance(meta, dict) or not isinstance(meta.get("runs"), list):
    raise DataError("expected a list of runs", path=path, key="runs")
  for i, run in enumerate(meta["runs"]):
    if not isinstance(run, dict) or not isinstance(run.get("name", run.get("workdir")), str):
      raise DataError(
        "expected an object with a 'name' (and 'workdir')", path=path, key=f"runs[{i}]"
      )
  return upgrade.grid(meta)


def run_status(workdir: str) -> str:
  """done, running, failed, interrupted (has checkpoints or was stopped) or pending."""
  if job.finished(workdir):
    return "done"
  if run_lock.locked(workdir):
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


# The wall-time column: the grid runner's own measure of a run (job.Attempt.wall_s), from
# starting the training command to its exit, compile and data loading included. Not results.jsonl's
# wall_time_s, which the trainer measures from inside the run.
WALL_HEADER = "wall (last attempt)"
_ENDED = ("done", "failed", "interrupted")


def attempt_wall_s(workdir: str) -> float | None:
  """Seconds the workdir's last training attempt took, from its attempt.json (job.Attempt).

  None when there is no record (never attempted, or trained outside the grid runner) or the
  attempt has not ended (its record then holds only the start).
  """
  try:
    with open(os.path.join(workdir, job.ATTEMPT), encoding="utf-8") as f:
      record = json.load(f)
  except (OSError, ValueError):
    return None
  if not isinstance(record, dict) or record.get("status") not in _ENDED:
    return None
  wall = record.get("wall_s")
  return float(wall) if isinstance(wall, (int, float)) else None


def log_path(workdir: str) -> str | None:
  """The workdir's log.txt if it exists (the runner creates it when an attempt starts)."""
  path = os.path.join(workdir, job.LOG)
  return path if os.path.isfile(path) else None


def compile_times(workdir: str) -> dict[str, float] | None:
  """A finished run's compile seconds from its results.jsonl: "compile_s" (both programs, side by
  side), each program's ("compile/train_epoch_s", "compile/evaluate_s": runs written before they
  were recorded lack them) and "wall_time_s"; None without results.
  """
  try:
    with open(os.path.join(workdir, job.RESULTS), encoding="utf-8") as f:
      row = json.loads(f.readline())
  except (OSError, ValueError):
    return None
  if not isinstance(row, dict):
    return None
  wanted = ("compile_s", "wall_time_s", *map(timing.program_key, timing.PROGRAMS))
  return {k: float(row[k]) for k in wanted if isinstance(row.get(k), (int, float))}


def _compile_cell(times: dict[str, float] | None) -> str:
  """The compile column: "12.4 + 3.3 s" (train epoch + evaluation), the two together, or "-"."""
  if not times:
    return "-"
  programs = [times.get(timing.program_key(p)) for p in timing.PROGRAMS]
  if all(p is not None for p in programs):
    return " + ".join(f"{p:.1f}" for p in programs) + " s"
  return f"{times['compile_s']:.1f} s" if "compile_s" in times else "-"


def summary(rows: Sequence[dict[str, Any]], metric: str = METRIC) -> str:
  """Table of runs: name, status, wall time, compile time, then the metric (finished) or the log
  (others); below it the grid's compile share.

  Each row: {"name", "status", "workdir"}. The wall time is read from the workdir
  (`attempt_wall_s`, column `WALL_HEADER`) for `statuses` and the grid runner's rows alike, so
  both report the same quantity; a row's own "wall_s" is not used. The compile column gives a
  finished run's seconds per program, train epoch + evaluation (`compile_times`, summed over its
  processes), and the share line the finished runs' compile seconds over their own wall time
  (both as the trainer measures them). "-" where a run has no ended attempt, no results or (last
  column) no metric and no log file yet.
  """
  out = [["run", "status", WALL_HEADER, "compile (train + eval)", f"{metric} (mean) / log"]]
  compile_s = wall_s = 0.0
  for r in rows:
    done = r["status"].startswith("done")
    value = metric_mean(r["workdir"], metric) if done else None
    times = compile_times(r["workdir"]) if done else None
    if times and "compile_s" in times and "wall_time_s" in times:
      compile_s, wall_s = compile_s + times["compile_s"], wall_s + times["wall_time_s"]
    wall = attempt_wall_s(r["workdir"])
    last = f"{value:.4f}" if value is not None else log_path(r["workdir"]) or "-"
    out.append(
      [
        r["name"],
        r["status"],
        format_duration(wall) if wall is not None else "-",
        _compile_cell(times),
        last,
      ]
    )
  text = table(out)
  if wall_s:
    text += (
      f"\ncompile share: {format_duration(compile_s)} compiling of {format_duration(wall_s)} "
      f"in the finished runs ({compile_s / wall_s:.0%})"
    )
  return text


def statuses(root: str) -> list[dict[str, Any]]:
  """Every run of the grid at `root`: {"name", "workdir", "status", "log", "axes", "wall_s"}.

  "log" is the run's log.txt, None until an attempt has created it; "wall_s" is
  `attempt_wall_s` (None without an ended attempt).
  """
  rows = []
  for run in read_grid(root)["runs"]:
    workdir = os.path.join(root, run["workdir"])
    rows.append(
      {
        "name": run["name"],
        "workdir": workdir,
        "status": run_status(workdir),
        "log": log_path(workdir),
        "axes": run["axes"],
        "wall_s": attempt_wall_s(workdir),
      }
    )
  return rows


def unfinished(root: str) -> list[dict[str, Any]]:
  """The runs of the grid at `root` without results (failed, running, interrupted, pending)."""
  return [r for r in statuses(root) if r["status"] != "done"]
