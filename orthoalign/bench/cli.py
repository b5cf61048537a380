"""What every benchmark entry shares: the --config and --out flags, the header line, list flags.

Each entry (speed, profile, catalogue, compile) is its own `python -m orthoalign.bench.<entry>`
program with its own flags beside these two; it prints a JSON header (versions, backend, device,
model, date, the command) and writes its results as JSON under --out, atomically, as it goes.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

import orthoalign
from orthoalign import compile_cache
from orthoalign import errors
from orthoalign import fileio

CONFIG = config_flags.DEFINE_config_file("config", None, "Config file.", lock_config=True)
OUT = flags.DEFINE_string("out", None, "Write the results as JSON here (atomically).")
flags.mark_flags_as_required(["config"])


def start(entry: str, persistent_cache: bool = True) -> tuple[Any, dict[str, Any]]:
  """A benchmark's start, after its own flag checks: quiet logs, the persistent compilation
  cache (or, with `persistent_cache=False`, none at all, whatever the environment sets), the
  config, and its header line printed. Returns (config, header).
  """
  logging.set_verbosity(logging.WARNING)
  if persistent_cache:
    compile_cache.enable()
  else:
    jax.config.update("jax_enable_compilation_cache", False)
  config = CONFIG.value
  out = header(entry, config)
  out["persistent_cache"] = persistent_cache
  print(json.dumps(out), flush=True)
  return config, out


def header(entry: str, config: Any) -> dict[str, Any]:
  """What was measured where: versions, backend, device, model, date and the command line."""
  device = jax.devices()[0]
  return {
    "orthoalign": orthoalign.__version__,
    "jax": jax.__version__,
    "backend": jax.default_backend(),
    "device": getattr(device, "device_kind", str(device)),
    "num_devices": config.train.num_devices or jax.device_count(),
    "model": config.model.name,
    "date": time.strftime("%Y-%m-%d"),
    "command": " ".join([f"python -m orthoalign.bench.{entry}"] + sys.argv[1:]),
  }


def write(out: dict[str, Any]) -> None:
  """Writes `out` to --out (atomically) when the flag is given."""
  if OUT.value:
    fileio.write_json(OUT.value, out)


def ints(name: str, values: list[str]) -> list[int]:
  """The values of a list flag as ints >= 1.

  Raises:
    ConfigError: naming the flag and an example.
  """
  try:
    out = [int(v) for v in values]
  except ValueError:
    out = []
  if len(out) != len(values) or any(v < 1 for v in out):
    raise errors.ConfigError(
      f"--{name}={','.join(values)} must be a comma-separated list of ints >= 1, e.g. --{name}=1,4"
    )
  return out


def peak_memory() -> dict[str, Any]:
  """The host's peak RSS (MiB) and, where the backend reports it, the device's peak bytes."""
  stats = jax.devices()[0].memory_stats() or {}
  out = {"host_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
  if "peak_bytes_in_use" in stats:
    out["device_peak_mib"] = stats["peak_bytes_in_use"] / 2**20
  return out
