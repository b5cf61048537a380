"""Dataset statistics of any format, on the command line (datasets/summary.py computes them).

  python -m orthoalign.datasets.stats --format=prepared --path=data/prepared/abxi-afk
  python -m orthoalign.datasets.stats --format=synthetic --json

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


def loaders() -> dict[str, Callable[[str], CDSRDataset]]:
  """--format -> callable(path) -> CDSRDataset: every format of datasets/formats.py."""

  def loader(fmt: str) -> Callable[[str], CDSRDataset]:
    if fmt == formats.SYNTHETIC:
      return lambda path: synthetic.generate(synthetic.SyntheticConfig())
    return lambda path: data_load.load_path(fmt, path)

  return {f: loader(f) for f in formats.FORMATS}


# Path-less formats; every other one needs --path.
_NO_PATH = (formats.SYNTHETIC,)


@errors.cli_main(also=(OSError,))
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status."""
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.datasets.stats", description=__doc__.split("\n")[0]
  )
  formats = loaders()
  parser.add_argument(
    "--format", required=True, help=f"input format, one of: {', '.join(sorted(formats))}"
  )
  parser.add_argument("--path", default=None, help="input folder or file (unused by synthetic)")
  parser.add_argument("--json", action="store_true", help="print one JSON object instead")
  args = parser.parse_args(argv)
  loader = formats.get(args.format)
  if loader is None:
    raise DataError(
      f"unknown format {args.format!r}; valid formats: {', '.join(sorted(formats))}", key="--format"
    )
  if args.path is None and args.format not in _NO_PATH:
    raise DataError(f"--format={args.format} needs --path", key="--path")
  stats = summary.compute(loader(args.path))
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
