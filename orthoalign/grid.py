r"""Run an experiment grid: one orthoalign.main program per grid point, locally or on SLURM.

  python -m orthoalign.grid --grid=configs/grids/<name>.py --root=runs/<name> [--parallel=2]
  python -m orthoalign.grid --grid=configs/grids/<name>.py --root=runs/<name> --dry-run
  python -m orthoalign.grid --grid=configs/grids/<name>.py --root=runs/<name> --executor=slurm \
      --slurm-partition=gpu --slurm-time-min=240
  python -m orthoalign.grid --root=runs/<name> --status

Writes `<root>/grid.json` (every run: name, workdir, axes, overrides, replicas, command) and trains
run `<name>` in `<root>/<name>` (log in `<root>/<name>/log.txt`). Re-running the same command skips
finished runs and resumes interrupted ones from their checkpoints. The exit status is 1 if a run
failed. The grid-file format is described in orthoalign/experiments/expand.py.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import os
import sys
import time
from typing import Any

from orthoalign import errors
from orthoalign import fileio
from orthoalign import run_lock
from orthoalign.config import dicts
from orthoalign.errors import DataError
from orthoalign.experiments import commands
from orthoalign.experiments import expand
from orthoalign.experiments import job
from orthoalign.experiments import local
from orthoalign.experiments import status as status_lib


def _parser() -> argparse.ArgumentParser:
  p = errors.ArgumentParser(prog="python -m orthoalign.grid", description=__doc__.split("\n\n")[0])
  p.add_argument("--grid", help="grid file (get_config() and get_grid())")
  p.add_argument("--root", required=True, help="folder of the grid's runs")
  p.add_argument("--executor", choices=("local", "slurm"), default="local")
  p.add_argument("--parallel", type=int, default=1, help="local: runs training at once")
  p.add_argument("--dry-run", action="store_true", help="write grid.json, print the commands")
  p.add_argument("--only", default="", help="only the runs whose name contains this text")
  p.add_argument(
    "--set",
    action="append",
    default=[],
    metavar="KEY=VALUE",
    help="a config setting for every run (repeatable), e.g. train.max_epochs=3",
  )
  p.add_argument("--status", action="store_true", help="print the status of the runs at --root")
  s = p.add_argument_group("slurm")
  s.add_argument("--slurm-partition")
  s.add_argument("--slurm-time-min", type=int, default=60)
  s.add_argument("--slurm-gpus-per-node", type=int, default=1)
  s.add_argument("--slurm-cpus-per-task", type=int, default=4)
  s.add_argument("--slurm-mem-gb", type=float, default=32.0)
  s.add_argument("--slurm-array-parallelism", type=int, default=64)
  s.add_argument("--slurm-account")
  s.add_argument("--slurm-qos")
  return p


def write_grid_json(
  points: Sequence[expand.Point],
  grid_path: str,
  root: str,
  cwd: str,
  meta: dict[str, Any] | None = None,
) -> None:
  """`<root>/grid.json`, atomically; keeps the creation time of an earlier one."""
  try:
    created = status_lib.read_grid(root).get("created")
  except (DataError, ValueError):
    created = None
  fileio.write_json(
    os.path.join(root, status_lib.GRID_JSON),
    {
      "name": os.path.splitext(os.path.basename(grid_path))[0],
      "grid": grid_path,
      "cwd": cwd,
      "created": created or time.strftime("%Y-%m-%dT%H:%M:%S"),
      "runs": [
        {
          "name": p.name,
          "workdir": p.name,
          "axes": p.axes,
          "overrides": p.overrides,
          "replicas": p.replicas,
          "command": commands.shell(commands.train_argv(p, grid_path, root), cwd),
        }
        for p in points
      ],
      "meta": meta or {},
    },
  )


def _slurm(args: argparse.Namespace, points: Sequence[expand.Point], cwd: str) -> int:
  try:
    from orthoalign.experiments import slurm
  except ImportError as e:
    raise errors.DependencyError(
      f"--executor=slurm needs submitit ({e}); pip install submitit"
    ) from None
  resources = slurm.Resources(
    partition=args.slurm_partition,
    time_min=args.slurm_time_min,
    gpus_per_node=args.slurm_gpus_per_node,
    cpus_per_task=args.slurm_cpus_per_task,
    mem_gb=args.slurm_mem_gb,
    array_parallelism=args.slurm_array_parallelism,
    account=args.slurm_account,
    qos=args.slurm_qos,
  )
  todo = [
    p
    for p in points
    if not job.finished(os.path.join(args.root, p.name))
    and not run_lock.locked(os.path.join(args.root, p.name))
  ]
  print(
    f"[grid] {len(points) - len(todo)} of {len(points)} runs finished or running; submitting "
    f"{len(todo)}"
  )
  try:
    ex = slurm.executor(
      slurm.folder(args.root), resources, os.path.basename(os.path.abspath(args.root))
    )
    jobs = slurm.submit(
      ex,
      [
        slurm.TrainJob(
          p.name, os.path.join(args.root, p.name), commands.train_argv(p, args.grid, args.root), cwd
        )
        for p in todo
      ],
    )
  except RuntimeError as e:  # no srun/sbatch here, or sbatch refused the job
    raise errors.RunError(f"--executor=slurm: {e}") from e
  for p, j in zip(todo, jobs):
    print(f"[grid] {p.name}: job {j.job_id}")
  print(f"[grid] follow with: python -m orthoalign.grid --root={args.root} --status")
  return 0


def _status(root: str) -> int:
  rows = status_lib.statuses(root)
  print(status_lib.summary(rows))
  return 0


def _replicas(point: expand.Point) -> int:
  """Models one program trains: the product of its sweep lists (an empty list counts once)."""
  n = 1
  for values in dicts.flatten(point.config.sweep.to_dict(), "sweep.").values():
    n *= max(len(values), 1) if isinstance(values, list) else 1
  return n


def run(argv: Sequence[str]) -> int:
  """The CLI without sys.exit: returns the exit status; raises ConfigError/DataError."""
  args = _parser().parse_args(argv)
  fileio.local_folder(args.root, "--root")
  if args.status:
    return _status(args.root)
  if not args.grid:
    raise errors.ConfigError("--grid is required (the grid file), unless --status")
  if args.parallel < 1:
    raise errors.ConfigError(f"--parallel={args.parallel}: expected an int >= 1")
  cwd = os.getcwd()
  points, meta = expand.expand_with_meta(args.grid, args.set)
  write_grid_json(points, args.grid, args.root, cwd, meta)
  selected = [p for p in points if args.only in p.name]
  if not selected:
    raise errors.ConfigError(
      f"--only={args.only!r} matches none of the runs {[p.name for p in points]}"
    )
  n_models = sum(_replicas(p) for p in points)
  print(
    f"[grid] {args.grid}: {len(points)} programs ({n_models} runs as replicas), "
    f"{len(selected)} selected; "
    f"{os.path.join(args.root, status_lib.GRID_JSON)} written"
  )
  if args.dry_run:
    for p in selected:
      print(commands.shell(commands.train_argv(p, args.grid, args.root), cwd))
    return 0
  if args.executor == "slurm":
    return _slurm(args, selected, cwd)
  outcomes = local.run(selected, args.root, args.grid, parallel=args.parallel, cwd=cwd)
  print(status_lib.summary(local.summary_rows(outcomes)))
  return 1 if any(o.status in ("failed", "conflict") for o in outcomes) else 0


def main() -> None:
  """The CLI: exits with run()'s status; 1 after a one-line error (see orthoalign.errors)."""
  try:
    sys.exit(errors.cli_main(run)(sys.argv[1:]))
  except KeyboardInterrupt:
    sys.exit(130)


if __name__ == "__main__":
  main()
