r"""Write a markdown report (mean ± std over replicas) from finished runs.

  python -m orthoalign.analysis.report runs/abxi runs/abxi_gca_early runs/abxi_gca_stack \
      --title="ABXI on Food-Kitchen" --out=docs/results/abxi_afk.md
"""

from __future__ import annotations

import sys
from typing import Sequence

from orthoalign.analysis import results
from orthoalign.data import cli
from orthoalign.data.errors import DataError
from orthoalign.fileio import atomic_write_text


def render(workdirs: Sequence[str], title: str, note: str = "") -> str:
  df = results.load_runs(workdirs)
  parts = [f"# {title}", ""]
  if note:
    parts += [note, ""]
  n_neg = df["config.eval.num_negatives"].iloc[0] if "config.eval.num_negatives" in df else "?"
  for protocol, label in (("sampled", f"sampled protocol: target vs {n_neg} negatives of its domain"),
                          ("full", "full ranking over the target's domain")):
    parts += [f"## Test, {label}", "", "Mean ± std over replicas (seeds), each at its best "
              "validation epoch.", "", results.metric_table(df, "test", protocol), ""]
  parts += ["## Orthogonal alignment at the best epoch (validation inputs)", "",
            results.alignment_table(df), "", "## Runs", "", results.run_table(df), ""]
  return "\n".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.Parser(prog="python -m orthoalign.analysis.report", description=__doc__.split("\n")[0])
  parser.add_argument("workdirs", nargs="+", help="run folders holding results.jsonl")
  parser.add_argument("--title", default="Results")
  parser.add_argument("--note", default="", help="a paragraph under the title (command, hardware, date)")
  parser.add_argument("--out", default=None, help="write the markdown here (atomically)")
  args = parser.parse_args(argv)
  try:
    text = render(args.workdirs, args.title, args.note)
  except DataError as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  if args.out:
    atomic_write_text(args.out, text)
  print(text)
  return 0


if __name__ == "__main__":
  sys.exit(main())
