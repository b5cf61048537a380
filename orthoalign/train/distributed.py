"""Multi-process runs on JAX's multi-controller runtime (`jax.distributed`).

One Python process per host (a TPU VM worker, a SLURM task, or one listed by hand) runs the same
command; `initialize` connects them before anything touches a device, after which `jax.devices()`
lists every process's devices and the trainer's ("data", "model") mesh spans them all
(train/sharding.py).
CDSR datasets are small: every process reads the whole dataset and places it replicated, each batch
is split over the global mesh and the state stays replicated, so every process holds the same
metrics and takes the same decisions; only process 0 writes (`is_writer`).

How the processes are found (`--distributed`, docs/scaling.md):
  auto      a TPU pod slice or a SLURM job of several tasks is detected by JAX's own cluster
            detection (`jax.distributed.initialize()` without arguments); else one process.
  explicit  coordinator address, number of processes and process id from the flags
            (--coordinator_address, --num_processes, --process_id) or the environment
            (ORTHOALIGN_COORDINATOR_ADDRESS, ORTHOALIGN_NUM_PROCESSES, ORTHOALIGN_PROCESS_ID).
  off       one process, whatever the environment says.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from typing import Any

import jax
import numpy as np

from orthoalign import errors

_ENV = {
  "coordinator_address": "ORTHOALIGN_COORDINATOR_ADDRESS",
  "num_processes": "ORTHOALIGN_NUM_PROCESSES",
  "process_id": "ORTHOALIGN_PROCESS_ID",
}


def _cluster_detected() -> bool:
  """A multi-host environment JAX knows how to join without arguments."""
  # A job step of several tasks (srun sets SLURM_STEP_NUM_TASKS; a batch script itself is one
  # process even when the job has several tasks, and must not wait for the others).
  slurm = int(os.environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1
  tpu_pod = len([h for h in os.environ.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1
  return slurm or tpu_pod


def initialize(
  mode: str = "auto",
  coordinator_address: str = "",
  num_processes: int = 0,
  process_id: int = -1,
  heartbeat_timeout_s: int = 0,
  initialization_timeout_s: int = 0,
) -> None:
  """Joins the processes of a multi-process run (a no-op for one process).

  Args:
    mode: "auto", "explicit" or "off" (see the module docstring).
    coordinator_address: host:port of process 0 (explicit; else from the environment).
    num_processes, process_id: the run's size and this process's rank (explicit).
    heartbeat_timeout_s: seconds after which a silent process counts as lost and the others stop
      with an error (0 = JAX's default, 100).
    initialization_timeout_s: seconds to wait for every process to join (0 = JAX's default, 300).

  Raises:
    ConfigError: an unknown mode, or explicit settings that are missing or inconsistent.
    RunError: a coordinator that cannot be reached.
  """
  if mode not in ("auto", "explicit", "off"):
    raise errors.ConfigError(f"--distributed={mode!r}; valid choices: ['auto', 'explicit', 'off']")
  explicit = {
    "coordinator_address": coordinator_address or os.environ.get(_ENV["coordinator_address"], ""),
    "num_processes": num_processes or int(os.environ.get(_ENV["num_processes"], "0") or 0),
    "process_id": process_id
    if process_id >= 0
    else int(os.environ.get(_ENV["process_id"], "-1") or -1),
  }
  if mode == "off" or (
    mode == "auto" and not explicit["coordinator_address"] and not _cluster_detected()
  ):
    return
  kwargs: dict[str, Any] = {}
  if heartbeat_timeout_s:
    kwargs["heartbeat_timeout_seconds"] = int(heartbeat_timeout_s)
  if initialization_timeout_s:
    kwargs["initialization_timeout"] = int(initialization_timeout_s)
  if explicit["coordinator_address"] or mode == "explicit":
    missing = [
      f"--{k}"
      for k, v in explicit.items()
      if v in ("", 0, -1) and not (k == "process_id" and v == 0)
    ]
    if missing:
      raise errors.ConfigError(
        f"--distributed=explicit needs {', '.join(missing)} (or the environment "
        f"variables {', '.join(_ENV[m[2:]] for m in missing)})"
      )
    if not 0 <= explicit["process_id"] < explicit["num_processes"]:
      raise errors.ConfigError(
        f"--process_id={explicit['process_id']} must be in "
        f"0..{explicit['num_processes'] - 1} (--num_processes)"
      )
    kwargs.update(explicit)
  # JAX ends a process that waits in vain with a C++ abort and a stack trace: say first what it
  # waits for.
  print(
    f"orthoalign: joining a multi-process run "
    f"({', '.join(f'{k}={v}' for k, v in kwargs.items()) or 'detected cluster'}); "
    f"if a process never joins, JAX aborts after initialization_timeout "
    f"({initialization_timeout_s or 300} s) with DEADLINE_EXCEEDED ... RegisterTask",
    file=sys.stderr,
    flush=True,
  )
  try:
    jax.distributed.initialize(**kwargs)
  except Exception as e:  # noqa: BLE001  # the runtime reports a lost coordinator in many types
    raise errors.RunError(
      f"jax.distributed.initialize({', '.join(f'{k}={v!r}' for k, v in kwargs.items())}) "
      f"failed: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    ) from None


def is_writer() -> bool:
  """Process 0 writes the run's files; the others compute the same values and write nothing."""
  return jax.process_index() == 0


def quiet_unless_writer() -> None:
  """Silences stdout (progress, tables) on every process but 0; errors still go to stderr."""
  if not is_writer():
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  # lives as long as the process


def describe() -> str:
  """' over N processes' for a multi-process run, else ''."""
  return f" over {jax.process_count()} processes" if jax.process_count() > 1 else ""


def sync(name: str) -> None:
  """Waits until every process reaches the same point (a no-op for one process)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)


def raise_together(error: Exception | None, what: str) -> None:
  """Raises on every process when any process failed at `what`, so none waits for the failed one.

  The failed process re-raises its own error; the others raise a RunError pointing to it.
  """
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    failed = np.asarray(multihost_utils.process_allgather(np.int32(error is not None))).reshape(-1)
    if error is None and failed.any():
      raise errors.RunError(
        f"process(es) {np.flatnonzero(failed).tolist()} failed at {what}; their error says why"
      )
  if error is not None:
    raise error


def agree(value: Any, what: str) -> None:
  """Checks that every process holds the same JSON-able `value`.

  Raises:
    RunError: naming `what`, where the processes differ (e.g. different configs or versions, or
      a workdir that is not shared storage, so they would resume from different epochs).
  """
  if jax.process_count() <= 1:
    return
  from jax.experimental import multihost_utils

  digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).digest()
  mine = np.frombuffer(digest[:8], np.uint32)
  everyone = np.asarray(multihost_utils.process_allgather(mine))
  if not np.all(everyone == everyone[0]):
    differ = [i for i in range(len(everyone)) if not np.array_equal(everyone[i], everyone[0])]
    raise errors.RunError(
      f"the processes disagree on {what}: process(es) {differ} differ from "
      f"process 0 (this is process {jax.process_index()}); every process must "
      "run the same orthoalign version and config on the same shared workdir"
    )


def say(text: str) -> None:
  """Prints a line of the run's log on process 0 (the others compute the same and stay quiet)."""
  if is_writer():
    print(text, flush=True)
