"""train_and_evaluate: the whole run, from config to results.jsonl.

The trainer's parts live beside it: the learning-rate schedule and early stopping (schedule.py),
the run folder's config.json (workdir.py), result rows and the results table (results.py), the
compiled steps (step.py), checkpoints (checkpoint.py) and the multi-process runtime
(distributed.py).

Order of business (and of resumption): validate the config -> take the workdir's lock
(orthoalign/run_lock.py) -> write/compare <workdir>/config.json -> build data and model -> init R
replicas -> if <workdir>/checkpoints has a checkpoint, restore state, best params and loop
metadata from it (a run that finished earlier stops here, keeping its results.jsonl) -> train
epoch by epoch (one compiled program per epoch), evaluating every `train.eval_every` epochs and
early-stopping per replica -> evaluate the test split with each replica's best params -> write
results.jsonl and print the results table. Ctrl-C ends with one line saying from which epoch the
same command resumes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import orthoalign
from orthoalign import errors
from orthoalign import fileio
from orthoalign import run_lock
from orthoalign import sweep
from orthoalign.config import dicts
from orthoalign.config import upgrade
from orthoalign.config import validation
from orthoalign.data import load as data_load
from orthoalign.metrics import keys
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import distributed
from orthoalign.train import history as history_lib
from orthoalign.train import item_shards
from orthoalign.train import results
from orthoalign.train import schedule
from orthoalign.train import sharding
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib
from orthoalign.train import task as task_lib
from orthoalign.train import workdir as workdir_lib
from orthoalign.train import writers

TrainingDiverged = errors.TrainingDiverged  # the loss became NaN/inf; a one-line user error


def _eval_batches(
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


def _param_counts(run: Run) -> tuple[int, int]:
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


def _out_of_memory(e: BaseException) -> bool:
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
    if not _out_of_memory(e):
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
  """Everything a run needs on device: data, model task, replicas, mesh and compiled functions."""

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
  return _build(config)


def _build(config: ml_collections.ConfigDict) -> Run:
  """`setup` of a validated config."""
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
  # One width for both splits' history so valid and test share one compiled eval program.
  hist_width = max(a["hist"].shape[1] for a in task.eval_data.values())
  eval_data = {
    s: jax.device_put(_eval_batches(a, ebs, hist_width, buckets, task), repl)
    for s, a in task.eval_data.items()
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


@functools.partial(jax.jit, donate_argnums=0)
def _keep_best(best: Any, params: Any, improved: jax.Array) -> Any:
  """Per replica: best <- params where the replica improved."""
  return jax.tree.map(
    lambda b, p: jnp.where(improved.reshape((-1,) + (1,) * (b.ndim - 1)), p, b), best, params
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


class Phases:
  """Wall-clock seconds per phase of a run (compile, train, evaluate, checkpoint), accumulated
  over resumptions through the Tracker (the training time counts epochs' programs only).
  """

  def __init__(self, tracker: schedule.Tracker):
    self.tracker = tracker

  @contextlib.contextmanager
  def time(self, phase: str):
    t0 = time.time()
    try:
      yield
    finally:
      setattr(
        self.tracker, f"{phase}_time_s", getattr(self.tracker, f"{phase}_time_s") + time.time() - t0
      )


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains the replicas a config describes and returns one results row per replica.

  Every process of a multi-process run (train/distributed.py) runs this; only process 0 writes
  config.json, results.jsonl, history and TensorBoard and prints the per-epoch lines, and every
  process takes the same decisions (early stopping, resumption) from the same replicated values.
  """
  t_run = time.time()
  validation.validate(config)
  writer_process = distributed.is_writer()
  distributed.agree(
    {"version": orthoalign.__version__, "config": config.to_dict()},
    "the orthoalign version and config",
  )
  with contextlib.ExitStack() as held:
    failure = None
    if writer_process:
      try:
        held.enter_context(run_lock.acquire(workdir))  # before anything is written
        workdir_lib.prepare(config, workdir)
      except errors.UserError as e:  # every process stops
        failure = e
    distributed.raise_together(failure, "preparing the workdir")
    try:
      return _train(config, workdir, t_run, writer_process)
    except errors.Interrupted:
      raise
    except KeyboardInterrupt:
      raise errors.Interrupted(
        f"stopped {workdir} before its first epoch here; {_resume_note(workdir)}"
      ) from None
    except RuntimeError as e:
      if not _out_of_memory(e):
        raise
      raise errors.RunError(
        f"out of memory while training {workdir} ({str(e).splitlines()[0][:200]}); lower "
        "train.batch_size or eval.batch_size (or the model's width); the same command resumes "
        f"from the last checkpoint"
      ) from None


def _resume_note(workdir: str) -> str:
  """'the same command resumes from epoch N' (or starts afresh), from the saved checkpoints."""
  last = checkpoint_lib.saved_epochs(workdir)
  if not last:
    return "no checkpoint was saved yet: the same command starts the run afresh"
  return (
    f"the checkpoint of epoch {last[-1]} is kept: the same command resumes from epoch "
    f"{last[-1] + 1}"
  )


def _finished_rows(
  workdir: str, tracker: schedule.Tracker, start: int, max_epochs: int
) -> list[dict[str, Any]] | None:
  """The rows of results.jsonl when the run has nothing left to train (every replica stopped, or
  max_epochs reached) and finished earlier; None otherwise.
  """
  path = os.path.join(workdir, "results.jsonl")
  done = (all(tracker.stopped) or start > max_epochs) and os.path.isfile(path)
  distributed.agree(done, "whether the run finished earlier")
  if not done:
    return None
  try:
    with open(path, encoding="utf-8") as f:
      rows = [json.loads(line) for line in f if line.strip()]
  except (OSError, ValueError) as e:
    rows = e
  if (
    isinstance(rows, Exception)
    or not rows
    or not all(isinstance(r, dict) and "replica" in r for r in rows)
  ):
    why = rows if isinstance(rows, Exception) else "not one JSON row per replica"
    raise errors.DataError(
      f"the finished run's results cannot be read ({why}); delete the file "
      "and run the same command to evaluate again",
      path=path,
    )
  return rows


def _train(
  config: ml_collections.ConfigDict, workdir: str, t_run: float, writer_process: bool
) -> list[dict[str, Any]]:
  """train_and_evaluate once the workdir is locked and prepared."""
  run = _build(config)  # validated by train_and_evaluate
  ds, task, reps, mesh, repl, steps = run.ds, run.task, run.reps, run.mesh, run.repl, run.steps
  train_data, eval_data, frozen, state = run.train_data, run.eval_data, run.frozen, run.state
  epoch_fn, eval_fn, epoch_arg = run.epoch_fn, run.eval_fn, run.epoch_arg
  num_r = len(reps)
  say = print if writer_process else (lambda *a, **k: None)
  say(
    f"orthoalign {orthoalign.__version__} | jax {jax.__version__} | {mesh.size} x "
    f"{jax.devices()[0].platform}{distributed.describe()} | model {task.name} | data {ds.name}: "
    f"{ds.num_users} users, {ds.num_items_a}+{ds.num_items_b} items | R={num_r} replicas | "
    f"{steps} steps/epoch",
    flush=True,
  )
  best = jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=run.state_sharding.params)(
    state.params
  )
  total_params, trainable_params = _param_counts(run)

  with errors.interrupts_held():  # it cleans up an interrupted save's folders
    ckpt = checkpoint_lib.Checkpointer(workdir)
  tracker = schedule.Tracker.new(num_r)
  start = 1
  latest = None
  with errors.interrupts_held():
    restored = ckpt.restore_latest(state, best)
  if restored is not None:
    for line in restored.skipped:
      say(f"warning: {line}", flush=True)
    state, best, latest = restored.state, restored.best, restored.epoch
    tracker = schedule.Tracker(**upgrade.tracker(restored.meta["tracker"], num_r))
    start = latest + 1
    say(f"Resumed from {ckpt.directory} at epoch {latest}", flush=True)
  distributed.agree(start, "the epoch to resume from")
  tc = config.train
  finished = None if restored is None else _finished_rows(workdir, tracker, start, tc.max_epochs)
  if finished is not None:
    ckpt.close()
    say(
      f"{workdir} finished at epoch {latest} earlier; its results.jsonl is kept as written "
      "(evaluate other settings with python -m orthoalign.evaluate)",
      flush=True,
    )
    say(results.results_table(finished, config), flush=True)
    return finished
  # Times over every process that worked on the run, up to the checkpoint it resumed from.
  wall_before = tracker.wall_time_s
  phases = Phases(tracker)
  history = history_lib.History(workdir, latest)

  t0 = time.time()
  (compiled, train_compile_s), (compiled_eval, eval_compile_s) = compile_together(
    (epoch_fn, (state, train_data, frozen, epoch_arg(start))),
    (eval_fn, (state.params, frozen, eval_data["valid"])),
  )
  compile_s = time.time() - t0
  tracker.compile_time_s += compile_s
  cache = jax.config.jax_compilation_cache_dir or "off"
  say(
    f"compiled in {compile_s:.1f}s (train epoch {train_compile_s:.1f}s and evaluation "
    f"{eval_compile_s:.1f}s, side by side; persistent cache: {cache})",
    flush=True,
  )
  # On resumption TensorBoard hides what the interrupted run wrote from epoch `start` on.
  writer = writers.ScalarWriter(
    os.path.join(workdir, "tb"), purge_step=None if latest is None else start
  )
  key, patience = tc.select_metric, tc.early_stop_patience
  max_epochs, every = tc.max_epochs, tc.eval_every
  base_lrs = np.asarray([rep["learning_rate"] for rep in reps], np.float32)
  epoch = start
  try:
    for epoch in range(start, max_epochs + 1):
      if all(tracker.stopped):
        break
      lrs = schedule.learning_rates(base_lrs, epoch, tracker, tc)
      state = schedule.set_learning_rates(state, jax.device_put(lrs, repl))
      # Training time starts here: not the compilation of the update above (the first epoch of a
      # process), nor a restored state still arriving on the device.
      jax.block_until_ready(state)
      t_epoch = time.time()
      with phases.time("train"):
        state, metrics = compiled(state, train_data, frozen, epoch_arg(epoch))
        metrics = jax.device_get(metrics)
      dt = time.time() - t_epoch
      tracker.train_steps += steps
      losses = np.asarray(metrics["loss"])
      if not np.all(np.isfinite(losses)):
        bad = [r for r in range(num_r) if not np.isfinite(losses[r])]
        last = ckpt.latest_epoch()
        kept = (
          "no checkpoint was saved before it"
          if last is None
          else f"the last good checkpoint (epoch {last}) is kept in {workdir}/checkpoints"
        )
        raise TrainingDiverged(
          f"training loss became {losses[bad[0]]} at epoch {epoch} for replica(s) {bad} "
          f"({[reps[r] for r in bad]}); {kept}. Lower the learning rate or check the data."
        )
      scalars = {f"train/{k}/r{r}": float(v[r]) for k, v in metrics.items() for r in range(num_r)}
      tracker.last_train = [
        {f"train/{k}": float(v[r]) for k, v in metrics.items()} for r in range(num_r)
      ]
      scalars.update({f"perf/steps_per_s/r{r}": steps / dt for r in range(num_r)})
      scalars.update({f"train/learning_rate/r{r}": float(lrs[r]) for r in range(num_r)})
      tracker.last_epoch = epoch
      line = f"epoch {epoch}/{max_epochs}  loss {losses.mean():.4f}"
      rows = [
        {
          "epoch": epoch,
          "replica": r,
          **tracker.last_train[r],
          "train/learning_rate": float(lrs[r]),
        }
        for r in range(num_r)
      ]
      # As ABXI: no validation (so no early stopping or plateau) during warm-up.
      if epoch > tc.warmup_epochs and (epoch % every == 0 or epoch == max_epochs):
        with phases.time("eval"):
          sums = jax.device_get(compiled_eval(state.params, frozen, eval_data["valid"]))
          valid = [results.finalize_split(sums, r, "valid") for r in range(num_r)]
          if config.eval.track_test:
            sums = jax.device_get(eval_fn(state.params, frozen, eval_data["test"]))
            for r in range(num_r):
              rows[r].update(
                {
                  k: v
                  for k, v in results.finalize_split(sums, r, "test").items()
                  if not keys.parse_align(k)
                }
              )
        for r in range(num_r):
          rows[r].update(valid[r])
        improved = tracker.update(
          epoch, valid, key, patience, tc.plateau_patience, tc.plateau_factor
        )
        best = _keep_best(best, state.params, jax.device_put(improved, repl))
        for r in range(num_r):
          scalars.update({f"{k}/r{r}": v for k, v in valid[r].items()})
        cur = np.nanmean([schedule.select_value(v, key) for v in valid])
        line += (
          f"  {results.short_key(key)} {cur:.4f} (best {np.mean(tracker.best_value):.4f})"
          f"  early-stopped {sum(tracker.stopped)}/{num_r} replicas"
        )
      else:
        line += "  (warm-up)" if epoch <= tc.warmup_epochs else ""
      with errors.interrupts_held():
        # Before the checkpoint: a resume then drops this epoch's rows, never lacks them.
        history.append(rows)
      if epoch % tc.checkpoint_every == 0 or epoch == max_epochs or all(tracker.stopped):
        tracker.wall_time_s = wall_before + time.time() - t_run
        with phases.time("checkpoint"), errors.interrupts_held():
          ckpt.save(epoch, state, best, {"tracker": dataclasses.asdict(tracker)})
      writer.write_scalars(epoch, scalars)
      eta = (max_epochs - epoch) * tracker.train_time_s / max(tracker.train_steps / steps, 1)
      line += f"  {steps / dt:.1f} steps/s  {dt:.1f}s/epoch  ETA <= {fileio.format_duration(eta)}"
      say(line, flush=True)
  except KeyboardInterrupt:
    raise errors.Interrupted(
      f"stopped {workdir} in epoch {epoch} of {max_epochs}; {_resume_note(workdir)}"
    ) from None
  finally:
    writer.close()

  # Test every replica at its best validation epoch.
  try:
    with phases.time("eval"):
      test_sums = jax.device_get(eval_fn(best, frozen, eval_data["test"]))
  except KeyboardInterrupt:
    raise errors.Interrupted(
      f"stopped {workdir} in the test evaluation after its last epoch "
      f"({tracker.last_epoch}); the same command evaluates again"
    ) from None
  flat_config = dicts.flatten(config.to_dict())
  steps_per_s = tracker.train_steps / tracker.train_time_s if tracker.train_time_s else math.nan
  rows = []
  for r in range(num_r):
    row: dict[str, Any] = {
      "run": os.path.basename(os.path.abspath(workdir)),
      "replica": r,
      "model": task.name,
      "dataset": ds.name,
      **reps[r],
      "gca_positions": list(config.gca.positions),
      "params/total": total_params,
      "params/trainable": trainable_params,
      "best_epoch": tracker.best_epoch[r],
      "epochs_trained": tracker.last_epoch,
      "compile_s": tracker.compile_time_s,
      "wall_time_s": wall_before + time.time() - t_run,
      "train_time_s": tracker.train_time_s,
      "eval_time_s": tracker.eval_time_s,
      "checkpoint_time_s": tracker.checkpoint_time_s,
      "steps_per_s": steps_per_s,
      "backend": jax.default_backend(),
      "num_devices": mesh.size,
      "num_processes": jax.process_count(),
      "num_replicas": num_r,
      "orthoalign_version": orthoalign.__version__,
      "config": flat_config,
    }
    row.update(tracker.last_train[r] if tracker.last_train else {})
    row.update(tracker.best_metrics[r])
    row.update(
      {
        k: v
        for k, v in results.finalize_split(test_sums, r, "test").items()
        if not keys.parse_align(k)
      }
    )
    rows.append(row)
  if writer_process:
    with errors.interrupts_held():
      fileio.write_jsonl(os.path.join(workdir, "results.jsonl"), rows)
  with errors.interrupts_held():
    ckpt.close()
  distributed.sync("results written")
  say(results.results_table(rows, config), flush=True)
  say(
    f"results: {os.path.join(workdir, 'results.jsonl')} (per-epoch history, TensorBoard events and "
    f"checkpoints beside it)",
    flush=True,
  )
  return rows
