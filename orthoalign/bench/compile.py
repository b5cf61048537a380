r"""Compile time: trace, lower and compile seconds of the trainer's two programs (the training
epoch and the evaluation), their HLO size, and what dominates it.

  python -m orthoalign.bench.compile --config=configs/llm4cdsr.py --out=/tmp/compile.json

Sets the config up as the trainer does (R replicas as the config says), then traces, lowers and
compiles each program once, cold: the persistent compilation cache is off for this process, so
compile_s is XLA's work, not a load from disk. For each program it prints the seconds per stage,
the instructions of the HLO XLA receives and of the compiled HLO, and the largest parts of the
received program by source frame (which orthoalign function or library wrote the ops), by Flax
module path (forward or backward) and by construct (top level, loop bodies, switch branches):
bench/programs.py. With --parts (the default) it also compiles the programs' nested parts alone
(the forward loss, its gradient, one train step, the optimizer update; the item tables, one
batch's scores): the compile seconds of each say where the program's compile time goes, which
the instruction counts do not (XLA compiles thousands of elementwise optimizer ops quickly). The
other benchmarks: speed, profile, catalogue.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from absl import app
from absl import flags
import jax

from orthoalign import errors
from orthoalign.bench import cli
from orthoalign.bench import programs
from orthoalign.config import flags as flag_checks
from orthoalign.train import build

_TOP = flags.DEFINE_integer("top", 8, "Largest parts to print per breakdown.")
_DEPTH = flags.DEFINE_integer("depth", 2, "Module-path levels of the by-module breakdown.")
_PARTS = flags.DEFINE_bool(
  "parts", True, "Also compile the programs' nested parts (forward loss, gradient, step, ...)."
)


def measure(config: Any, depth: int, parts: bool) -> dict[str, Any]:
  """Sets `config` up and measures its two programs (and with `parts` their nested parts,
  programs.train_parts and eval_parts); returns a JSON-able dict.
  """
  t0 = time.perf_counter()
  run = build.setup(config)
  setup_s = time.perf_counter() - t0
  jobs = {
    "train_epoch": (run.epoch_fn, (run.state, run.train_data, run.frozen, run.epoch_arg(1))),
    "evaluate": (run.eval_fn, (run.state.params, run.frozen, run.eval_data["valid"])),
  }
  out: dict[str, Any] = {"setup_s": setup_s, "replicas": run.num_replicas, "programs": {}}
  for name, (fn, args) in jobs.items():
    _, cost = programs.measure(fn, args, depth)
    out["programs"][name] = dataclasses.asdict(cost)
  if parts:
    out["parts"] = {
      "train_epoch": programs.train_parts(run, config.train.batch_size, config.train.compute_dtype),
      "evaluate": programs.eval_parts(run),
    }
  return out


def _report(name: str, cost: dict[str, Any], top: int) -> str:
  lines = [
    f"{name}: trace {cost['trace_s']:.2f}s  lower {cost['lower_s']:.2f}s  compile "
    f"{cost['compile_s']:.2f}s | HLO {cost['hlo_instructions']:,} instructions received, "
    f"{cost['compiled_instructions']:,} compiled"
  ]
  for title in ("source", "module", "construct"):
    parts = cost[f"by_{title}"]
    total = sum(parts.values()) or 1
    shown = ", ".join(f"{k} {v / total:.0%}" for k, v in list(parts.items())[:top])
    lines.append(f"  by {title}: {shown}")
  return "\n".join(lines)


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  del argv
  if _TOP.value < 1 or _DEPTH.value < 1:
    raise errors.ConfigError(f"--top={_TOP.value} and --depth={_DEPTH.value} must be >= 1")
  config, header = cli.start("compile", persistent_cache=False)
  result = {**header, **measure(config, _DEPTH.value, _PARTS.value)}
  for name, cost in result["programs"].items():
    print(_report(name, cost, _TOP.value), flush=True)
    if "parts" in result:
      shown = ", ".join(f"{k} {v:.1f}s" for k, v in result["parts"][name].items())
      print(f"  nested parts compiled alone (one replica, one batch): {shown}", flush=True)
  total = sum(c["trace_s"] + c["lower_s"] + c["compile_s"] for c in result["programs"].values())
  print(
    f"setup {result['setup_s']:.1f}s (data, model, init); both programs {total:.1f}s", flush=True
  )
  cli.write(result)
  print(json.dumps(result), flush=True)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
