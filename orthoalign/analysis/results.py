"""Load runs into pandas and aggregate replicas (seeds) into mean ± std tables.

Loaders: `load_runs` (results.jsonl: one row per trained model at its best validation epoch),
`load_histories` (history.jsonl: one row per epoch) and `load_grid` (every finished run of a grid
the grid runner wrote, with its axes). Tables: `metric_table`, `alignment_table`, `run_table`.
Checks: `cut_short` (programs stopped by train.max_epochs rather than by early stopping).

Vocabulary: a *run* is one trained model (one replica row); a *program* is one workdir (column
`run`, which may hold several replicas).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
import dataclasses
import json
import math
import os
from typing import Any

import pandas as pd

from orthoalign.analysis import formatting
from orthoalign.config import upgrade
from orthoalign.errors import DataError
from orthoalign.experiments import status
from orthoalign.metrics import keys
from orthoalign.metrics import table

DOMAINS = ("A", "B")
RANK_METRICS = ("hr@5", "hr@10", "ndcg@1", "ndcg@10", "mrr", "auc")
ALIGN_STATS = ("abs_mean_cos", "mean_abs_cos", "alpha")


def _jsonl(path: str, skip_blank: bool) -> Iterator[tuple[int, Any]]:
  """(1-based line number, parsed value) of each line of the JSON-lines file at `path`.

  Raises:
    DataError: a line that is not JSON (a blank one too, unless skip_blank), naming path and line.
  """
  with open(path, encoding="utf-8") as f:
    for line_no, line in enumerate(f, 1):
      if skip_blank and not line.strip():
        continue
      try:
        value = json.loads(line)
      except json.JSONDecodeError as e:
        raise DataError(
          f"expected one JSON object per line ({e.msg})", path=path, line=line_no
        ) from None
      yield line_no, value


# Keys every results row has had since the first version.
_ROW_KEYS = ("replica", "best_epoch")


def _check_row(row: Any, path: str, line_no: int) -> None:
  """A results row: a JSON object with _ROW_KEYS, a `config` object, and numeric metrics."""
  if not isinstance(row, dict):
    raise DataError("expected a JSON object (one results row)", path=path, line=line_no)
  for key in _ROW_KEYS:
    if key not in row:
      raise DataError(f"the results row has no {key!r}", path=path, line=line_no)
  if not isinstance(row.get("config", {}), dict):
    raise DataError(
      "expected 'config' to be an object (the run's flattened config)", path=path, line=line_no
    )
  for key, value in row.items():
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if key.startswith(("valid/", "test/")) and value is not None and not numeric:
      raise DataError(f"expected a number for {key!r}, got {value!r}", path=path, line=line_no)


def load_runs(workdirs: Iterable[str]) -> pd.DataFrame:
  """One row per replica of every run; `run` = the workdir's folder name (labels the model variant).

  The nested `config` of each row is flattened into `config.<key>` columns (lists as JSON text).

  Raises:
    DataError: a missing results.jsonl (naming the path), a line that is not a JSON object, a row
      without replica / best_epoch, a non-numeric metric or a `config` that is not an object
      (naming path and line), or no rows at all.
  """
  rows = []
  for workdir in workdirs:
    path = os.path.join(workdir, "results.jsonl")
    if not os.path.isfile(path):
      raise DataError("no results.jsonl: has the run finished?", path=path)
    for line_no, saved in _jsonl(path, skip_blank=False):
      _check_row(saved, path, line_no)
      row = upgrade.result_row(saved)
      config = row.pop("config", {})
      row.update(
        {f"config.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in config.items()}
      )
      row["run"] = os.path.basename(os.path.abspath(workdir))
      rows.append(row)
  if not rows:
    raise DataError("no results found", key="workdirs")
  return pd.DataFrame(rows)


def load_histories(workdirs: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
  """history.jsonl of each workdir -> one row per (run, replica, epoch).

  `run` is the workdir's folder name (as in `load_runs`). Keys absent on epochs without
  evaluation are NaN.

  Raises:
    DataError: a missing history.jsonl (naming the path), a line that is not a JSON object (naming
      path and line), a row without epoch/replica, or no rows at all.
  """
  rows = []
  for workdir in workdirs:
    path = os.path.join(os.fspath(workdir), "history.jsonl")
    if not os.path.isfile(path):
      raise DataError("no history.jsonl (written by the trainer once per epoch)", path=path)
    run = os.path.basename(os.path.abspath(os.fspath(workdir)))
    for line_no, row in _jsonl(path, skip_blank=True):
      if not isinstance(row, dict) or "epoch" not in row or "replica" not in row:
        raise DataError(
          "expected a JSON object with 'epoch' and 'replica'", path=path, line=line_no
        )
      row["run"] = run
      rows.append(row)
  if not rows:
    raise DataError("no history rows found", key="workdirs")
  out = pd.DataFrame(rows)
  front = ["run", "replica", "epoch"]
  return out[front + [c for c in out.columns if c not in front]]


@dataclasses.dataclass
class Grid:
  """A loaded grid.

  Attributes:
    root: the grid folder.
    meta: grid.json as read.
    df: one row per replica of every finished run, with `axis.<name>` columns (the run's axis
      labels, as text) and `grid.run` (the run's name); empty if no run has finished.
    histories: history.jsonl rows of finished runs that have one (`load_histories` columns: run,
      replica, epoch, train/*, valid/*, align/*, test/*), None if none has.
    missing: (run name, reason) of runs that are not (successfully) finished, plus
      ("(history of <run>)", reason) for each run whose history.jsonl could not be read (its
      results still count).
  """

  root: str
  meta: dict[str, Any]
  df: pd.DataFrame
  histories: pd.DataFrame | None
  missing: list[tuple[str, str]]

  def missing_runs(self) -> list[str]:
    """Names of listed runs that are not in `df` (not the history remark)."""
    return [n for n, _ in self.missing if not n.startswith("(history")]


def load_grid(root: str | os.PathLike[str]) -> Grid:
  """Reads ROOT/grid.json (`status.read_grid`) and the results of every finished run it lists.

  A run is finished when its workdir holds results.jsonl; runs without one (not started, still
  training, failed) and runs whose results cannot be read are listed in `missing`, not raised.

  Raises:
    DataError: grid.json missing or malformed, without a "runs" list, or a run without name and
      workdir (naming the path/key).
  """
  root = os.fspath(root)
  meta = status.read_grid(root)
  frames, missing, workdirs = [], [], []
  for run in meta["runs"]:
    name = run["name"]  # status.read_grid checked and upgraded every run
    workdir = os.path.join(root, run["workdir"])
    if not os.path.isdir(workdir):
      missing.append((name, "not started (no workdir)"))
      continue
    if not os.path.isfile(os.path.join(workdir, "results.jsonl")):
      missing.append((name, f"{_run_status(workdir)} (no results.jsonl)"))
      continue
    try:
      one = load_runs([workdir])
    except DataError as e:
      missing.append((name, f"unreadable results: {e}"))
      continue
    for axis, value in run["axes"].items():
      one[f"axis.{axis}"] = str(value)
    one["grid.run"] = name
    frames.append(one)
    workdirs.append(workdir)
  df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
  parts = []
  for w in workdirs:  # one unreadable history leaves the others in
    if os.path.isfile(os.path.join(w, "history.jsonl")):
      try:
        parts.append(load_histories([w]))
      except DataError as e:
        missing.append((f"(history of {os.path.basename(w)})", str(e)))
  histories = pd.concat(parts, ignore_index=True) if parts else None
  return Grid(root, meta, df, histories, missing)


def _run_status(workdir: str) -> str:
  """running / failed / interrupted / pending from the grid runner's markers."""
  try:
    return status.run_status(workdir)
  except Exception:  # noqa: BLE001  (an unknown marker format must not stop the report)
    return "unfinished or failed"


_CUT_SHORT_COLUMNS = [
  "program",
  "max_epochs",
  "epochs_trained",
  "patience",
  "replicas",
  "not_stopped",
]


def _evaluations_after(best: int, last: int, every: int, warmup: int, max_epochs: int) -> int:
  """Validations after epoch `best` up to `last` (train.loop: epochs past the warm-up that are a
  multiple of train.eval_every, and the last epoch).
  """
  return sum(
    1 for e in range(best + 1, last + 1) if e > warmup and (e % every == 0 or e == max_epochs)
  )


def cut_short(df: pd.DataFrame) -> pd.DataFrame:
  """Programs that ended because they reached train.max_epochs, not by early stopping.

  The rule (e.g. for a grid run with `--set train.max_epochs=1`): a program is cut short when its
  epochs_trained equals its train.max_epochs and at least one replica had not early-stopped. A
  replica has early-stopped when the validations after its best epoch number at least
  train.early_stop_patience (at least 1), as `train.selection.Selection` counts them: every
  train.eval_every-th epoch past train.warmup_epochs, and the last epoch. The metrics of such a
  replica are of a model that may still have been improving.

  Args:
    df: `load_runs` / `load_grid` frame; programs are `grid.run` (grid) or `run`.

  Returns:
    One row per cut-short program, sorted by name: program, max_epochs, epochs_trained, patience,
    replicas, not_stopped (replicas that had not early-stopped). Empty when the rows lack
    epochs_trained, best_epoch, config.train.max_epochs or config.train.early_stop_patience
    (results written before those existed are not judged).
  """
  need = (
    "epochs_trained",
    "best_epoch",
    "config.train.max_epochs",
    "config.train.early_stop_patience",
  )
  if df.empty or any(c not in df.columns for c in need):
    return pd.DataFrame(columns=_CUT_SHORT_COLUMNS)
  by = "grid.run" if "grid.run" in df.columns else "run"

  def num(col: str, default: float = math.nan) -> pd.Series:
    """The column as floats; `default` where it is absent or blank (NaN rows are not judged)."""
    if col not in df.columns:
      return pd.Series(default, index=df.index, dtype=float)
    return pd.to_numeric(df[col], errors="coerce").fillna(default)

  runs = pd.DataFrame(
    {
      "program": df[by].astype(str),
      "last": num("epochs_trained"),
      "best": num("best_epoch"),
      "max": num("config.train.max_epochs"),
      "patience": num("config.train.early_stop_patience"),
      "every": num("config.train.eval_every", 1),
      "warmup": num("config.train.warmup_epochs", 0),
    }
  )
  runs = runs.dropna()
  rows = []
  for program, g in runs.groupby("program", sort=True):
    at_cap = g[g["last"] >= g["max"]]
    if at_cap.empty:
      continue
    stopped = [
      _evaluations_after(int(r.best), int(r.last), max(int(r.every), 1), int(r.warmup), int(r.max))
      >= max(int(r.patience), 1)
      for r in at_cap.itertuples()
    ]
    if all(stopped):
      continue
    rows.append(
      {
        "program": program,
        "max_epochs": int(at_cap["max"].iloc[0]),
        "epochs_trained": int(at_cap["last"].iloc[0]),
        "patience": int(at_cap["patience"].iloc[0]),
        "replicas": len(g),
        "not_stopped": len(stopped) - sum(stopped),
      }
    )
  return pd.DataFrame(rows, columns=_CUT_SHORT_COLUMNS)


def cut_short_warnings(df: pd.DataFrame, programs: int | None = None) -> list[tuple[str, str]]:
  """The `cut_short` programs as (headline, details) per max_epochs value ([] if none).

  E.g. ("2 of 6 programs cut short at max_epochs=1 (no early stop)", "gca=early, gca=plain (4 of
  4 replicas had not early-stopped; patience 20)"). `programs` is the total count of programs
  (default: those in df).
  """
  cut = cut_short(df)
  if cut.empty:
    return []
  by = "grid.run" if "grid.run" in df.columns else "run"
  total = programs if programs is not None else df[by].nunique()
  out = []
  for max_epochs, g in cut.groupby("max_epochs", sort=True):
    patience = ", ".join(str(p) for p in sorted(set(g["patience"])))
    out.append(
      (
        f"{len(g)} of {total} programs cut short at max_epochs={max_epochs} (no early stop)",
        f"{', '.join(g['program'])} ({int(g['not_stopped'].sum())} of "
        f"{int(g['replicas'].sum())} replicas had not early-stopped; patience {patience})",
      )
    )
  return out


def mean_std(df: pd.DataFrame, columns: Sequence[str], by: str = "run") -> pd.DataFrame:
  """Mean and (sample) std of `columns` per group, as a frame with a (column, stat) MultiIndex."""
  present = [c for c in columns if c in df.columns]
  grouped = df.groupby(by, sort=False)[present]
  return (
    pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()}, axis=1)
    .swaplevel(axis=1)
    .sort_index(axis=1, level=0, sort_remaining=False)
  )


def metric_table(
  df: pd.DataFrame,
  split: str = "test",
  protocol: str = "sampled",
  metrics: Sequence[str] = RANK_METRICS,
  by: str = "run",
) -> str:
  """Markdown: one row per run and domain, mean ± std over its replicas."""
  cols = [keys.metric_key(split, protocol, d, m) for d in DOMAINS for m in metrics]
  stats = mean_std(df, cols, by)
  present = set(stats.columns.get_level_values(0))
  rows = []
  for run in stats.index:
    for d in DOMAINS:
      cells = []
      n = 0
      for m in metrics:
        c = keys.metric_key(split, protocol, d, m)
        if c in present:
          cells.append(formatting.mean_std(stats.loc[run, (c, "mean")], stats.loc[run, (c, "std")]))
          n = int(stats.loc[run, (c, "n")])
        else:
          cells.append("—")
      rows.append([run, d, n, *cells])
  return table.render(["run", "domain", "n", *(m.upper() for m in metrics)], rows, markdown=True)


def alignment_table(df: pd.DataFrame, stats: Sequence[str] = ALIGN_STATS, by: str = "run") -> str:
  """Markdown: per run and GCA cell, mean ± std of the alignment statistics at the best epoch."""
  cells = keys.align_cells(df.columns)
  if not cells:
    return "(no GCA cells in these runs)"
  cols = [keys.align_key(cell, s) for cell in cells for s in stats]
  agg = mean_std(df, cols, by)
  present = set(agg.columns.get_level_values(0))
  rows = []
  for run in agg.index:
    for cell in cells:
      vals = [
        formatting.mean_std(
          agg.loc[run, (keys.align_key(cell, s), "mean")],
          agg.loc[run, (keys.align_key(cell, s), "std")],
        )
        if keys.align_key(cell, s) in present
        else "—"
        for s in stats
      ]
      if any(v != "—" for v in vals):
        rows.append([run, cell, *vals])
  return table.render(["run", "cell", *stats], rows, markdown=True)


def run_table(df: pd.DataFrame, by: str = "run") -> str:
  """Markdown: per run, parameter counts, best epochs, wall time, speed and hardware."""
  rows = []
  for run, g in df.groupby(by, sort=False):
    first = g.iloc[0]
    rows.append(
      [
        run,
        len(g),
        f"{int(first['params/total']):,}",
        f"{int(first['params/trainable']):,}",
        f"{g['best_epoch'].mean():.1f}",
        f"{first['wall_time_s']:.0f}",
        f"{first['steps_per_s']:.1f}",
        f"{first['backend']} × {int(first['num_devices'])}",
      ]
    )
  return table.render(
    [
      "run",
      "replicas",
      "params (total)",
      "params (trainable)",
      "best epoch (mean)",
      "wall time (s)",
      "steps/s",
      "backend × devices",
    ],
    rows,
    markdown=True,
  )
