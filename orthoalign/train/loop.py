"""train_and_evaluate: the whole run, from config to results.jsonl, as one short script.

Order of business (and of resumption): validate the config -> take the workdir's lock
(orthoalign/run_lock.py) -> write/compare <workdir>/config.json -> build data, model and R replicas
(build.py) -> restore the newest checkpoint if any (progress.py; a run that finished earlier
stops here, keeping its results.jsonl) -> compile -> train epoch by epoch (one compiled program
per epoch), with the hooks of hooks.py around each: validate, select (early stopping, plateau),
checkpoint, report -> test each replica's best parameters -> results.jsonl and the results table.
Every number goes out through metric_writer.MetricWriter. Ctrl-C ends with one line saying from
which epoch the same command resumes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np

import orthoalign
from orthoalign import errors
from orthoalign import fileio
from orthoalign import run_lock
from orthoalign.config import validation
from orthoalign.metrics import keys
from orthoalign.train import build
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import distributed
from orthoalign.train import hooks
from orthoalign.train import metric_writer
from orthoalign.train import progress as progress_lib
from orthoalign.train import results
from orthoalign.train import schedule
from orthoalign.train import workdir as workdir_lib

TrainingDiverged = errors.TrainingDiverged  # the loss became NaN/inf; a one-line user error


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains the replicas a config describes and returns one results row per replica.

  Every process of a multi-process run (train/distributed.py) runs this; only process 0 writes
  config.json, results.jsonl, history and TensorBoard and prints the per-epoch lines, and every
  process takes the same decisions (early stopping, resumption) from the same replicated values.
  """
  t_run = time.time()
  fileio.local_folder(workdir, "--workdir")
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
      return _train(config, workdir, t_run)
    except errors.Interrupted:
      raise
    except KeyboardInterrupt:
      raise errors.Interrupted(
        f"stopped {workdir} before its first epoch here; {_resume_note(workdir)}"
      ) from None
    except RuntimeError as e:
      if not build.out_of_memory(e):
        raise
      raise errors.RunError(
        f"out of memory while training {workdir} ({str(e).splitlines()[0][:200]}); lower "
        "train.batch_size or eval.batch_size (or the model's width); the same command resumes "
        f"from the last checkpoint"
      ) from None


def _train(config: ml_collections.ConfigDict, workdir: str, t_run: float) -> list[dict[str, Any]]:
  """train_and_evaluate once the workdir is locked and prepared."""
  tc, say = config.train, distributed.say
  run = build.build(config)  # validated by train_and_evaluate
  say(run.banner())
  params = build.param_counts(run)  # before the first epoch takes the initial state
  # --- Resume ----------------------------------------------------------------------------------
  with errors.interrupts_held():  # it cleans up an interrupted save's folders
    ckpt = checkpoint_lib.Checkpointer(workdir)
  progress = progress_lib.restore(run, ckpt, t_run)
  if (rows := _finished_rows(workdir, progress, tc.max_epochs)) is not None:
    ckpt.close()
    say(
      f"{workdir} finished at epoch {progress.epoch} earlier; its results.jsonl is kept as "
      "written (evaluate other settings with python -m orthoalign.evaluate)"
    )
    say(results.results_table(rows, config))
    return rows
  # --- Compile ---------------------------------------------------------------------------------
  train_epoch, evaluate = _compile(run, progress)
  # --- Train -----------------------------------------------------------------------------------
  writer = metric_writer.MetricWriter(workdir, progress.epoch or None, tc.max_epochs)
  validate, select = hooks.Validate(run, config, evaluate), hooks.Select(run, config)
  save, report = hooks.Checkpoint(ckpt, config), hooks.Report(run, writer, tc.max_epochs)
  epoch = progress.epoch
  try:
    for epoch in range(progress.epoch + 1, tc.max_epochs + 1):
      if progress.selection.all_stopped:
        break
      numbers, epoch_s = _train_epoch(run, config, progress, train_epoch, epoch, ckpt)
      status = "(warm-up)" if epoch <= tc.warmup_epochs else ""
      if validate.due(epoch, progress):
        valid = validate(progress)
        status = select(epoch, valid, progress)
        numbers = [{**n, **v} for n, v in zip(numbers, valid)]
      writer.write(epoch, numbers)  # before the checkpoint: a resume drops replayed rows
      if save.due(epoch, progress):
        save(epoch, progress)
      report(epoch, epoch_s, status, progress)
  except KeyboardInterrupt:
    raise errors.Interrupted(
      f"stopped {workdir} in epoch {epoch} of {tc.max_epochs}; {_resume_note(workdir)}"
    ) from None
  finally:
    writer.close()
  # --- Test each replica at its best validation epoch ------------------------------------------
  try:
    with progress.timing.phase("eval"):
      test_sums = jax.device_get(run.eval_fn(progress.best, run.frozen, run.eval_data["test"]))
  except KeyboardInterrupt:
    raise errors.Interrupted(
      f"stopped {workdir} in the test evaluation after its last epoch ({progress.epoch}); the "
      "same command evaluates again"
    ) from None
  rows = results.result_rows(run, config, workdir, progress, test_sums, params)
  with errors.interrupts_held():
    path = writer.results(rows)
    ckpt.close()
  distributed.sync("results written")
  say(results.results_table(rows, config))
  say(f"results: {path} (per-epoch history, TensorBoard events and checkpoints beside it)")
  return rows


def _compile(run: build.Run, progress: progress_lib.Progress) -> tuple[Any, Any]:
  """The compiled epoch and evaluation programs, compiled side by side (build.compile_together)."""
  t0 = time.time()
  timing = progress.timing
  with timing.phase("compile"):
    (train_epoch, train_s), (evaluate, eval_s) = build.compile_together(
      (
        run.epoch_fn,
        (progress.state, run.train_data, run.frozen, run.epoch_arg(progress.epoch + 1)),
      ),
      (run.eval_fn, (progress.state.params, run.frozen, run.eval_data["valid"])),
    )
  timing.programs["train_epoch"] += train_s
  timing.programs["evaluate"] += eval_s
  cache = jax.config.jax_compilation_cache_dir or "off"
  distributed.say(
    f"compiled in {time.time() - t0:.1f}s (train epoch {train_s:.1f}s and evaluation "
    f"{eval_s:.1f}s, side by side; persistent cache: {cache})"
  )
  return train_epoch, evaluate


def _train_epoch(
  run: build.Run,
  config: ml_collections.ConfigDict,
  progress: progress_lib.Progress,
  train_epoch: Any,
  epoch: int,
  ckpt: checkpoint_lib.Checkpointer,
) -> tuple[list[dict[str, float]], float]:
  """Trains one epoch of every replica; returns per replica its numbers ("train/<name>", the
  learning rate, the speed) and the epoch's seconds.

  Raises:
    TrainingDiverged: a replica's loss is NaN or infinite.
  """
  base = np.asarray([rep["learning_rate"] for rep in run.reps], np.float32)
  lrs = schedule.learning_rates(base, epoch, progress.selection.lr_scale, config.train)
  state = schedule.set_learning_rates(progress.state, jax.device_put(lrs, run.repl))
  # Training time starts here: not the compilation of the update above (the first epoch of a
  # process), nor a restored state still arriving on the device.
  jax.block_until_ready(state)
  t0 = time.time()
  with progress.timing.phase("train"):
    progress.state, metrics = train_epoch(state, run.train_data, run.frozen, run.epoch_arg(epoch))
    metrics = jax.device_get(metrics)
  epoch_s = time.time() - t0
  losses = np.asarray(metrics["loss"])
  if not np.all(np.isfinite(losses)):
    bad = [r for r in range(run.num_replicas) if not np.isfinite(losses[r])]
    last = ckpt.latest_epoch()
    kept = (
      "no checkpoint was saved before it"
      if last is None
      else f"the last good checkpoint (epoch {last}) is kept in {ckpt.directory}"
    )
    raise TrainingDiverged(
      f"training loss became {losses[bad[0]]} at epoch {epoch} for replica(s) {bad} "
      f"({[run.reps[r] for r in bad]}); {kept}. Lower the learning rate or check the data."
    )
  progress.epoch = epoch
  progress.timing.train_steps += run.steps
  progress.last_train = [
    {keys.train_key(k): float(v[r]) for k, v in metrics.items()} for r in range(run.num_replicas)
  ]
  numbers = [
    {**train, keys.LEARNING_RATE: float(lr), keys.STEPS_PER_S: run.steps / epoch_s}
    for train, lr in zip(progress.last_train, lrs)
  ]
  return numbers, epoch_s


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
  workdir: str, progress: progress_lib.Progress, max_epochs: int
) -> list[dict[str, Any]] | None:
  """The rows of results.jsonl when the run has nothing left to train (every replica stopped, or
  max_epochs reached) and finished earlier; None otherwise.
  """
  path = os.path.join(workdir, "results.jsonl")
  restored = progress.epoch > 0
  done = (
    restored
    and (progress.selection.all_stopped or progress.epoch >= max_epochs)
    and os.path.isfile(path)
  )
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
