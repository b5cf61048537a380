r"""Write a markdown report (mean ± std over replicas) from finished runs, or from a whole grid.

Runs given one by one (markdown to --out, a file):
  python -m orthoalign.analysis.report runs/abxi runs/abxi_gca_early runs/abxi_gca_stack \
      --title="ABXI on Food-Kitchen" --out=docs/results/abxi_afk.md

A grid (ROOT/grid.json from the grid runner, one workdir per run; --out is a folder that gets
README.md, the figures and table1.tex):
  python -m orthoalign.analysis.report --grid=runs/grids/corr --out=docs/results/corr

The markdown goes to stdout too. Programs that stopped at train.max_epochs before early stopping
ended them (`results.cut_short`) get a warning under the title and a "warning: ..." line after the
markdown; the last line names the file written ("report written: PATH", in grid mode with the
folder of the figures), and is left out when nothing was written (run folders without --out).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import os
import sys

import pandas as pd

from orthoalign import errors
from orthoalign.analysis import alignment
from orthoalign.analysis import correlations
from orthoalign.analysis import history
from orthoalign.analysis import results
from orthoalign.analysis import scaling_curves
from orthoalign.analysis import tables
from orthoalign.analysis import variants
from orthoalign.errors import DataError
from orthoalign.fileio import atomic_write_text
from orthoalign.fileio import writable_dir
from orthoalign.metrics import keys


def render(workdirs: Sequence[str], title: str, note: str = "") -> str:
  """The markdown report of run folders (`render_runs` of their `results.load_runs` frame)."""
  return render_runs(results.load_runs(workdirs), title, note)


def render_runs(df: pd.DataFrame, title: str, note: str = "") -> str:
  """The markdown report of a `results.load_runs` frame: test metrics, alignment, runs."""
  parts = [f"# {title}", ""]
  if note:
    parts += [note, ""]
  parts += _cut_short_markdown(df)
  n_neg = df["config.eval.num_negatives"].iloc[0] if "config.eval.num_negatives" in df else "?"
  for protocol in keys.row_protocols([{c: None for c in df.columns}], "test"):
    if protocol == keys.SAMPLED:
      label = f"sampled protocol: target vs {n_neg} negatives of its domain"
    elif protocol == keys.FULL:
      label = "full ranking over the target's domain"
    else:
      label = (
        f"{protocol} protocol: target vs {protocol[len(keys.SAMPLED) :]} negatives of its "
        "domain (own frozen set, items scored as in full ranking)"
      )
    parts += [
      f"## Test, {label}",
      "",
      "Mean ± std over replicas (seeds), each at its best validation epoch.",
      "",
      results.metric_table(df, "test", protocol),
      "",
    ]
  parts += [
    "## Orthogonal alignment at the best epoch (validation inputs)",
    "",
    results.alignment_table(df),
    "",
    "## Runs",
    "",
    results.run_table(df),
    "",
  ]
  return "\n".join(parts)


_CUT_SHORT_NOTE = (
  "Their test metrics are of models that may still have been improving: a program is cut "
  "short when it trained train.max_epochs epochs while some replica had not early-stopped "
  "(fewer than train.early_stop_patience validations after its best epoch; "
  "`orthoalign.analysis.results.cut_short`)."
)


def warnings_of(df: pd.DataFrame) -> list[tuple[str, str]]:
  """The report's warnings about these runs: (headline, details) pairs.

  Today only `results.cut_short_warnings`: programs stopped by train.max_epochs.
  """
  return [] if df.empty else results.cut_short_warnings(df)


def _cut_short_markdown(df: pd.DataFrame) -> list[str]:
  """The warnings as bold markdown lines under the title, and what they mean ([] if none)."""
  warnings = warnings_of(df)
  if not warnings:
    return []
  out = []
  for head, details in warnings:
    out += [f"**Warning: {head}**: {details}", ""]
  return out + [_CUT_SHORT_NOTE, ""]


# ---------------------------------------------------------------------------------------------
# Grid mode.


def _section(parts: list[str], title: str, build: Callable[[], list[str]]) -> None:
  """Appends a section; any data problem becomes a one-line remark instead of an exception."""
  try:
    body = build()
  except Exception as e:  # noqa: BLE001  (a report of a partial grid must still be written)
    body = [f"(skipped: {type(e).__name__}: {e})", ""]
  parts += [f"## {title}", ""] + body


def _link(out: str, path: str) -> str:
  rel = os.path.relpath(path, out)
  return f"![{os.path.splitext(os.path.basename(rel))[0]}]({rel})"


def _matching(meta: dict) -> list[str]:
  """The scaling grid's parameter matching (grid.json meta.scaling), as markdown lines."""
  scaling = (meta.get("meta") or {}).get("scaling")
  if not scaling:
    return []
  lines = [
    f"GCA unit: {scaling['unit_params']:,} parameters per GCA position (both directions). "
    f"Baseline sizes matched by growing `{scaling['grown_key']}` "
    f"(orthoalign/models/param_count.py):",
    "",
    "| matched to | target (total) | width | achieved (total) | trainable | error |",
    "|---|---|---|---|---|---|",
  ]
  for m in scaling["matches"]:
    lines.append(
      f"| {m['matched_to']} | {m['target']:,} | {m['value']} | {m['total']:,} | "
      f"{m['trainable']:,} | {100 * m['rel_error']:+.2f} % |"
    )
  return lines + [""]


def render_grid(grid: results.Grid, out: str, title: str | None = None, note: str = "") -> str:
  """Writes figures (and table1.tex) into `out` and returns the README markdown."""
  from orthoalign.analysis import figures  # matplotlib only when figures are drawn

  meta, df = grid.meta, grid.df
  parts = [f"# {title or meta.get('name') or os.path.basename(os.path.abspath(grid.root))}", ""]
  if note:
    parts += [note, ""]
  runs = meta["runs"]
  axes: dict[str, list[str]] = {}
  for run in runs:
    for k, v in (run.get("axes") or {}).items() if isinstance(run, dict) else ():
      axes.setdefault(k, [])
      if str(v) not in axes[k]:
        axes[k].append(str(v))
  parts += [
    "## Grid",
    "",
    f"- name: {meta.get('name', '—')}",
    f"- grid file: `{meta.get('grid', '—')}`",
    f"- root: `{grid.root}`",
    f"- programs (workdirs): {len(runs)} listed, {len(runs) - len(grid.missing_runs())} "
    "finished" + (f", holding {len(df)} runs (replicas)" if len(df) else ""),
  ]
  parts += [f"- axis `{k}`: {', '.join(v)}" for k, v in axes.items()]
  parts.append("")
  parts += _cut_short_markdown(df)
  if grid.missing:
    parts += ["### Not included", "", "| run | why |", "|---|---|"]
    parts += [f"| {n} | {why} |" for n, why in grid.missing]
    parts.append("")
  if df.empty:
    parts += ["No finished runs yet.", ""]
    return "\n".join(parts)
  df = variants.add_variant(variants.label_datasets(df))
  present = set(df["variant"])

  def table1_section() -> list[str]:
    if "plain" not in present or present == {"plain"}:
      return ["(skipped: needs plain and GCA variants)", ""]
    t = tables.table1(df)
    tex = "\n".join(tables.table1_latex(t, p) for p in t.protocols)
    atomic_write_text(os.path.join(out, "table1.tex"), tex)
    body = [
      "Test metrics at each run's best validation epoch (paper.md §3.1). LaTeX: "
      "[table1.tex](table1.tex) (all metrics).",
      "",
      tables.table1_markdown(t, paired_metrics=("ndcg@1", "ndcg@10", "auc")),
    ]
    for group in tables.user_groups(df):
      body += [
        f"#### By user group: {group}",
        "",
        tables.table1_markdown(
          tables.table1(df, ("sampled",), group=group), paired_metrics=("ndcg@10",)
        ),
      ]
    return body

  # Runs whose cell has an intervention: their X′ is set by it, so the paper's analyses (the
  # correlation, the pooled alignment) leave them out; their own section compares them.
  touched = tables.intervened(df)
  untouched = df[~touched]
  left_out = (
    [
      f"Runs with an intervention on the GCA cell ({int(touched.sum())}) are left out "
      "here: the intervention sets their X′ (see 'Interventions on the GCA cell').",
      "",
    ]
    if touched.any()
    else []
  )

  def intervention_section() -> list[str]:
    pr = tables.interventions(df, metrics=("ndcg@10", "auc"))
    if pr.empty:
      return ["(skipped: no run with gca.intervention has a matching run without it)", ""]
    body = [
      "Each intervention on the GCA cell (`gca.intervention`: X′ replaced by its part "
      "orthogonal to X, by its part along X, or computed from another user's other-domain "
      "history) against the same cell without it, over matching seeds (test, each run at "
      "its best validation epoch; treated − untouched).",
      "",
    ]
    for protocol in dict.fromkeys(pr["protocol"]):
      body += [
        f"**{protocol} protocol**",
        "",
        *tables.paired_markdown(pr[pr["protocol"] == protocol]),
        "",
      ]
    return body + [
      f"Note: {tables.WILCOXON_FOOTNOTE}",
      "",
      "Alignment of the X′ added and of X′ before the intervention (mean over cells per run, "
      "then mean ± std over runs; best validation epoch, validation inputs; docs/metrics.md):",
      "",
      alignment.alignment_by_condition_markdown(alignment.alignment_by_condition(df)),
    ]

  def correlation_section() -> list[str]:
    runs = untouched
    pts = correlations.correlation_points(runs)
    n_runs = len(pts[["run", "replica"]].drop_duplicates()) if not pts.empty else 0
    if n_runs < 3:
      return [f"(skipped: needs ≥ 3 GCA runs with a GCA[0] cell, has {n_runs})", ""]
    body = left_out + [
      "Orthogonality, \\|cos(X, X′)\\| (`abs_mean_cos` of cell gca0_<domain>), against test "
      "NDCG@10 per model and domain (Figure 2, paper.md §2.2).",
      "",
      correlations.correlation_markdown(correlations.correlation(runs)),
    ]
    widths = variants.width_of(runs).dropna().nunique()
    if widths > 1:
      body += [
        "Stratified by model width (|cos| of unrelated d-dim vectors shrinks like 1/√d):",
        "",
        correlations.correlation_markdown(correlations.correlation(runs, by=("width",))),
      ]
    body += [_link(out, p) for p in figures.correlation_figure(runs, out)] + [""]
    h = grid.histories
    if h is not None and any(c.startswith("test/") for c in h.columns):
      try:
        c = correlations.correlation(runs, epoch="best_test", histories=h)
        body += [
          "**Paper's selection** (each point at its best *test* epoch, paper.md §2.1: "
          "selected on the test set, so optimistic):",
          "",
          correlations.correlation_markdown(c),
        ]
        body += [
          _link(out, p)
          for p in figures.correlation_figure(
            runs, os.path.join(out, "best_test"), epoch="best_test", histories=h
          )
        ] + [""]
      except DataError as e:
        body += [f"(best-test selection skipped: {e})", ""]
    return body

  def scaling_section() -> list[str]:
    plain_sizes = df.loc[df["variant"] == "plain", "params/total"].nunique()
    if plain_sizes < 2:
      return [f"(skipped: needs ≥ 2 plain baseline sizes, has {plain_sizes})", ""]
    s = scaling_curves.scaling(df)
    return (
      [
        "Test NDCG@10 against total parameters (Figure 3, paper.md §4).",
        "",
        scaling_curves.scaling_markdown(s),
      ]
      + [_link(out, p) for p in figures.scaling_figure(df, out)]
      + [""]
      + _matching(meta)
    )

  def alignment_section() -> list[str]:
    a = alignment.alignment_summary(untouched)
    if a.empty:
      return ["(skipped: no GCA cells in these runs)", ""]
    return (
      left_out
      + [
        "Pooled over GCA cells, domains and replicas, at the best validation epoch (validation "
        "inputs; Figure 8, paper.md §2.1).",
        "",
        alignment.alignment_markdown(a),
      ]
      + [_link(out, p) for p in figures.alignment_boxplots(untouched, out)]
      + [""]
    )

  def trajectory_section() -> list[str]:
    h = grid.histories
    names = list(dict.fromkeys(df.loc[df["variant"] != "plain", "run"]))
    if h is None or not names:
      return ["(skipped: needs GCA runs with history.jsonl)", ""]
    t = history.trajectory_summary(h[h["run"].isin(names)])
    body = [
      "|cos(X, X′)| (`abs_mean_cos`, validation inputs, mean over cells and replicas) and "
      "gate α at the first and the last validated epoch of every GCA program ('as training "
      "goes by, cos(X, X′) goes to zero', paper.md §2.1):",
      "",
      history.trajectory_summary_markdown(t),
      "",
    ]
    # One validated epoch is a point, not a trajectory: such programs get no figure.
    drawn = [
      n for n in names if history.validated_epochs(history.trajectory(h[h["run"] == n])) >= 2
    ]
    if not drawn:
      return body + ["(trajectory figures skipped: no program has ≥ 2 validated epochs)", ""]
    for name in drawn[:4]:  # figures for the first few programs; the table has them all
      paths = figures.trajectory_figure(
        h[h["run"] == name], os.path.join(out, f"trajectory_{name}.png")
      )
      body += [f"{name}:", ""] + [_link(out, p) for p in paths] + [""]
    return body

  def runs_section() -> list[str]:
    by = "grid.run" if "grid.run" in df.columns else "run"
    return [
      results.run_table(df, by=by),
      "",
      "Test, sampled protocol, per run:",
      "",
      results.metric_table(df, "test", "sampled", by=by),
      "",
    ]

  _section(parts, "Table 1: baseline vs. GCA", table1_section)
  if tables.INTERVENTION in df.columns and (df[tables.INTERVENTION].fillna("none") != "none").any():
    _section(parts, "Interventions on the GCA cell", intervention_section)
  _section(parts, "Orthogonality vs. accuracy", correlation_section)
  _section(parts, "Scaling and parameter efficiency", scaling_section)
  _section(parts, "Alignment summary", alignment_section)
  _section(parts, "Alignment over training", trajectory_section)
  _section(parts, "Runs", runs_section)
  return "\n".join(parts)


@errors.cli_main
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status (1 after a one-line error)."""
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.analysis.report", description=__doc__.split("\n")[0]
  )
  parser.add_argument("workdirs", nargs="*", help="run folders holding results.jsonl")
  parser.add_argument("--grid", default=None, help="grid folder holding grid.json (grid mode)")
  parser.add_argument("--title", default=None)
  parser.add_argument(
    "--note", default="", help="a paragraph under the title (command, hardware, date)"
  )
  parser.add_argument(
    "--out",
    default=None,
    help="write the markdown here (atomically); in grid "
    "mode a folder (default GRID/report) for README.md and the figures",
  )
  args = parser.parse_args(argv)
  if bool(args.grid) == bool(args.workdirs):
    parser.error("give either run folders or --grid=ROOT")
  if args.grid:
    out = args.out or os.path.join(args.grid, "report")
    grid = results.load_grid(args.grid)  # before the folder: a wrong --grid writes nothing
    if os.path.exists(out) and not os.path.isdir(out):
      raise DataError(
        "--out is a file; in grid mode it names a folder (for README.md and the figures)", path=out
      )
    writable_dir(out, "the report (--out)", DataError)
    text = render_grid(grid, out, args.title, args.note)
    path = os.path.join(out, "README.md")
    atomic_write_text(path, text)
    written = f"report written: {path} (figures and table1.tex in {out})"
    df = grid.df
  else:
    if args.out:
      if os.path.isdir(args.out) or args.out.endswith(os.sep):
        raise DataError(
          "--out is a folder; with run folders it names the markdown file, e.g. --out=report.md",
          path=args.out,
        )
      writable_dir(os.path.dirname(os.path.abspath(args.out)), "the report (--out)", DataError)
    df = results.load_runs(args.workdirs)
    text = render_runs(df, args.title or "Results", args.note)
    written = None
    if args.out:
      atomic_write_text(args.out, text)
      written = f"report written: {args.out}"
  print(text)
  # Repeated after the markdown, where a terminal shows them.
  for head, details in warnings_of(df):
    print(f"warning: {head}: {details}")
  if written:
    print(written)
  return 0


if __name__ == "__main__":
  sys.exit(main())
