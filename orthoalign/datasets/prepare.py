"""Prepares a dataset store, or writes a dataset as RecBole atomic files.

From two raw Amazon domain files with a recipe:
  python -m orthoalign.datasets.prepare --recipe=abxi \\
      --domain-a=ratings_Grocery_and_Gourmet_Food.csv \\
      --domain-b=ratings_Home_and_Kitchen.csv --out=data/afk-raw \\
      [--meta-a=meta_Grocery_and_Gourmet_Food.json.gz --meta-b=...] \\
      [--param k_i=10 --param max_len=50] [--on-bad-line=error|skip]
From any file-based format (`data.format`), e.g. a team's own events table:
  python -m orthoalign.datasets.prepare --format=events --path=logs/events.csv \\
      --option user=uid --option item=ad_id --option time=ts --option domain=app \\
      --option domains=books,movies --option user_core=5 --out=data/mylog
As RecBole atomic files (any of the sources above, or a prepared folder):
  python -m orthoalign.datasets.prepare --dataset=data/mylog --export=recbole --out=recbole/mylog

`--export=prepared` (the default) writes `dataset.npz` + `manifest.json` (recipe or format,
resolved params or reader options, source files with sha256, bad-line report, duplicate rows,
the filters' passes) through `orthoalign.datasets.store`; `--export=recbole` writes
`<out>/<domain>/<domain>.inter` (+ `.item` with titles) per domain (readers/recbole.py). Then it
prints the dataset summary. Bad input ends with one line `error: <what and where>` and exit
status 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import dataclasses
import json
import os
import sys

from orthoalign import errors
from orthoalign.datasets import formats
from orthoalign.datasets import recipes
from orthoalign.datasets.badlines import POLICIES
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import recbole
from orthoalign.errors import DataError


def _parser() -> argparse.ArgumentParser:
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.datasets.prepare",
    description="Build a CDSR dataset store from two raw Amazon domain files (2014 ratings CSV, "
    "2014/2018 review JSON, 2023 JSONL; plain or .gz) with a recipe, or from any file-based "
    "format (--format/--path, e.g. an events table), or a prepared folder (--dataset); or write "
    "it as RecBole atomic files (--export=recbole).",
  )
  parser.add_argument("--recipe", choices=sorted(recipes.RECIPES), help="preprocessing pipeline")
  parser.add_argument("--domain-a", help="domain-A interactions file (with --recipe)")
  parser.add_argument("--domain-b", help="domain-B interactions file (with --recipe)")
  parser.add_argument("--meta-a", help="optional domain-A metadata (titles; with --recipe)")
  parser.add_argument("--meta-b", help="optional domain-B metadata (titles; with --recipe)")
  parser.add_argument(
    "--format",
    choices=sorted(formats.READERS),
    help="read --path in this format (data.format), e.g. events or recbole",
  )
  parser.add_argument("--path", help="the file or folder to read (with --format)")
  parser.add_argument(
    "--option",
    action="append",
    metavar="KEY=VALUE",
    default=[],
    help="reader option (data.reader_options), repeatable; events: "
    + ", ".join(formats.get("events").options),
  )
  parser.add_argument("--dataset", help="a prepared folder to read (same as --format=prepared)")
  parser.add_argument("--out", required=True, help="folder to write")
  parser.add_argument(
    "--export",
    choices=EXPORTS,
    default="prepared",
    help="what to write: a dataset store (default) or RecBole atomic files",
  )
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


EXPORTS = ("prepared", "recbole")


def _source(args: argparse.Namespace) -> str:
  """Which of the three sources the flags name (exactly one), else a one-line DataError."""
  given = {
    "--recipe": args.recipe is not None,
    "--format": args.format is not None,
    "--dataset": args.dataset is not None,
  }
  named = [flag for flag, on in given.items() if on]
  if len(named) != 1:
    raise DataError(
      f"got {named or 'none'}; expected one source: --recipe with --domain-a/--domain-b, "
      "--format with --path, or --dataset",
      key="flags",
    )
  needs = {
    "--recipe": ("--domain-a", "--domain-b"),
    "--format": ("--path",),
    "--dataset": (),
  }[named[0]]
  for flag in needs:
    if getattr(args, flag[2:].replace("-", "_")) is None:
      raise DataError(f"{named[0]} needs {flag}", key="flags")
  alone = {
    "--recipe": ("--option",),
    "--format": ("--param",),
    "--dataset": ("--param", "--option"),
  }
  for flag in alone[named[0]]:
    if getattr(args, flag[2:]):
      raise DataError(f"{flag} does not go with {named[0]}", key="flags")
  return named[0]


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
  source = _source(args)
  # Imported here so that a broken store cannot stop `--help`.
  from orthoalign.datasets import store  # pylint: disable=g-import-not-at-top

  bad = BadLines(args.on_bad_line)
  name = args.name or os.path.basename(os.path.normpath(args.out))
  report: dict = {}
  if source == "--recipe":
    recipe = recipes.get_recipe(args.recipe)
    params = recipe.resolve_params(formats.parse_pairs(args.param, "--param"))
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
    sources = [p for p in (args.domain_a, args.domain_b, args.meta_a, args.meta_b) if p]
    extra = {
      "recipe": recipe.name,
      "params": params,
      # Exact duplicate (user, item, timestamp) rows in the input (before the recipe's filters)
      # and what the `duplicates` policy did with them; statistics.duplicate_rows counts those
      # left in the dataset.
      "duplicates": report.get("duplicates", {}),
    }
  else:
    fmt = formats.get(args.format or "prepared")
    path = args.path or args.dataset
    options = formats.reader_options(fmt, formats.options_from_flags(fmt, args.option))
    if not os.path.exists(path):
      raise DataError("no such file or folder", path=path)
    if fmt.name == "prepared":  # Its manifest may name the log's domains (an events table's).
      ds, manifest = store.load_dataset(path)
      report = {k: manifest[k] for k in ("domains",) if k in manifest}
    else:
      ds = fmt.read(path, bad, **options, **({"report": report} if fmt.reports else {}))
    ds = dataclasses.replace(ds, name=name)
    sources = fmt.source_files(path, options)
    extra = {"recipe": f"read:{fmt.name}", "params": {"reader_options": options}, **report}
  if args.export == "recbole":
    written = recbole.export(ds, args.out, report.get("domains"))
    print(json.dumps(ds.summary(), indent=2))
    print(f"wrote {len(written)} RecBole atomic file(s) under {args.out}", file=sys.stderr)
  else:
    store.save_dataset(
      ds, args.out, manifest_extra={"sources": sources, "bad_lines": bad.report(), **extra}
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
