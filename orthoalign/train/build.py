"""A run's programs and inputs on the device mesh: `setup(config) -> Run`.

The trainer (loop.py), the offline evaluation (orthoalign.evaluate) and the benchmarks
(orthoalign.bench) all start here: data and model from the config, R initialised replicas, the
device-resident training and evaluation arrays, and the jitted (not yet compiled) epoch and
evaluation programs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import time
from typing import Any

import jax
import ml_collections
import numpy as np

import orthoalign
from orthoalign import errors
from orthoalign import sweep
from orthoalign.config import validation
from orthoalign.datasets import load as data_load
from orthoalign.train import distributed
from orthoalign.train import item_shards
from orthoalign.train import sharding
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib
from orthoalign.train import task as task_lib


def eval_batches(
  arrays: dict[str, np.ndarray],
  batch_size: int,
  hist_width: int,
  buckets: tuple[int, ...] = (),
  task: task_lib.Task | None = None,
) -> dict[str, np.ndarray]:
  """Pads eval cases to a multiple of batch_size (weight 0) and reshapes to [batches, batch, ...].

  With `buckets` (see `bucket_lengths`), the cases are first ordered by length bucket (the sums an
  evaluation returns do not depend on the order) and step.BUCKET_KEY holds each batch's bucket,
  the largest among its cases.
  """
  n = len(arrays["domain"])
  arrays = dict(arrays)
  if buckets:
    case_bucket = np.asarray(step_lib.length_bucket(task.model.lengths(arrays), buckets))
    order = np.argsort(case_bucket, kind="stable")
    arrays = {k: v[order] for k, v in arrays.items()}
  hist = arrays["hist"]
  arrays["hist"] = np.pad(hist, ((0, 0), (hist_width - hist.shape[1], 0)))  # 0-padding stays sorted
  padded = -(-n // batch_size) * batch_size
  out = {}
  for k, v in arrays.items():
    pad = np.zeros((padded - n,) + v.shape[1:], v.dtype)
    out[k] = np.concatenate([v, pad]).reshape((padded // batch_size, batch_size) + v.shape[1:])
  out["weight"] = (
    (np.arange(padded) < n).astype(np.float32).reshape(padded // batch_size, batch_size)
  )
  if buckets:
    out[step_lib.BUCKET_KEY] = (
      np.pad(case_bucket[order], (0, padded - n))
      .reshape(padded // batch_size, batch_size)
      .max(axis=1)
      .astype(np.int32)
    )
  return out


def same_batch_count(splits: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
  """`eval_batches` of each split, padded with zero-weight batches to the largest batch count.

  Splits of one batch count are returned as they are (leave-one-out data: one program already).
  Otherwise every split also gets step.NUM_BATCHES_KEY, its real batch count, and the evaluation
  loops over those batches only (e.g. imvae data: 7 validation and 15 test batches, one program
  instead of two; validation computes no extra batch).
  """
  counts = {s: len(d["weight"]) for s, d in splits.items()}
  most = max(counts.values())
  if min(counts.values()) == most:
    return splits
  out = {}
  for s, d in splits.items():
    out[s] = {
      k: np.concatenate([v, np.zeros((most - counts[s],) + v.shape[1:], v.dtype)])
      for k, v in d.items()
    }
    out[s][step_lib.NUM_BATCHES_KEY] = np.int32(counts[s])
  return out


def param_counts(run: Run) -> tuple[int, int]:
  """(total, trainable) parameters of one replica, at the model's own (unpadded) shapes."""
  params = run.padded.params
  if params is None:  # nothing padded: the state has the model's shapes
    params = jax.tree.map(lambda x: x[0], run.state.params)
  trainable = state_lib.count_params(params)
  return trainable + state_lib.count_params(run.padded.frozen), trainable


def bucket_lengths(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The lengths a bucketed epoch cuts batches to: train.length_buckets, then model.max_len; ()
  when training is not bucketed.
  """
  buckets = tuple(config.train.length_buckets)
  return buckets + (int(config.model.max_len),) if buckets else ()


def train_arrays(task: task_lib.Task, buckets: tuple[int, ...]) -> dict[str, np.ndarray]:
  """The host arrays of a training epoch: task.train_data, plus each row's real length
  (step.LENGTH_KEY, from the model's `lengths`) when bucketed.
  """
  if not buckets:
    return task.train_data
  return {
    **task.train_data,
    step_lib.LENGTH_KEY: task.model.lengths(task.train_data).astype(np.int32),
  }


def out_of_memory(e: BaseException) -> bool:
  """A host MemoryError, or XLA's RESOURCE_EXHAUSTED on a device (a RuntimeError)."""
  return isinstance(e, MemoryError) or (
    isinstance(e, RuntimeError) and "RESOURCE_EXHAUSTED" in str(e)
  )


@contextlib.contextmanager
def building(what: str):
  """Reports a ValueError or an out-of-memory error (host or device) raised while `what` is built
  from the config (a value the checks before could not judge, e.g. more embedding dims than a
  small catalogue has titles, or a width too large for the memory) as a one-line ConfigError
  naming `what`; ORTHOALIGN_TRACEBACK=1 shows where a ValueError came from.
  """
  try:
    yield
  except errors.USER_ERRORS:
    raise
  except (MemoryError, RuntimeError) as e:
    if not out_of_memory(e):
      raise
    raise errors.RunError(
      f"out of memory while building {what}: the config asks for more "
      "than this machine holds (a width, depth or catalogue too large?)"
    ) from None
  except ValueError as e:
    if errors.show_tracebacks():
      raise
    raise errors.ConfigError(f"cannot build {what} from this config: {e}") from e


@dataclasses.dataclass
class Run:
  """Everything a run needs on device: data, model task, replicas, mesh and jitted programs.

  Attributes:
    ds: the dataset (datasets/dataset.CDSRDataset).
    task: the model bound to its data (train/task.Task), at the model's own shapes.
    reps: one dict of hyperparameters per replica (orthoalign.sweep.replicas), R in all.
    mesh: the device mesh ("data", "model"); repl: its replicated sharding.
    steps: optimizer steps per epoch.
    train_data: the training arrays on the devices (replicated).
    eval_data: split ("valid" | "test") -> evaluation batches [batches, batch, ...] on the devices.
    frozen: the model's frozen tables (item-sharded with `train.item_shards`).
    state: the R stacked, initialised replicas (train/state.TrainState).
    epoch_fn: jitted (state, train_data, frozen, epoch) -> (state, per-replica training metrics).
    eval_fn: jitted (params, frozen, batches) -> per-replica metric and alignment sums.
    padded: the Task the programs run (catalogue padded to the item shards).
    state_sharding: the sharding of `state`.
  """

  ds: Any
  task: task_lib.Task
  reps: list[dict[str, Any]]
  mesh: Any
  repl: Any
  steps: int
  train_data: Any
  eval_data: dict[str, Any]
  frozen: Any
  state: state_lib.TrainState
  epoch_fn: Any
  eval_fn: Any
  padded: item_shards.Padded  # the Task the programs run; the model's own shapes
  state_sharding: Any

  def epoch_arg(self, epoch: int) -> jax.Array:
    return jax.device_put(np.int32(epoch), self.repl)

  @property
  def num_replicas(self) -> int:
    return len(self.reps)

  def banner(self) -> str:
    """The run's first line: versions, devices, model, data, replicas and steps per epoch."""
    ds = self.ds
    return (
      f"orthoalign {orthoalign.__version__} | jax {jax.__version__} | {self.mesh.size} x "
      f"{jax.devices()[0].platform}{distributed.describe()} | model {self.task.name} | data "
      f"{ds.name}: {ds.num_users} users, {ds.num_items_a}+{ds.num_items_b} items | "
      f"R={self.num_replicas} replicas | {self.steps} steps/epoch"
    )


def setup(config: ml_collections.ConfigDict) -> Run:
  """Builds data, model and R initialised replicas on the device mesh (shared by main and bench).

  With `train.item_shards` = k > 1 the mesh is [devices / k, k] ("data", "model") and every
  catalogue-sized leaf of the state and the frozen tables is padded to a multiple of k rows
  (train/item_shards.py) and split over "model"; `Run.task` stays the model's own Task.

  Raises:
    ConfigError: an invalid config (orthoalign.config.validation), or one the data or model
      cannot be built from.
  """
  validation.validate(config)
  return build(config)


def build(config: ml_collections.ConfigDict) -> Run:
  """`setup` of a config already validated (the trainer validates it before taking the workdir)."""
  with building("the dataset"):
    ds = data_load.load(config.data)
  with building(f"the {config.model.name} model's inputs"):
    task = task_lib.bind(ds, config)
  if distributed.is_writer():
    for note in task.model.notes:  # what the model was built from; models print nothing themselves
      print(note, flush=True)
  reps = sweep.replicas(config)
  hp = sweep.stacked(reps)
  try:
    mesh = sharding.make_mesh(config.train.num_devices, config.train.item_shards)
  except ValueError as e:  # item shards that do not divide the devices, or too many devices
    raise errors.ConfigError(str(e)) from None
  repl = sharding.replicated(mesh)
  bs, ebs = config.train.batch_size, config.eval.batch_size
  ways = sharding.data_size(mesh)
  for key, value in (("train.batch_size", bs), ("eval.batch_size", ebs)):
    if value % ways:
      raise errors.ConfigError(
        f"config key {key}={value} must be divisible by the {ways} devices of the mesh's data axis"
      )
  n_train = len(next(iter(task.train_data.values())))
  if n_train == 0:
    raise errors.DataError("the dataset has no user with a training sequence of >= 2 items")

  padded = item_shards.pad_task(task, mesh.shape[sharding.MODEL])
  rows = item_shards.padded_rows(task, mesh.shape[sharding.MODEL])
  step_task = padded.task
  buckets = bucket_lengths(config)
  if buckets and not task.length_buckets:
    raise errors.ConfigError(
      f"config key train.length_buckets={tuple(buckets[:-1])}: model.name={config.model.name!r} "
      "cannot train in length buckets (it is no models.baseline.LengthBuckets); set the key to ()"
    )
  train_data = jax.device_put(train_arrays(task, buckets), repl)
  # One width for both splits' history, and one batch count, so that valid and test share one
  # compiled evaluation program.
  hist_width = max(a["hist"].shape[1] for a in task.eval_data.values())
  eval_data = {
    s: jax.device_put(batches, repl)
    for s, batches in same_batch_count(
      {s: eval_batches(a, ebs, hist_width, buckets, task) for s, a in task.eval_data.items()}
    ).items()
  }
  frozen = step_task.model.frozen
  frozen = jax.device_put(frozen, sharding.item_shardings(frozen, mesh, rows))
  tx = state_lib.make_optimizer()
  init_fn = jax.vmap(functools.partial(state_lib.init_replica, step_task, tx))
  init_args = [
    jax.device_put(hp[k], repl)
    for k in ("seed", "learning_rate", "weight_decay", "gate_init", "model")
  ]
  with building(f"the {config.model.name} model"):
    if mesh.shape[sharding.MODEL] == 1:  # all replicated: no second trace of the init for shapes
      state = jax.jit(init_fn, out_shardings=repl)(*init_args)
      state_sharding = jax.tree.map(lambda x: x.sharding, state)
    else:  # split as it is created: never whole on one device
      state_sharding = sharding.item_shardings(
        jax.eval_shape(init_fn, *init_args), mesh, rows, axis=1
      )
      state = jax.jit(init_fn, out_shardings=state_sharding)(*init_args)
    jax.block_until_ready(state)  # an allocation failure shows here, not in epoch 1
  epoch_fn = jax.jit(
    jax.vmap(
      functools.partial(
        step_lib.train_epoch,
        task=step_task,
        tx=tx,
        batch_size=bs,
        mesh=mesh,
        compute_dtype=config.train.compute_dtype,
        buckets=buckets,
      ),
      in_axes=(0, None, None, None),
    ),
    out_shardings=(state_sharding, repl),
    donate_argnums=0,
  )
  eval_fn = jax.jit(
    jax.vmap(
      functools.partial(
        step_lib.evaluate,
        task=step_task,
        mesh=mesh,
        ties=config.eval.ties,
        buckets=buckets,
      ),
      in_axes=(0, None, None),
    )
  )
  return Run(
    ds=ds,
    task=task,
    reps=reps,
    mesh=mesh,
    repl=repl,
    steps=step_lib.steps_per_epoch(n_train, bs),
    train_data=train_data,
    eval_data=eval_data,
    frozen=frozen,
    state=state,
    epoch_fn=epoch_fn,
    eval_fn=eval_fn,
    padded=padded,
    state_sharding=state_sharding,
  )


def compile_together(*jobs: tuple[Any, tuple[Any, ...]]) -> list[tuple[Any, float]]:
  """Traces and lowers each (jitted function, args) in turn, compiling each in its own thread.

  Tracing and lowering are Python (they hold the GIL), XLA's compilation and the loading of a
  cached executable are not: so the first program compiles (or loads) while the next is traced.
  Returns [(compiled, seconds from its trace to its compiled program)] in job order; an
  exception of any job is raised here. Measured in docs/benchmarks.md.
  """

  def compile_one(lowered, t0):
    return lowered.compile(), time.time() - t0

  with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
    futures = []
    for fn, args in jobs:
      t0 = time.time()
      futures.append(pool.submit(compile_one, fn.lower(*args), t0))
    return [f.result() for f in futures]
