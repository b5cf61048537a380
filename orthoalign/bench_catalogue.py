"""Full-catalogue evaluation with the item tables split over devices: memory per device and time.

The measurement behind `python -m orthoalign.bench --item_shards=1,4` (see orthoalign/bench.py):
for each k the config is set up on k devices with `train.item_shards=k` (k = 1: one device, nothing
split), the evaluation program is compiled, and validation passes are timed. Memory per device is
read from the shards of the arrays each device holds (fake CPU devices report no memory
statistics) plus XLA's own temp-buffer size of the compiled evaluation program where the backend
reports one.
"""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any

import jax
import ml_collections
import numpy as np

from orthoalign.train import loop

_MIB = 2**20


def bytes_per_device(*trees: Any) -> dict[str, int]:
  """{device: bytes of the shards it holds} over every array in `trees`."""
  out: dict[str, int] = collections.defaultdict(int)
  for leaf in jax.tree.leaves(trees):
    for shard in leaf.addressable_shards:
      out[str(shard.device)] += shard.data.nbytes
  return dict(out)


def _temp_bytes(compiled: Any) -> int | None:
  """XLA's temp-buffer bytes per device of a compiled program; None if the backend has none."""
  try:
    analysis = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  # not every backend implements it
    return None
  return getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None


def measure(config: ml_collections.ConfigDict, item_shards: int,
            passes: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """Sets up `config` on `item_shards` devices split along the items and times its evaluation.

  Args:
    config: the run's config (its data, model and eval keys are used as they are).
    item_shards: devices (= size of the mesh's "model" axis); 1 = one device, nothing split.
    passes: timed validation passes, after one untimed.

  Returns:
    (row, sums): row is a JSON-able dict of set-up and compile seconds, min/median/max seconds per
    validation pass ("eval_s"), the full-ranking NDCG@10 it computed, and MiB per device of the
    state (params and Adam moments), the best-params copy the trainer keeps, the frozen tables and
    XLA's temp buffers of the evaluation program; sums are the pass's metric sums (host arrays),
    to compare across shard counts (`same_sums`).
  """
  config = config.copy_and_resolve_references()
  config.unlock()
  config.train.num_devices = item_shards
  config.train.item_shards = item_shards
  t0 = time.time()
  run = loop.setup(config)
  jax.block_until_ready(run.state)
  setup_s = time.time() - t0
  args = (run.state.params, run.frozen, run.eval_data["valid"])
  t0 = time.time()
  compiled = run.eval_fn.lower(*args).compile()
  compile_s = time.time() - t0
  sums = jax.device_get(compiled(*args))
  times = []
  for _ in range(passes):
    t0 = time.time()
    jax.block_until_ready(compiled(*args))
    times.append(time.time() - t0)
  state = bytes_per_device(run.state)
  params = bytes_per_device(run.state.params)
  frozen = bytes_per_device(run.frozen)
  temp = _temp_bytes(compiled)
  ndcg = float(sums["full/all/ndcg@10"][0] / sums["full/all/count"][0])
  total = {d: state[d] + params[d] + frozen.get(d, 0) for d in state}
  row = {
      "item_shards": item_shards, "devices": len(state), "setup_s": setup_s, "compile_s": compile_s,
      "eval_s": {"min": min(times), "median": statistics.median(times), "max": max(times)},
      "valid_full_ndcg@10": ndcg,
      "mib_per_device": {"state": max(state.values()) / _MIB, "best_params": max(params.values()) / _MIB,
                         "frozen": max(frozen.values(), default=0) / _MIB,
                         "arrays_total": max(total.values()) / _MIB,
                         "eval_temp": None if temp is None else temp / _MIB},
      "num_items": run.task.num_items_a + run.task.num_items_b,
      "eval_cases": int(sums["full/all/count"][0]),
  }
  return row, sums


def same_sums(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> list[str]:
  """The keys whose metric sums differ (NaN equal to NaN); [] when two passes agree exactly."""
  return sorted(k for k in a if k not in b or not np.array_equal(a[k], b[k], equal_nan=True))


def line(row: dict[str, Any]) -> str:
  """One printed line of `measure`'s result."""
  m, e = row["mib_per_device"], row["eval_s"]
  temp = "n/a" if m["eval_temp"] is None else f"{m['eval_temp']:.0f}"
  same = row.get("same_sums_as_first")
  same = "" if same is None else f"  metric sums equal to the first: {'yes' if same else 'NO'}"
  return (f"item_shards={row['item_shards']}  compile {row['compile_s']:.1f}s  validation pass "
          f"{e['median']:.2f}s (min {e['min']:.2f}, max {e['max']:.2f})  MiB per device: state "
          f"{m['state']:.0f} + best {m['best_params']:.0f} + frozen {m['frozen']:.0f} = "
          f"{m['arrays_total']:.0f}, eval temp {temp}  full NDCG@10 at init {row['valid_full_ndcg@10']:.4f}{same}")
