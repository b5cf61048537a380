r"""Where one training step's time goes (R = 1), against this machine's practical roofline.

  python -m orthoalign.bench.profile --config=configs/llm4cdsr.py

Prints the machine's matmul GFLOP/s and memory GB/s, XLA's FLOPs and bytes of the forward pass,
forward + backward and the whole step against their measured times, and the share of op time per
kind of HLO op and per part of the model (orthoalign/bench/profiling.py); --out keeps them as
JSON.
"""

from __future__ import annotations

from typing import Any

from absl import app
import jax

from orthoalign import errors
from orthoalign.bench import cli
from orthoalign.bench import profiling
from orthoalign.config import flags as flag_checks
from orthoalign.config import replica_axes
from orthoalign.train import build

_TOP_SCOPES = 16


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
  run = build.setup(config)
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


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  del argv
  config, header = cli.start("profile")
  cli.write({**header, "profile": profile(config)})


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
