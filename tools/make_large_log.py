r"""Writes a random events table of N events, to measure how large a log prepares on one machine.

  python tools/make_large_log.py --events=10000000 --out=/tmp/log10m.csv [--format=parquet]

Columns user_id, item_id, ts (unix seconds over one year), app (three domains: books 50 %,
movies 35 %, music 15 %), clicked (0/1, 90 % ones). Users: N / 20 of them, each event's user
drawn uniformly (so about 20 events each); items: 100,000 per domain, drawn from a Zipf law
(a = 1.2), as real catalogs are skewed. Ids are strings like u0001234 and b000567. The log is
written in time order in parts of one million rows (pandas; Parquet through pyarrow), seed 0.
"""

import argparse
import os

import numpy as np
import pandas as pd


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--events", type=int, required=True)
  parser.add_argument("--out", required=True)
  parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  n, users = args.events, max(args.events // 20, 1)
  ts = np.sort(rng.integers(1_700_000_000, 1_700_000_000 + 365 * 86_400, n))
  part = 1_000_000
  if os.path.exists(args.out):
    os.remove(args.out)
  for start in range(0, n, part):
    m = min(part, n - start)
    dom = rng.choice(3, m, p=[0.5, 0.35, 0.15])
    item = np.minimum(rng.zipf(1.2, m), 100_000)
    frame = pd.DataFrame(
      {
        "user_id": np.char.add("u", np.char.zfill(rng.integers(0, users, m).astype(str), 7)),
        "item_id": np.char.add(np.array(["b", "m", "s"])[dom], np.char.zfill(item.astype(str), 6)),
        "ts": ts[start : start + m],
        "app": np.array(["books", "movies", "music"])[dom],
        "clicked": (rng.random(m) < 0.9).astype(np.int8),
      }
    )
    if args.format == "parquet":
      import pyarrow as pa  # pylint: disable=g-import-not-at-top
      import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top

      os.makedirs(args.out, exist_ok=True)
      pq.write_table(
        pa.Table.from_pandas(frame), os.path.join(args.out, f"part-{start // part:04d}.parquet")
      )
    else:
      frame.to_csv(args.out, mode="a", header=start == 0, index=False)
  print(f"wrote {args.out}: {n:,} events, {users:,} users")


if __name__ == "__main__":
  main()
