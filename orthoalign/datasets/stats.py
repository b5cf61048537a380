"""Dataset statistics of any format, on the command line (datasets/summary.py computes them).

  python -m orthoalign.datasets.stats --format=prepared --path=data/prepared/abxi-afk
  python -m orthoalign.datasets.stats --format=synthetic --json
  python -m orthoalign.datasets.stats --format=events --path=logs/events.csv --option user=uid

Prints users (overlapped / A-only / B-only), items and interactions per domain, sequence-length
percentiles, the domain-switch rate, whether each sequence is one merged cross-domain timeline,
the held-out users also seen in training (when recorded) and the valid/test targets per domain.
`loaders()` maps each `--format` of `orthoalign.datasets.load` to a callable(path) -> CDSRDataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import json
import sys

from orthoalign import errors
from orthoalign.datasets import formats
from orthoalign.datasets import load as data_load
from orthoalign.datasets import summary
from orthoalign.datasets import synthetic
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.errors import DataError


def loaders() -> dict[str, Callable[..., CDSRDataset]]:
  """--format -> callable(path, reader_options=None) -> CDSRDataset: every format of
  datasets/formats.py.
  """

  def loader(fmt: str) -> Callable[..., CDSRDataset]:
    if fmt == formats.SYNTHETIC:
      return lambda path, reader_options=None: synthetic.generate(synthetic.SyntheticConfig())
    return lambda path, reader_options=None: data_load.load_path(
      fmt, path, reader_options=reader_options
    )

  return {f: loader(f) for f in formats.FORMATS}


# Path-less formats; every other one needs --path.
_NO_PATH = (formats.SYNTHETIC,)


@errors.cli_main(also=(OSError,))
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status."""
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.datasets.stats", description=__doc__.split("\n")[0]
  )
  by_format = loaders()
  parser.add_argument(
    "--format", required=True, help=f"input format, one of: {', '.join(sorted(by_format))}"
  )
  parser.add_argument("--path", default=None, help="input folder or file (unused by synthetic)")
  parser.add_argument("--json", action="store_true", help="print one JSON object instead")
  parser.add_argument(
    "--option",
    action="append",
    metavar="KEY=VALUE",
    default=[],
    help="reader option (data.reader_options), repeatable, e.g. events' column mapping",
  )
  args = parser.parse_args(argv)
  loader = by_format.get(args.format)
  if loader is None:
    raise DataError(
      f"unknown format {args.format!r}; valid formats: {', '.join(sorted(by_format))}",
      key="--format",
    )
  if args.path is None and args.format not in _NO_PATH:
    raise DataError(f"--format={args.format} needs --path", key="--path")
  options = {}
  if args.option:
    if args.format in _NO_PATH:
      raise DataError(f"--format={args.format} takes no reader options", key="--option")
    options = formats.options_from_flags(formats.get(args.format), args.option)
  stats = summary.compute(loader(args.path, reader_options=options))
  if stats.get("duplicate_rows"):
    print(
      f"warning: {stats['duplicate_rows']} exact duplicate (user, item, timestamp) row(s); a "
      "user whose last two rows repeat has the same validation and test target",
      file=sys.stderr,
    )
  print(json.dumps(stats, indent=2) if args.json else summary.format_text(stats))
  return 0


if __name__ == "__main__":
  sys.exit(main())
