"""Local executor: trains a grid's runs as child processes, at most `parallel` at a time."""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
import dataclasses
import os
import shutil
import subprocess
import sys
import time
from typing import Any, TextIO

from orthoalign import errors
from orthoalign.experiments import commands
from orthoalign.experiments import expand
from orthoalign.experiments import job
from orthoalign.experiments import status as status_lib
from orthoalign.train import workdir as workdir_lib


def gpus(environ: Mapping[str, str] = os.environ) -> list[str]:
  """GPU ids of this host: CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`, else none.

  Not through JAX: importing it here could grab the devices the children need.
  """
  visible = environ.get("CUDA_VISIBLE_DEVICES")
  if visible is not None:
    return [d.strip() for d in visible.split(",") if d.strip() and d.strip() != "-1"]
  if shutil.which("nvidia-smi") is None:
    return []
  try:
    out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
  except (OSError, subprocess.SubprocessError):
    return []
  return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def device_env(slot: int, parallel: int, devices: Sequence[str]) -> dict[str, str]:
  """Environment of the job in pool slot `slot`: its own GPU when jobs run concurrently.

  One job at a time keeps every device (a run shards its batch over all of them); more jobs than
  GPUs share them round-robin without JAX's up-front allocation of 75% of a GPU's memory.
  """
  if parallel <= 1 or not devices:
    return {}
  env = {"CUDA_VISIBLE_DEVICES": devices[slot % len(devices)]}
  if parallel > len(devices):
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
  return env


@dataclasses.dataclass
class Outcome:
  """What became of one run in this session.

  status: done, skipped (finished earlier), failed, running elsewhere (locked by another runner) or
  conflict (finished with another config).
  """

  name: str
  workdir: str
  status: str
  wall_s: float = 0.0


def config_conflict(point: expand.Point, workdir: str) -> list[str]:
  """Keys in which a finished run's config.json (upgraded) differs from the point's config.

  [] when the config.json cannot be read: the run is then trained again, which rewrites it.
  """
  try:
    return workdir_lib.config_changes(workdir, point.config)
  except (OSError, errors.DataError):
    return []


class _Progress:
  """Prints `[grid] 3/12 done, 2 running, 1 failed, 6 pending, ETA 4m10s` when a count changes."""

  def __init__(self, total: int, parallel: int, out: TextIO):
    self.total, self.parallel, self.out = total, parallel, out
    self.walls: list[float] = []  # runs finished in this session
    self.last = ""

  def show(self, outcomes: Sequence[Outcome], running: int, pending: int) -> None:
    count = collections.Counter(o.status for o in outcomes)
    line = (
      f"[grid] {count['done'] + count['skipped']}/{self.total} done, {running} running, "
      f"{count['failed'] + count['conflict']} failed, {pending} pending"
    )
    if count["running elsewhere"]:
      line += f", {count['running elsewhere']} running elsewhere"
    if line == self.last:
      return
    self.last = line
    if running + pending:
      eta = (
        sum(self.walls) / len(self.walls) * (running + pending) / self.parallel
        if self.walls
        else None
      )
      line += f", ETA {status_lib.format_duration(eta) if eta is not None else '?'}"
    print(line, file=self.out, flush=True)


def run(
  points: Sequence[expand.Point],
  root: str,
  grid_path: str,
  *,
  parallel: int = 1,
  entry: Sequence[str] | None = None,
  cwd: str | None = None,
  out: TextIO | None = None,
  poll_s: float = 0.5,
  devices: Sequence[str] | None = None,
) -> list[Outcome]:
  """Trains the unfinished points, `parallel` at a time; returns their outcomes in grid order.

  Finished runs are skipped, interrupted ones resume (orthoalign.main restores their checkpoints),
  a failure does not stop the others. Ctrl-C stops the children and raises errors.Interrupted
  (a KeyboardInterrupt) saying which runs it stopped and how to resume.

  Args:
    points: the grid's points (expand.expand).
    root: the grid's folder; run `<name>` trains in `<root>/<name>`.
    grid_path: the grid file (the children's --config).
    parallel: the most runs training at once.
    entry: replaces `python -m orthoalign.main` (tests).
    cwd: the children's working directory (default: this one).
    out: where progress goes (default: sys.stdout).
    poll_s: how often children are polled.
    devices: GPU ids to spread concurrent runs over (default: gpus()).
  """
  cwd, out = cwd or os.getcwd(), out or sys.stdout
  devices = gpus() if devices is None else list(devices)
  queue = collections.deque(points)
  free = list(range(parallel))
  running: dict[int, tuple[expand.Point, job.Attempt]] = {}
  outcomes: dict[str, Outcome] = {}
  progress = _Progress(len(points), parallel, out)
  try:
    while queue or running:
      while queue and free:
        point = queue.popleft()
        workdir = os.path.join(root, point.name)
        if job.finished(workdir):
          diff = config_conflict(point, workdir)
          if diff:
            print(
              f"[grid] {point.name}: {workdir} holds a finished run with another config (keys: "
              f"{', '.join(diff)}); move it away to retrain",
              file=out,
            )
          outcomes[point.name] = Outcome(point.name, workdir, "conflict" if diff else "skipped")
          continue
        attempt = job.Attempt(
          workdir,
          commands.train_argv(point, grid_path, root, entry),
          cwd,
          device_env(free[0], parallel, devices),
        )
        state = attempt.start()
        if state == "started":
          running[free.pop(0)] = (point, attempt)
        else:
          outcomes[point.name] = Outcome(
            point.name, workdir, "skipped" if state == "done" else state
          )
      for slot, (point, attempt) in list(running.items()):
        rc = attempt.poll()
        if rc is None:
          continue
        del running[slot]
        free.append(slot)
        ok = rc == 0 and job.finished(attempt.workdir)
        if ok:
          progress.walls.append(attempt.wall_s)
        else:
          print(f"[grid] {point.name} failed (exit status {rc}); log: {attempt.log_path}", file=out)
        outcomes[point.name] = Outcome(
          point.name, attempt.workdir, "done" if ok else "failed", attempt.wall_s
        )
      progress.show(list(outcomes.values()), len(running), len(queue))
      if running:
        time.sleep(poll_s)
  except KeyboardInterrupt:
    attempts = [attempt for _, attempt in running.values()]
    try:
      for attempt in attempts:  # all at once, then wait for each
        attempt.terminate()
      for attempt in attempts:
        attempt.stop()
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
      for attempt in attempts:
        attempt.stop(grace_s=0)
    raise errors.Interrupted(
      f"stopped {len(running)} run(s) of the grid "
      f"({', '.join(p.name for p, _ in running.values()) or 'none'}). Re-run the same command "
      "to resume: finished runs are skipped, interrupted ones continue from their last "
      "checkpoint."
    ) from None
  return [outcomes[p.name] for p in points]


def summary_rows(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
  """Outcomes as rows of status.summary, which reads each run's wall time (its last attempt) from
  attempt.json, as `grid --status` does.
  """
  return [
    {
      "name": o.name,
      "workdir": o.workdir,
      "status": {"skipped": "done (earlier)"}.get(o.status, o.status),
    }
    for o in outcomes
  ]
