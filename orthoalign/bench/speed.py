r"""Training speed: compile time, steps/s, sequences/s, epoch time and peak memory, per R.

  python -m orthoalign.bench.speed --config=configs/llm4cdsr.py --replicas=1,8 --epochs=3 \
      --out=/tmp/orthoalign/bench.json

For each replica count R the same config is set up with sweep.seeds = (0, ..., R-1) and every
other replica list emptied (config/replica_axes.py), one epoch program is compiled (timed), then
`--epochs` epochs are timed after one warm-up epoch, and one validation pass is timed.
sequences/s counts training sequences over all replicas. The other benchmarks: `profile` (where
one step's time goes) and `catalogue` (full-catalogue evaluation split over devices).
"""

from __future__ import annotations

import json
import time
from typing import Any

from absl import app
from absl import flags
import jax
import numpy as np

from orthoalign import errors
from orthoalign.bench import cli
from orthoalign.config import flags as flag_checks
from orthoalign.config import replica_axes
from orthoalign.train import build

_REPLICAS = flags.DEFINE_list("replicas", ["1", "8"], "Replica counts R to measure.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Timed epochs per R (after one warm-up epoch).")


def measure(config, replicas: int, epochs: int) -> dict[str, Any]:
  """Times one replica count; returns a JSON-able dict."""
  config = config.copy_and_resolve_references()
  config.unlock()
  replica_axes.one_replica(config.sweep, seeds=tuple(range(replicas)))
  run = build.setup(config)
  state = run.state
  t0 = time.perf_counter()
  compiled = run.epoch_fn.lower(state, run.train_data, run.frozen, run.epoch_arg(1)).compile()
  compile_s = time.perf_counter() - t0
  state, m = compiled(state, run.train_data, run.frozen, run.epoch_arg(1))  # warm-up
  jax.block_until_ready(m)
  times = []
  for e in range(epochs):
    t0 = time.perf_counter()
    state, m = compiled(state, run.train_data, run.frozen, run.epoch_arg(e + 2))
    jax.block_until_ready(m)
    times.append(time.perf_counter() - t0)
  sums = run.eval_fn(state.params, run.frozen, run.eval_data["valid"])  # compile + run
  jax.block_until_ready(sums)
  t0 = time.perf_counter()
  jax.block_until_ready(run.eval_fn(state.params, run.frozen, run.eval_data["valid"]))
  eval_s = time.perf_counter() - t0
  n_train = len(next(iter(run.task.train_data.values())))
  epoch_s = float(np.median(times))
  return {
    "replicas": replicas,
    "compile_s": compile_s,
    "epoch_s": epoch_s,
    "epoch_s_per_replica": epoch_s / replicas,
    "steps_per_epoch": run.steps,
    "steps_per_s": run.steps / epoch_s,
    "sequences_per_s": n_train * replicas / epoch_s,
    "valid_eval_s": eval_s,
    "train_sequences": n_train,
    **cli.peak_memory(),
  }


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  del argv
  if _EPOCHS.value < 1:
    raise errors.ConfigError(f"--epochs={_EPOCHS.value}: expected an int >= 1 (timed epochs)")
  config, header = cli.start("speed")
  results = []
  for r in cli.ints("replicas", _REPLICAS.value):
    row = measure(config, r, _EPOCHS.value)
    results.append(row)
    print(
      f"R={r:>3}  compile {row['compile_s']:.1f}s  epoch {row['epoch_s']:.3f}s "
      f"({row['epoch_s_per_replica']:.3f}s per replica)  {row['steps_per_s']:.1f} steps/s  "
      f"{row['sequences_per_s']:.0f} seq/s  valid eval {row['valid_eval_s']:.2f}s",
      flush=True,
    )
    cli.write({**header, "results": results})  # after each R: a long run keeps what it measured
  if len(results) >= 2:
    a, b = results[0], results[-1]
    print(
      f"per-replica speed-up R={b['replicas']} vs R={a['replicas']}: "
      f"{a['epoch_s_per_replica'] / b['epoch_s_per_replica']:.2f}x",
      flush=True,
    )
  print(json.dumps({**header, "results": results}), flush=True)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
