r"""Training-speed benchmark: compile time, steps/s, sequences/s, epoch time, peak memory, per R.

  python -m orthoalign.bench --config=configs/llm4cdsr.py --replicas=1,8 --epochs=3 \
      --out=/tmp/orthoalign/bench.json

For each replica count R the same config is set up with sweep.seeds = (0, ..., R-1), one epoch
program is compiled (timed), then `--epochs` epochs are timed after one warm-up epoch, and one
validation pass is timed. sequences/s counts training sequences over all replicas.

With --profile it instead reports where one training step's time goes (orthoalign/profiling.py):
the machine's matmul GFLOP/s and memory GB/s, XLA's FLOPs and bytes of the forward pass, forward
+ backward and the whole step against their measured times, and the share of op time per kind
of HLO op:

  python -m orthoalign.bench --config=configs/llm4cdsr.py --profile

With --item_shards it instead measures full-catalogue evaluation with the item tables split over
k devices (orthoalign/bench_catalogue.py), on a CPU over --cpu_devices fake devices:

  python -m orthoalign.bench --config=configs/bench_catalogue.py --item_shards=1,4 --cpu_devices=4
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags
import numpy as np

import orthoalign
from orthoalign import bench_catalogue
from orthoalign import compile_cache
from orthoalign import errors
from orthoalign import fileio
from orthoalign import profiling
from orthoalign.config import flags as flag_checks
from orthoalign.config import replica_axes
from orthoalign.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
_REPLICAS = flags.DEFINE_list("replicas", ["1", "8"], "Replica counts R to measure.")
_EPOCHS = flags.DEFINE_integer("epochs", 3, "Timed epochs per R (after one warm-up epoch).")
_OUT = flags.DEFINE_string("out", None, "Write the results as JSON here (atomically).")
_TOP_SCOPES = 16
_PROFILE = flags.DEFINE_bool("profile", False, "Profile one training step instead (R = 1).")
_ITEM_SHARDS = flags.DEFINE_list(
  "item_shards",
  [],
  "Measure full-catalogue evaluation instead: each value k runs on the first k "
  "devices with the item tables split over them (1 = one device, nothing split).",
)
_PASSES = flags.DEFINE_integer("passes", 3, "Timed validation passes per --item_shards value.")
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  0,
  "Fake CPU devices to create (jax_num_cpu_devices) for --item_shards > 1 on "
  "a CPU; 0 = leave as is. No effect on other backends.",
)
flags.mark_flags_as_required(["config"])


def _peak_memory() -> dict[str, Any]:
  stats = jax.devices()[0].memory_stats() or {}
  out = {"host_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out


def measure(config, replicas: int, epochs: int) -> dict[str, Any]:
  """Times one replica count; returns a JSON-able dict."""
  config = config.copy_and_resolve_references()
  config.unlock()
  replica_axes.one_replica(config.sweep, seeds=tuple(range(replicas)))
  run = loop.setup(config)
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
    **_peak_memory(),
  }


def profile(config) -> dict[str, Any]:
  """Prints and returns the roofline figures and the step profile (R = 1)."""
  config = config.copy_and_resolve_references()
  config.unlock()
  replica_axes.one_replica(config.sweep)
  peaks = profiling.machine_peaks()
  print(
    f"machine: matmul 2048^3 {peaks['matmul_f32_gflops']:.0f} GFLOP/s float32, "
    f"{peaks['matmul_bf16_gflops']:.0f} GFLOP/s bfloat16; elementwise pass "
    f"{peaks['stream_gbs']:.1f} GB/s (read + write)",
    flush=True,
  )
  run = loop.setup(config)
  dtype = config.train.compute_dtype
  parts = profiling.step_profile(run, config.train.batch_size, dtype)
  print(f"one training step, batch {config.train.batch_size}, compute dtype {dtype}:")
  print(f"{'part':<20} {'GFLOP':>8} {'GB':>8} {'ms':>9} {'GFLOP/s':>8} {'GB/s':>7} {'FLOP/B':>7}")
  for p in parts:
    print(
      f"{p['part']:<20} {p['gflop']:8.2f} {p['gbytes']:8.2f} {1e3 * p['seconds']:9.1f} "
      f"{p['gflops']:8.1f} {p['gbs']:7.1f} {p['gflop'] / max(p['gbytes'], 1e-9):7.1f}"
    )
  whole = parts[-1]
  share = whole["gflops"] / peaks["matmul_f32_gflops"]
  print(
    f"whole step: {whole['gflops']:.0f} GFLOP/s = {share:.0%} of this machine's float32 "
    f"matmul rate; {whole['gbs']:.1f} GB/s of XLA's 'bytes accessed'"
    f" (which counts cache-resident traffic too) against {peaks['stream_gbs']:.1f} GB/s "
    "streamed",
    flush=True,
  )
  state0 = jax.tree.map(lambda x: x[0], run.state)
  ops = profiling.op_breakdown(whole["compiled"], (state0, run.train_data, run.frozen))
  if ops:
    print(
      f"op time (whole step; {ops['seconds']['op'] * 1e3:.0f} ms of op time summed over the "
      f"runtime's threads per {ops['seconds']['wall'] * 1e3:.0f} ms of wall time), by kind:"
    )
    for k, v in ops["kind"].items():
      print(f"  {k:<40} {v:6.1%}")
    print(f"by model part (Flax module path; top {_TOP_SCOPES}):")
    for k, v in list(ops["scope"].items())[:_TOP_SCOPES]:
      print(f"  {k:<40} {v:6.1%}")
  for p in parts:
    del p["compiled"]
  return {"peaks": peaks, "step": parts, "ops": ops, "compute_dtype": dtype}


def _ints(name: str, values: list[str]) -> list[int]:
  """The values of a list flag as ints >= 1; ConfigError naming the flag otherwise."""
  try:
    out = [int(v) for v in values]
  except ValueError:
    out = []
  if len(out) != len(values) or any(v < 1 for v in out):
    raise errors.ConfigError(
      f"--{name}={','.join(values)} must be a comma-separated list of ints >= 1, e.g. --{name}=1,4"
    )
  return out


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  del argv
  logging.set_verbosity(logging.WARNING)
  if _EPOCHS.value < 1:
    raise errors.ConfigError(f"--epochs={_EPOCHS.value}: expected an int >= 1 (timed epochs)")
  compile_cache.enable()
  if _CPU_DEVICES.value:  # before the first device is touched
    jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
  config = _CONFIG.value
  device = jax.devices()[0]
  header = {
    "orthoalign": orthoalign.__version__,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device": getattr(device, "device_kind", str(device)),
    "num_devices": config.train.num_devices or jax.device_count(),
    "model": config.model.name,
    "date": time.strftime("%Y-%m-%d"),
    "command": " ".join(["python -m orthoalign.bench"] + sys.argv[1:]),
  }
  print(json.dumps(header), flush=True)
  if _PROFILE.value:
    out = {**header, "profile": profile(config)}
    if _OUT.value:
      fileio.write_json(_OUT.value, out)
    return
  if _ITEM_SHARDS.value:
    rows, first = [], None
    for k in _ints("item_shards", _ITEM_SHARDS.value):
      if k > jax.device_count():
        raise errors.RunError(
          f"--item_shards={k} needs {k} devices but {jax.device_count()} "
          "are visible; on a CPU add --cpu_devices=<k>"
        )
      row, sums, _ = bench_catalogue.measure(config, k, _PASSES.value)
      if first is None:
        first = sums
      else:
        row["sums_agree_with_first"] = not bench_catalogue.sums_differ(first, sums)
      rows.append(row)
      print(bench_catalogue.line(rows[-1]), flush=True)
      if _OUT.value:  # after each k: a long run keeps what it measured
        fileio.write_json(_OUT.value, {**header, "catalogue": rows})
    return
  results = []
  for r in _ints("replicas", _REPLICAS.value):
    row = measure(config, r, _EPOCHS.value)
    results.append(row)
    print(
      f"R={r:>3}  compile {row['compile_s']:.1f}s  epoch {row['epoch_s']:.3f}s "
      f"({row['epoch_s_per_replica']:.3f}s per replica)  {row['steps_per_s']:.1f} steps/s  "
      f"{row['sequences_per_s']:.0f} seq/s  valid eval {row['valid_eval_s']:.2f}s",
      flush=True,
    )
  if len(results) >= 2:
    a, b = results[0], results[-1]
    print(
      f"per-replica speed-up R={b['replicas']} vs R={a['replicas']}: "
      f"{a['epoch_s_per_replica'] / b['epoch_s_per_replica']:.2f}x",
      flush=True,
    )
  out = {**header, "results": results}
  print(json.dumps(out), flush=True)
  if _OUT.value:
    fileio.write_json(_OUT.value, out)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
