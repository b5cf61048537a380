r"""The markdown report of a click-prediction grid: sources x (plain, GCA), paired over seeds.

  python -m orthoalign.analysis.ctr_report --grid=runs/ads_ctr_sources --out=docs/results/ads

Reads ROOT/grid.json and every finished run's results.jsonl (analysis/results.py `load_grid`),
whose axes are `sources` (none, or the source domains) and `cell` (plain, gca), one row per seed.
Writes OUT/README.md (and prints it): each program's test metrics as mean ± std over its seeds
(all, cold and warm impressions) and its cells' alignment statistics; then paired comparisons
over seeds (analysis/stats.py `paired_comparison`: mean difference, 95 % t-interval, paired t and
Wilcoxon p, and how many seeds improve): GCA minus plain for each source setting, and each source
setting minus the ads history alone (plain). Runs that have not finished are listed, not raised.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
import sys

import pandas as pd

from orthoalign import errors
from orthoalign.analysis import formatting
from orthoalign.analysis import results
from orthoalign.analysis import stats
from orthoalign.fileio import atomic_write_text
from orthoalign.fileio import writable_dir

METRICS = ("auc", "gauc", "logloss", "pcoc")
HIGHER_IS_BETTER = {"auc": True, "gauc": True, "logloss": False, "pcoc": None}


def _cell(values: pd.Series) -> str:
  v = values.dropna().astype(float)
  if v.empty:
    return "—"
  return formatting.mean_std(float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"))


def program_table(df: pd.DataFrame) -> str:
  """Per program (sources, cell): seeds, then mean ± std of each test metric."""
  cols = [f"test/{m}" for m in METRICS] + ["test/cold/auc", "test/warm/auc"]
  head = "| sources | cell | seeds | " + " | ".join(c.removeprefix("test/") for c in cols) + " |"
  lines = [head, "|" + "---|" * (3 + len(cols))]
  for (sources, cell), g in df.groupby(["axis.sources", "axis.cell"], sort=False):
    lines.append(
      f"| {sources} | {cell} | {len(g)} | " + " | ".join(_cell(g[c]) for c in cols if c in g) + " |"
    )
  return "\n".join(lines)


def alignment_table(df: pd.DataFrame) -> str:
  """Per GCA program and cell: |cos(X, X')|, |cos(X, Y)| and the gate, mean ± std over seeds."""
  cells = sorted({c.split("/")[1] for c in df.columns if c.startswith("align/")})
  lines = [
    r"| sources | cell | \|cos(X, X′)\| | \|cos(X, Y)\| | alpha |",  # \| keeps the columns
    "|---|---|---|---|---|",
  ]
  for (sources, _), g in df[df["axis.cell"] == "gca"].groupby(
    ["axis.sources", "axis.cell"], sort=False
  ):
    for cell in cells:
      col = f"align/{cell}/mean_abs_cos"
      if col not in g or g[col].isna().all():
        continue
      lines.append(
        f"| {sources} | {cell} | {_cell(g[col])} | {_cell(g[f'align/{cell}/xy_mean_abs_cos'])} "
        f"| {_cell(g[f'align/{cell}/alpha'])} |"
      )
  return "\n".join(lines)


def _paired(df: pd.DataFrame, treated: tuple[str, str], control: tuple[str, str]) -> list[str]:
  """Markdown rows comparing two programs (sources, cell) over the seeds both finished."""
  pick = lambda s, c: df[(df["axis.sources"] == s) & (df["axis.cell"] == c)].set_index("seed")
  t, c = pick(*treated), pick(*control)
  seeds = sorted(set(t.index) & set(c.index))
  if not seeds:  # a program not finished yet: listed under "Not finished"
    return []
  rows = []
  for m in ("auc", "gauc", "logloss"):
    col = f"test/{m}"
    a, b = t.loc[seeds, col].to_numpy(float), c.loc[seeds, col].to_numpy(float)
    cmp = stats.paired_comparison(a, b)
    better = (a > b) if HIGHER_IS_BETTER[m] else (a < b)
    rows.append(
      f"| {treated[0]}/{treated[1]} − {control[0]}/{control[1]} | {m} | {cmp.n} | "
      f"{formatting.number(cmp.mean_diff)} | [{formatting.number(cmp.ci95[0])}, "
      f"{formatting.number(cmp.ci95[1])}] | {formatting.p_value(cmp.t_p)} | "
      f"{formatting.p_value(cmp.wilcoxon_p)} | {int(better.sum())}/{cmp.n} |"
    )
  return rows


def comparison_table(df: pd.DataFrame) -> str:
  """GCA minus plain per source setting; each source setting (plain) minus the ads history alone."""
  lines = [
    "| comparison | metric | seeds | mean difference | 95 % CI | paired t p | Wilcoxon p | "
    "seeds better |",
    "|---|---|---|---|---|---|---|---|",
  ]
  settings = [s for s in dict.fromkeys(df["axis.sources"]) if s != "none"]
  for s in settings:
    lines += _paired(df, (s, "gca"), (s, "plain"))
  if "none" in set(df["axis.sources"]):
    for s in settings:
      lines += _paired(df, (s, "plain"), ("none", "plain"))
  return "\n".join(lines)


def render(root: str, note: str = "") -> str:
  """The report of the grid at `root` (module docstring)."""
  grid = results.load_grid(root)
  df = grid.df
  if df.empty:
    raise errors.DataError("no finished run in the grid yet", path=root)
  parts = [
    "# Click prediction on the ads scenario: sources and GCA",
    "",
    note,
    "",
    "## Test metrics per program (mean ± std over seeds)",
    "",
    "Groups: cold = impressions without an earlier click of the user in the ads domain, warm = "
    "with at least one. PCOC = predicted / observed click rate.",
    "",
    program_table(df),
    "",
    "## GCA cells on the test impressions (mean ± std over seeds)",
    "",
    alignment_table(df),
    "",
    "## Paired comparisons over seeds",
    "",
    "Each seed gives the same data, the same shuffles and the same initial weights of the layers "
    "two programs share, so their results pair by seed. With 5 seeds the exact Wilcoxon test "
    "cannot go below p = 0.0625.",
    "",
    comparison_table(df),
  ]
  if grid.missing:
    parts += ["", "Not finished: " + ", ".join(f"{n} ({why})" for n, why in grid.missing)]
  return "\n".join(parts) + "\n"


@errors.cli_main(also=(OSError,))
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status."""
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.analysis.ctr_report", description=__doc__.split("\n")[0]
  )
  parser.add_argument("--grid", required=True, help="the grid's root folder (grid.json)")
  parser.add_argument("--out", help="folder for README.md (default: print only)")
  parser.add_argument("--note", default="", help="a paragraph under the title (how it was run)")
  args = parser.parse_args(argv)
  text = render(args.grid, args.note)
  print(text)
  if args.out:
    writable_dir(args.out, "the report folder (--out)", errors.RunError)
    path = os.path.join(args.out, "README.md")
    atomic_write_text(path, text)
    print(f"report written: {path}", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
