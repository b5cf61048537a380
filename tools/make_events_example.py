r"""Writes examples/events_log.csv.gz, the example log configs/events.py trains on by default.

  python tools/make_events_example.py

An events table as a team would export it: one row per event, columns user_id, item_id, ts (unix
seconds), app (the domain: books, movies, music) and clicked (0/1). Books and movies are the
embedded synthetic generator's two domains (600 users, its planted cross-domain preference,
docs/data.md "Synthetic data"); every tenth event of those is also logged as a 0 (an impression
without a click); music is a third domain of random events, which the config leaves out. Fixed
seeds: the same file every time.
"""

import csv
import gzip
import io
import os

import numpy as np

from orthoalign.datasets import synthetic

OUT = os.path.join(os.path.dirname(__file__), "..", "examples", "events_log.csv.gz")


def main() -> None:
  ds = synthetic.generate(
    synthetic.SyntheticConfig(
      num_users=600, num_items_a=200, num_items_b=200, mean_length=15.0, max_length=40, seed=3
    )
  )
  rng = np.random.default_rng(3)
  user = np.repeat(np.arange(ds.num_users), np.diff(ds.offsets))
  local, domain = ds.to_local(ds.items)
  rows = []
  for i in range(ds.num_interactions):
    app = ("books", "movies")[domain[i]]
    row = [f"user{user[i]:04d}", f"{app[0]}{local[i]:03d}", int(ds.timestamps[i]), app, 1]
    rows.append(row)
    if rng.random() < 0.1:  # an impression without a click, a little later
      rows.append([row[0], f"{app[0]}{rng.integers(1, 201):03d}", row[2] + 30, app, 0])
  for u in rng.choice(ds.num_users, 150, replace=False):
    for t in rng.integers(ds.timestamps.min(), ds.timestamps.max(), rng.integers(1, 6)):
      rows.append([f"user{u:04d}", f"s{rng.integers(1, 50):03d}", int(t), "music", 1])
  rows.sort(key=lambda r: r[2])  # a log is in time order, users interleaved
  text = io.StringIO()
  writer = csv.writer(text, lineterminator="\n")
  writer.writerow(["user_id", "item_id", "ts", "app", "clicked"])
  writer.writerows(rows)
  # mtime=0: the same bytes on every run.
  with open(OUT, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as gz:
    gz.write(text.getvalue().encode())
  print(f"wrote {os.path.normpath(OUT)}: {len(rows)} events")


if __name__ == "__main__":
  main()
