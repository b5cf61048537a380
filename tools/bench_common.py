"""Parts shared by tools/bench_original_*.py: the two sides of a comparison and orthoalign's side.

tools/bench_against_original.py times what these build; each tools/bench_original_<model>.py
builds both sides for its model and returns a `Bench`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
import contextlib
import dataclasses
import importlib
import os
import sys
import time
from typing import Any

import jax
import numpy as np


@dataclasses.dataclass
class Side:
  """One implementation, built and ready: each callable runs its work once and returns seconds."""

  train: Callable[[], float]  # one training epoch over the benchmark's users
  evaluate: Callable[[], float]  # one validation pass over the benchmark's users
  params: int  # trainable parameters
  # The original only: per train() call, the seconds from batch in hand to optimizer step.
  step_only: list[float] = dataclasses.field(default_factory=list)
  # Further figures, timed in the rounds after train (e.g. the original with anomaly detection).
  extra: dict[str, Callable[[], float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Bench:
  """Both sides of one model at one max_len, built; `build_s` = each side's construction seconds
  (orthoalign: setup + compilation of its programs; the original: its data objects, model and
  optimizer), the first part of the end-to-end figure.
  """

  model: str
  max_len: int
  steps: int  # training steps per epoch (full batches)
  batch: int
  n_eval: int  # validation cases
  ours: Side
  theirs: Side
  build_s: dict[str, float]  # {"ours": s, "theirs": s}
  notes: list[str]  # printed above the table
  cleanup: Callable[[], None] = lambda: None


@dataclasses.dataclass
class Ours:
  """orthoalign's side plus what the original's side needs to match it."""

  side: Side
  run: Any  # build.Run, with the subsampled training data
  rows: np.ndarray  # the chosen rows of task.train_data
  users: np.ndarray  # their 0-based orthoalign user ids
  ev_rows: np.ndarray  # rows of task.eval_data["valid"] of those users
  eval_padded: int  # the validation cases padded to eval batches
  steps: int
  compile_s: dict[str, float]  # {"train": s, "eval": s}


def orthoalign_side(cfg: Any, steps_wanted: int) -> Ours:
  """build.setup(cfg), then `steps_wanted` full batches of training users (fewer if the data has
  fewer; chosen with seed 0, so a fresh call picks the same users) and the validation cases of
  those users, and compiles the epoch and evaluation programs for exactly those arrays.
  """
  from orthoalign.train import build

  batch = cfg.train.batch_size
  run = build.setup(cfg)
  task = run.task
  n_train = len(task.train_data["user"])
  steps = min(steps_wanted, n_train // batch)  # full batches only: same work per step
  rows = np.sort(np.random.default_rng(0).choice(n_train, steps * batch, replace=False))
  users = np.asarray(task.train_data["user"])[rows]
  host = build.train_arrays(task, build.bucket_lengths(cfg))
  train_data = jax.device_put({k: np.asarray(v)[rows] for k, v in host.items()}, run.repl)
  valid = task.eval_data["valid"]
  ev_rows = np.nonzero(np.isin(np.asarray(valid["user"]), users))[0]
  hist_width = max(a["hist"].shape[1] for a in task.eval_data.values())
  eval_data = jax.device_put(
    build.eval_batches(
      {k: np.asarray(v)[ev_rows] for k, v in valid.items()},
      cfg.eval.batch_size,
      hist_width,
      build.bucket_lengths(cfg),
      task,
    ),
    run.repl,
  )
  run = dataclasses.replace(run, train_data=train_data, steps=steps)

  t0 = time.perf_counter()
  epoch_prog = run.epoch_fn.lower(run.state, train_data, run.frozen, run.epoch_arg(1)).compile()
  compile_train = time.perf_counter() - t0
  t0 = time.perf_counter()
  eval_prog = run.eval_fn.lower(run.state.params, run.frozen, eval_data).compile()
  compile_eval = time.perf_counter() - t0
  live = {"state": run.state, "epoch": 0}

  def train() -> float:
    live["epoch"] += 1
    jax.block_until_ready(live["state"])
    t0 = time.perf_counter()
    live["state"], metrics = epoch_prog(
      live["state"], train_data, run.frozen, run.epoch_arg(live["epoch"])
    )
    jax.block_until_ready(metrics)
    return time.perf_counter() - t0

  def evaluate() -> float:
    t0 = time.perf_counter()
    jax.block_until_ready(eval_prog(live["state"].params, run.frozen, eval_data))
    return time.perf_counter() - t0

  params = sum(x.size for x in jax.tree_util.tree_leaves(run.state.params))
  return Ours(
    side=Side(train=train, evaluate=evaluate, params=params),
    run=run,
    rows=rows,
    users=users,
    ev_rows=ev_rows,
    eval_padded=int(eval_data["weight"].size),
    steps=steps,
    compile_s={"train": compile_train, "eval": compile_eval},
  )


def loader_pass(loader: Iterable, step: Callable[[Any], Any]) -> tuple[float, float]:
  """`for batch in loader: step(batch)`: (wall seconds, seconds inside `step`, i.e. from batch in
  hand to the end of its work: the loader's own time is the difference).
  """
  inside = 0.0
  t0 = time.perf_counter()
  for batch in loader:
    t1 = time.perf_counter()
    step(batch)
    inside += time.perf_counter() - t1
  return time.perf_counter() - t0, inside


def import_authors(path: str, *names: str) -> list[Any]:
  """Imports modules of an authors' checkout (e.g. "models.ABXI") from `path`, never copied.

  Both checkouts benchmarked here have top-level packages called `models` and `utils`, so the
  checkout's top-level names are dropped from sys.modules before and after the import: the
  returned modules keep the objects they imported, and the next checkout gets its own packages.
  """
  path = os.path.abspath(path)
  tops = {n.split(".")[0] for n in names}
  tops |= {
    e[:-3] if e.endswith(".py") else e
    for e in os.listdir(path)
    if e.endswith(".py") or os.path.isdir(os.path.join(path, e))
  }

  def drop():
    for k in [k for k in sys.modules if k.split(".")[0] in tops]:
      del sys.modules[k]

  drop()
  sys.path.insert(0, path)
  try:
    return [importlib.import_module(n) for n in names]
  finally:
    sys.path.remove(path)
    drop()


@contextlib.contextmanager
def timed(out: dict[str, float], key: str) -> Iterator[None]:
  """Adds the seconds of the `with` body to out[key]."""
  t0 = time.perf_counter()
  try:
    yield
  finally:
    out[key] = out.get(key, 0.0) + time.perf_counter() - t0
