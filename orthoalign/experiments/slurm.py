"""SLURM executor (submitit): one job array of the pending runs, requeued on preemption/timeout.

Each array task runs the same training command as the local executor (job.Attempt), so it takes the
run's lock, appends to its log.txt and resumes from its checkpoints after a requeue. submitit's own
files (pickles, sbatch scripts, stdout/stderr) go to `<root>/slurm/`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import os
from typing import Any

import submitit

from orthoalign.experiments import job


@dataclasses.dataclass(frozen=True)
class Resources:
  """Per-job resources of the array (submitit AutoExecutor parameter names)."""

  partition: str | None = None
  time_min: int = 60
  gpus_per_node: int = 1
  cpus_per_task: int = 4
  mem_gb: float = 32.0
  array_parallelism: int = 64
  account: str | None = None
  qos: str | None = None

  def parameters(self) -> dict[str, Any]:
    params = {
      "timeout_min": self.time_min,
      "gpus_per_node": self.gpus_per_node,
      "cpus_per_task": self.cpus_per_task,
      "mem_gb": self.mem_gb,
      "slurm_array_parallelism": self.array_parallelism,
    }
    for key in ("partition", "account", "qos"):
      if getattr(self, key):
        params[f"slurm_{key}"] = getattr(self, key)
    return params


class TrainJob(submitit.helpers.Checkpointable):
  """Trains one run on a node; on preemption or timeout submitit requeues it (checkpoint()).

  Args:
    name: the run name (job name and message).
    workdir: the run's folder.
    argv: its training command.
    cwd: where to run it (the grid file's paths are relative to it).
  """

  def __init__(
    self,
    name: str,
    workdir: str,
    argv: Sequence[str],
    cwd: str,
    env: Mapping[str, str] | None = None,
  ):
    self.name, self.workdir, self.argv, self.cwd = name, workdir, list(argv), cwd
    self.env = dict(env or {})

  def __call__(self) -> str:
    """Returns done / skipped / running elsewhere; raises RuntimeError if training failed."""
    attempt = job.Attempt(self.workdir, self.argv, self.cwd, self.env)
    state = attempt.start()
    if state != "started":
      return "skipped" if state == "done" else state
    try:
      rc = attempt.wait()
    finally:
      attempt.stop()  # preempted: end the child before the requeue
    if rc != 0 or not job.finished(self.workdir):
      raise RuntimeError(f"run {self.name} failed with exit status {rc}; log: {attempt.log_path}")
    return "done"

  def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
    """Resubmits the same command: training resumes from the run's own checkpoints."""
    return submitit.helpers.DelayedSubmission(
      TrainJob(self.name, self.workdir, self.argv, self.cwd, self.env), *args, **kwargs
    )


def executor(folder: str, resources: Resources, name: str, cluster: str | None = "slurm"):
  """An AutoExecutor with the resources set; cluster="debug" runs jobs in this process (tests)."""
  ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
  ex.update_parameters(name=name, **(resources.parameters() if cluster == "slurm" else {}))
  return ex


def submit(ex: Any, jobs: Sequence[TrainJob]) -> list[Any]:
  """Submits the jobs as one array; returns submitit's Job handles."""
  return ex.submit_array(list(jobs)) if jobs else []


def folder(root: str) -> str:
  """Where submitit keeps a grid's SLURM logs and pickles: `<root>/slurm`."""
  return os.path.join(root, "slurm")
