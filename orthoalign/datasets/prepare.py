"""Prepares a dataset store from two raw Amazon domain files with a recipe.

  python -m orthoalign.datasets.prepare --recipe=abxi \\
      --domain-a=ratings_Grocery_and_Gourmet_Food.csv \\
      --domain-b=ratings_Home_and_Kitchen.csv --out=data/afk-raw \\
      [--meta-a=meta_Grocery_and_Gourmet_Food.json.gz --meta-b=...] \\
      [--param k_i=10 --param max_len=50] [--on-bad-line=error|skip]

Writes `dataset.npz` + `manifest.json` (recipe, resolved params, source files
with sha256, bad-line report, duplicate rows found / dropped) through
`orthoalign.datasets.store`, then prints the
dataset summary. Bad input ends with one line `error: <what and where>` and
exit status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import os
import sys

from orthoalign import errors
from orthoalign.datasets import recipes
from orthoalign.datasets.badlines import POLICIES
from orthoalign.datasets.badlines import BadLines
from orthoalign.errors import DataError


def parse_params(pairs: Sequence[str] | None) -> dict[str, str]:
  """Turns ['k=v', ...] into {'k': 'v'}; the recipe converts the values.

  Raises:
    DataError: for an item without '=' or a repeated key.
  """
  params: dict[str, str] = {}
  for pair in pairs or ():
    key, sep, value = pair.partition("=")
    key = key.strip()
    if not sep or not key:
      raise DataError(f"got {pair!r}; expected key=value", key="--param")
    if key in params:
      raise DataError(f"parameter {key!r} given twice", key="--param")
    params[key] = value.strip()
  return params


def _parser() -> argparse.ArgumentParser:
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.datasets.prepare",
    description="Build a CDSR dataset store from two raw Amazon domain "
    "files (2014 ratings CSV, 2014/2018 review JSON, 2023 "
    "JSONL; plain or .gz).",
  )
  parser.add_argument(
    "--recipe", required=True, choices=sorted(recipes.RECIPES), help="preprocessing pipeline"
  )
  parser.add_argument("--domain-a", required=True, help="domain-A interactions file")
  parser.add_argument("--domain-b", required=True, help="domain-B interactions file")
  parser.add_argument("--out", required=True, help="store folder to write")
  parser.add_argument("--meta-a", help="optional domain-A metadata (titles)")
  parser.add_argument("--meta-b", help="optional domain-B metadata (titles)")
  parser.add_argument("--name", help="dataset name (default: the --out folder name)")
  parser.add_argument(
    "--param",
    action="append",
    metavar="KEY=VALUE",
    default=[],
    help="recipe parameter, repeatable; abxi: "
    + ", ".join(recipes.RECIPES["abxi"].params)
    + "; llm4cdsr: "
    + ", ".join(recipes.RECIPES["llm4cdsr"].params),
  )
  parser.add_argument(
    "--on-bad-line",
    choices=POLICIES,
    default="error",
    help="stop at the first malformed line (default) or skip and count malformed lines",
  )
  return parser


@errors.cli_main(also=(OSError,))  # OSError: e.g. the output folder is not writable
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI.

  Args:
    argv: arguments without the program name; None = sys.argv[1:].

  Returns:
    Exit status: 0 on success, 1 on bad input (bad usage exits with
    status 1 too, through SystemExit).
  """
  args = _parser().parse_args(argv)
  recipe = recipes.get_recipe(args.recipe)
  params = recipe.resolve_params(parse_params(args.param))
  bad = BadLines(args.on_bad_line)
  name = args.name or os.path.basename(os.path.normpath(args.out))
  report: dict = {}
  ds = recipe.run(
    args.domain_a,
    args.domain_b,
    params,
    bad,
    titles_a=args.meta_a,
    titles_b=args.meta_b,
    name=name,
    report=report,
  )
  # Imported here so that a broken store cannot stop `--help`.
  from orthoalign.datasets import store  # pylint: disable=g-import-not-at-top

  sources = [p for p in (args.domain_a, args.domain_b, args.meta_a, args.meta_b) if p is not None]
  store.save_dataset(
    ds,
    args.out,
    manifest_extra={
      "recipe": recipe.name,
      "params": params,
      "sources": sources,
      "bad_lines": bad.report(),
      # Exact duplicate (user, item, timestamp) rows in the input (before the
      # recipe's filters) and what the `duplicates` policy did with them;
      # statistics.duplicate_rows counts those left in the dataset.
      "duplicates": report.get("duplicates", {}),
    },
  )
  print(json.dumps(ds.summary(), indent=2))
  print(f"wrote {args.out}", file=sys.stderr)
  if bad.total or bad.replaced:
    bad.print_summary(file=sys.stderr)
  else:
    print("no bad lines", file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())
