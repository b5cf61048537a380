"""train_and_evaluate: the whole run, from config to results.jsonl.

Order of business (and of resumption): validate the config -> write/compare <workdir>/config.json
-> build data and model -> init R replicas -> if <workdir>/checkpoints has a checkpoint, restore
state, best params and loop metadata from it -> train epoch by epoch (one compiled program per
epoch), evaluating every `train.eval_every` epochs and early-stopping per replica -> evaluate the
test split with each replica's best params -> write results.jsonl and print the results table.
"""

from __future__ import annotations

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
from orthoalign import config_lib
from orthoalign import errors
from orthoalign import models
from orthoalign import sweep
from orthoalign.data import load as data_load
from orthoalign.metrics import alignment
from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.metrics import table
from orthoalign.models import task as task_lib
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import history as history_lib
from orthoalign.train import sharding
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib
from orthoalign.train import writers


TrainingDiverged = errors.TrainingDiverged     # the loss became NaN/inf; a one-line user error


@dataclasses.dataclass
class Tracker:
  """Per-replica early stopping on the validation metric (host side, checkpointed as JSON)."""
  best_value: list[float]
  best_epoch: list[int]
  bad_evals: list[int]
  stopped: list[bool]
  best_metrics: list[dict[str, float]]
  last_epoch: int = 0
  last_train: list[dict[str, float]] = dataclasses.field(default_factory=list)
  lr_scale: list[float] = dataclasses.field(default_factory=list)      # reduce-on-plateau factor
  plateau_bad: list[int] = dataclasses.field(default_factory=list)
  train_time_s: float = 0.0
  train_steps: int = 0

  @classmethod
  def new(cls, r: int) -> "Tracker":
    return cls([-math.inf] * r, [0] * r, [0] * r, [False] * r, [{} for _ in range(r)],
               lr_scale=[1.0] * r, plateau_bad=[0] * r)

  def update(self, epoch: int, metrics: list[dict[str, float]], key: str, patience: int,
             plateau_patience: int = 0, plateau_factor: float = 1.0) -> np.ndarray:
    """Records one evaluation; returns bool [R], True where the replica improved.

    Early stopping: a replica stops after `patience` evaluations without improvement. Reduce on
    plateau (ABXI's use of torch's ReduceLROnPlateau, stepped with "improved or not"): after more
    than `plateau_patience` evaluations without improvement the replica's learning rate is
    multiplied by `plateau_factor` and the count restarts.
    """
    improved = np.zeros(len(metrics), bool)
    for r, m in enumerate(metrics):
      if self.stopped[r]:
        continue
      value = select_value(m, key)
      if math.isfinite(value) and value > self.best_value[r]:
        self.best_value[r], self.best_epoch[r], self.bad_evals[r] = value, epoch, 0
        self.best_metrics[r] = dict(m)
        self.plateau_bad[r] = 0
        improved[r] = True
      else:
        self.bad_evals[r] += 1
        self.stopped[r] = self.bad_evals[r] >= patience
        self.plateau_bad[r] += 1
        if plateau_patience and self.plateau_bad[r] > plateau_patience:
          self.lr_scale[r] *= plateau_factor
          self.plateau_bad[r] = 0
    return improved


def select_value(metrics: dict[str, float], key: str) -> float:
  """The model-selection value: one metric key, or a '+'-joined sum (ABXI: MRR_A + MRR_B)."""
  return float(sum(metrics.get(k, math.nan) for k in key.split("+")))


def warmup_factor(epoch: int, warmup_epochs: int, start_factor: float) -> float:
  """torch LinearLR stepped once per epoch: epoch 1 trains at start_factor, epoch n+1 at 1."""
  if warmup_epochs <= 0:
    return 1.0
  return start_factor + (1.0 - start_factor) * min(epoch - 1, warmup_epochs) / warmup_epochs


@functools.partial(jax.jit, donate_argnums=0)
def _set_learning_rates(state: state_lib.TrainState, lrs: jax.Array) -> state_lib.TrainState:
  """Writes per-replica learning rates [R] into the (stacked) optimizer states."""
  opt_state = state.opt_state
  hyper = dict(opt_state.hyperparams, learning_rate=lrs.astype(jnp.float32))
  return state.replace(opt_state=opt_state._replace(hyperparams=hyper))


def _eval_batches(arrays: dict[str, np.ndarray], batch_size: int,
                  hist_width: int) -> dict[str, np.ndarray]:
  """Pads eval cases to a multiple of batch_size (weight 0) and reshapes to [batches, batch, ...]."""
  n = len(arrays["domain"])
  arrays = dict(arrays)
  hist = arrays["hist"]
  arrays["hist"] = np.pad(hist, ((0, 0), (hist_width - hist.shape[1], 0)))   # 0-padding stays sorted
  padded = -(-n // batch_size) * batch_size
  out = {}
  for k, v in arrays.items():
    pad = np.zeros((padded - n,) + v.shape[1:], v.dtype)
    out[k] = np.concatenate([v, pad]).reshape((padded // batch_size, batch_size) + v.shape[1:])
  out["weight"] = (np.arange(padded) < n).astype(np.float32).reshape(padded // batch_size, batch_size)
  return out


def finalize_split(sums: dict[str, np.ndarray], r: int, split: str) -> dict[str, float]:
  """Replica r's sums -> flat metric dict (metrics/keys.py): "<split>/<protocol>/<dom>/<metric>"
  per evaluated protocol, the same per user or case group with cases in the split,
  "<split>/<group>/<protocol>/<dom>/<metric>" (plus its number of cases,
  "<split>/<group>/sampled/all/count"), and "align/<cell>/<stat>". The metrics follow the
  evaluation's tie rule (config.eval.ties, recorded in the row's config) and include "tie_share",
  the share of cases with at least one negative tied with the target."""
  one = {k: np.asarray(v)[r] for k, v in sums.items()}
  out = {}
  parts: dict[tuple[str, str], dict[str, Any]] = {}
  for k, v in one.items():
    if (key := keys.parse(k, with_split=False)) is not None:
      parts.setdefault((key.group, key.protocol), {})[f"{key.domain}/{key.metric}"] = v
  for (group, protocol), part in sorted(parts.items(), key=lambda gp: (gp[0][0] != "", gp[0][0],
                                                                      keys.protocol_order(gp[0][1]))):
    if group and not float(part["all/count"]):
      continue                                     # no case of this group in the split
    out.update({keys.metric_key(split, protocol, *k.split("/"), group=group): v
                for k, v in ranking.finalize(part).items()})
    if group and protocol == keys.SAMPLED:
      out[keys.count_key(split, group)] = float(part["all/count"])
  cells = sorted({k.split("/")[1] for k in one if k.startswith("align/")})
  for cell in cells:
    part = {k.split("/", 2)[2]: v for k, v in one.items() if k.startswith(f"align/{cell}/")}
    stats = alignment.finalize_alignment(part)
    count = float(part["alpha_count"])
    stats["alpha"] = float(part["alpha_sum"]) / count if count else math.nan
    out.update({keys.align_key(cell, k): v for k, v in stats.items()})
  return out


def _prepare_workdir(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; on resumption refuses a config that would change what was computed.

  Raises:
    ConfigError: the config differs from the workdir's, or the workdir cannot be written.
  """
  writers.writable_dir(workdir, "the run's outputs (--workdir)", errors.ConfigError)
  path = os.path.join(workdir, "config.json")
  new = config_lib.flatten(config.to_dict())
  if os.path.exists(path) and os.path.isdir(os.path.join(workdir, "checkpoints")):
    with open(path) as f:
      old = config_lib.flatten(json.load(f))
    diff = config_lib.differences(old, json.loads(json.dumps(new)))
    if diff:
      raise config_lib.ConfigError(
          f"{workdir} holds a run with a different config (keys: {', '.join(diff)}); resume with the "
          "same config or use a new --workdir")
  try:
    writers.write_json(path, config.to_dict())
  except OSError as e:
    raise errors.ConfigError(f"cannot write {path}: {e.strerror or e}") from None


def _param_counts(task: task_lib.Task, state: state_lib.TrainState) -> tuple[int, int]:
  trainable = state_lib.count_params(jax.tree.map(lambda x: x[0], state.params))
  return trainable + state_lib.count_params(task.frozen), trainable


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

  def epoch_arg(self, epoch: int) -> jax.Array:
    return jax.device_put(np.int32(epoch), self.repl)


def setup(config: ml_collections.ConfigDict) -> Run:
  """Builds data, model and R initialised replicas on the device mesh (shared by main and bench)."""
  config_lib.validate(config)
  ds = data_load.load(config.data)
  task = models.get_builder(config.model.name)(ds, config)
  reps = sweep.replicas(config)
  hp = sweep.stacked(reps)
  mesh = sharding.make_mesh(config.train.num_devices)
  repl = sharding.replicated(mesh)
  bs, ebs = config.train.batch_size, config.eval.batch_size
  for key, value in (("train.batch_size", bs), ("eval.batch_size", ebs)):
    if value % mesh.size:
      raise config_lib.ConfigError(f"config key {key}={value} must be divisible by the {mesh.size} devices")
  n_train = len(next(iter(task.train_data.values())))
  if n_train == 0:
    raise config_lib.ConfigError("the dataset has no user with a training sequence of >= 2 items")

  train_data = jax.device_put(task.train_data, repl)
  # One width for both splits' history so valid and test share one compiled eval program.
  hist_width = max(a["hist"].shape[1] for a in task.eval_data.values())
  eval_data = {s: jax.device_put(_eval_batches(a, ebs, hist_width), repl)
               for s, a in task.eval_data.items()}
  frozen = jax.device_put(task.frozen, repl)
  tx = state_lib.make_optimizer()
  init = jax.jit(jax.vmap(functools.partial(state_lib.init_replica, task, tx)), out_shardings=repl)
  state = init(*[jax.device_put(hp[k], repl) for k in ("seed", "learning_rate", "weight_decay", "gate_init",
                                                        "model")])
  epoch_fn = jax.jit(jax.vmap(functools.partial(step_lib.train_epoch, task=task, tx=tx, batch_size=bs,
                                                mesh=mesh), in_axes=(0, None, None, None)),
                     donate_argnums=0)
  eval_fn = jax.jit(jax.vmap(functools.partial(step_lib.evaluate, task=task, mesh=mesh,
                                               ties=config.eval.get("ties", "pessimistic")),
                             in_axes=(0, None, None)))
  return Run(ds=ds, task=task, reps=reps, mesh=mesh, repl=repl,
             steps=step_lib.steps_per_epoch(n_train, bs), train_data=train_data, eval_data=eval_data,
             frozen=frozen, state=state, epoch_fn=epoch_fn, eval_fn=eval_fn)


@functools.partial(jax.jit, donate_argnums=0)
def _keep_best(best: Any, params: Any, improved: jax.Array) -> Any:
  """Per replica: best <- params where the replica improved."""
  return jax.tree.map(lambda b, p: jnp.where(improved.reshape((-1,) + (1,) * (b.ndim - 1)), p, b),
                      best, params)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains the replicas a config describes and returns one results row per replica."""
  t_run = time.time()
  config_lib.validate(config)
  _prepare_workdir(config, workdir)
  run = setup(config)
  ds, task, reps, mesh, repl, steps = run.ds, run.task, run.reps, run.mesh, run.repl, run.steps
  train_data, eval_data, frozen, state = run.train_data, run.eval_data, run.frozen, run.state
  epoch_fn, eval_fn, epoch_arg = run.epoch_fn, run.eval_fn, run.epoch_arg
  num_r = len(reps)
  print(f"orthoalign {orthoalign.__version__} | jax {jax.__version__} | {mesh.size} x "
        f"{jax.devices()[0].platform} | model {task.name} | data {ds.name}: {ds.num_users} users, "
        f"{ds.num_items_a}+{ds.num_items_b} items | R={num_r} replicas | {steps} steps/epoch", flush=True)
  best = jax.jit(lambda t: jax.tree.map(jnp.copy, t), out_shardings=repl)(state.params)
  total_params, trainable_params = _param_counts(task, state)
  keep_best = _keep_best

  ckpt = checkpoint_lib.Checkpointer(workdir)
  tracker = Tracker.new(num_r)
  start = 1
  latest = None
  restored = ckpt.restore_latest(state, best)
  if restored is not None:
    for line in restored.skipped:
      print(f"warning: {line}", flush=True)
    state, best, latest = restored.state, restored.best, restored.epoch
    tracker = Tracker(**restored.meta["tracker"])
    start = latest + 1
    print(f"Resumed from {ckpt.directory} at epoch {latest}", flush=True)
  history = history_lib.History(workdir, latest)

  t0 = time.time()
  compiled = epoch_fn.lower(state, train_data, frozen, epoch_arg(start)).compile()
  train_compile_s = time.time() - t0
  t0 = time.time()
  compiled_eval = eval_fn.lower(state.params, frozen, eval_data["valid"]).compile()
  compile_s = train_compile_s + time.time() - t0
  cache = jax.config.jax_compilation_cache_dir or "off"
  print(f"compiled in {compile_s:.1f}s (train epoch {train_compile_s:.1f}s, evaluation "
        f"{compile_s - train_compile_s:.1f}s; persistent cache: {cache})", flush=True)
  # On resumption TensorBoard hides what the interrupted run wrote from epoch `start` on.
  writer = writers.ScalarWriter(os.path.join(workdir, "tb"),
                                purge_step=None if latest is None else start)
  tc = config.train
  key, patience = tc.select_metric, tc.early_stop_patience
  max_epochs, every = tc.max_epochs, tc.eval_every
  base_lrs = np.asarray([rep["learning_rate"] for rep in reps], np.float32)
  if not tracker.lr_scale:                       # a checkpoint of a run without the schedule
    tracker.lr_scale, tracker.plateau_bad = [1.0] * num_r, [0] * num_r
  try:
    for epoch in range(start, max_epochs + 1):
      if all(tracker.stopped):
        break
      lrs = base_lrs * warmup_factor(epoch, tc.warmup_epochs, tc.warmup_start_factor) * np.asarray(
          tracker.lr_scale, np.float32)
      state = _set_learning_rates(state, jax.device_put(lrs, repl))
      # Training time starts here: not the compilation of the update above (the first epoch of a
      # process), nor a restored state still arriving on the device.
      jax.block_until_ready(state)
      t_epoch = time.time()
      state, metrics = compiled(state, train_data, frozen, epoch_arg(epoch))
      metrics = jax.device_get(metrics)
      dt = time.time() - t_epoch
      tracker.train_time_s += dt
      tracker.train_steps += steps
      losses = np.asarray(metrics["loss"])
      if not np.all(np.isfinite(losses)):
        bad = [r for r in range(num_r) if not np.isfinite(losses[r])]
        last = ckpt.latest_epoch()
        raise TrainingDiverged(
            f"training loss became {losses[bad[0]]} at epoch {epoch} for replica(s) {bad} "
            f"({[reps[r] for r in bad]}); the last good checkpoint (epoch {last}) is kept in "
            f"{workdir}/checkpoints. Lower the learning rate or check the data.")
      scalars = {f"train/{k}/r{r}": float(v[r]) for k, v in metrics.items() for r in range(num_r)}
      tracker.last_train = [{f"train/{k}": float(v[r]) for k, v in metrics.items()} for r in range(num_r)]
      scalars.update({f"perf/steps_per_s/r{r}": steps / dt for r in range(num_r)})
      scalars.update({f"train/learning_rate/r{r}": float(lrs[r]) for r in range(num_r)})
      tracker.last_epoch = epoch
      line = f"epoch {epoch}/{max_epochs}  loss {losses.mean():.4f}"
      rows = [{"epoch": epoch, "replica": r, **tracker.last_train[r], "train/learning_rate": float(lrs[r])}
              for r in range(num_r)]
      # As ABXI: no validation (so no early stopping or plateau) during warm-up.
      if epoch > tc.warmup_epochs and (epoch % every == 0 or epoch == max_epochs):
        sums = jax.device_get(compiled_eval(state.params, frozen, eval_data["valid"]))
        valid = [finalize_split(sums, r, "valid") for r in range(num_r)]
        for r in range(num_r):
          rows[r].update(valid[r])
        if config.eval.track_test:
          sums = jax.device_get(eval_fn(state.params, frozen, eval_data["test"]))
          for r in range(num_r):
            rows[r].update({k: v for k, v in finalize_split(sums, r, "test").items()
                            if not k.startswith("align/")})
        improved = tracker.update(epoch, valid, key, patience, tc.plateau_patience, tc.plateau_factor)
        best = keep_best(best, state.params, jax.device_put(improved, repl))
        for r in range(num_r):
          scalars.update({f"{k}/r{r}": v for k, v in valid[r].items()})
        cur = np.nanmean([select_value(v, key) for v in valid])
        line += (f"  {_short(key)} {cur:.4f} (best {np.mean(tracker.best_value):.4f})"
                 f"  stopped {sum(tracker.stopped)}/{num_r}")
      else:
        line += "  (warm-up)" if epoch <= tc.warmup_epochs else ""
      history.append(rows)      # before the checkpoint: a resume then drops this epoch's rows, never lacks them
      if epoch % tc.checkpoint_every == 0 or epoch == max_epochs or all(tracker.stopped):
        ckpt.save(epoch, state, best, {"tracker": dataclasses.asdict(tracker)})
      writer.write_scalars(epoch, scalars)
      eta = (max_epochs - epoch) * tracker.train_time_s / max(tracker.train_steps / steps, 1)
      line += f"  {steps / dt:.1f} steps/s  {dt:.1f}s/epoch  ETA <= {writers.format_duration(eta)}"
      print(line, flush=True)
  finally:
    writer.close()

  # Test every replica at its best validation epoch.
  test_sums = jax.device_get(eval_fn(best, frozen, eval_data["test"]))
  flat_config = config_lib.flatten(config.to_dict())
  steps_per_s = tracker.train_steps / tracker.train_time_s if tracker.train_time_s else math.nan
  rows = []
  for r in range(num_r):
    row: dict[str, Any] = {
        "run": os.path.basename(os.path.abspath(workdir)), "replica": r, "model": task.name,
        "dataset": ds.name, **reps[r], "gca_positions": list(config.gca.positions),
        "params/total": total_params, "params/trainable": trainable_params,
        "best_epoch": tracker.best_epoch[r], "epochs_trained": tracker.last_epoch,
        "compile_s": compile_s, "wall_time_s": time.time() - t_run,
        "train_time_s": tracker.train_time_s, "steps_per_s": steps_per_s,
        "backend": jax.default_backend(), "num_devices": mesh.size, "num_replicas": num_r,
        "orthoalign_version": orthoalign.__version__, "config": flat_config}
    row.update(tracker.last_train[r] if tracker.last_train else {})
    row.update(tracker.best_metrics[r])
    row.update({k: v for k, v in finalize_split(test_sums, r, "test").items() if not k.startswith("align/")})
    rows.append(row)
  writers.write_jsonl(os.path.join(workdir, "results.jsonl"), rows)
  ckpt.close()
  print(results_table(rows, config), flush=True)
  return rows


def _short(key: str) -> str:
  """'valid/sampled/A/mrr+valid/sampled/B/mrr' -> 'sampled/A/mrr+sampled/B/mrr'."""
  return "+".join(k.split("/", 1)[1] for k in key.split("+"))


def results_table(rows: list[dict[str, Any]], config: ml_collections.ConfigDict) -> str:
  """A readable summary: per replica and domain, the test metrics; per GCA cell, |cos| and alpha."""
  n = config.eval.num_negatives
  ties = config.eval.get("ties", "pessimistic")
  lines = [f"\nTest results at each replica's best validation epoch ({config.train.select_metric})",
           f"protocol: sampled = target vs {n} negatives from its domain; "
           + "".join(f"{p} = target vs {p[len(keys.SAMPLED):]} (own frozen set, items scored as in full "
                     "ranking); " for p in keys.protocols(config.eval)[1:-1])
           + "full = whole domain catalog",
           f"ties: {ties} ({table.TIE_RULES.get(ties, '?')}); TIE_SHARE = share of cases with a "
           "negative scoring exactly as the target",
           table.replica_table(rows, ("ndcg@1", "ndcg@10", "hr@10", "mrr", "auc", "tie_share"), columns=(
               ("lr", 8, lambda row: f"{row['learning_rate']:.2g}"),
               ("best", 4, lambda row: row["best_epoch"])))]
  groups = table.group_table(rows, ("ndcg@1", "ndcg@10", "hr@10", "mrr", "auc"), domains=("all",))
  if groups:
    lines += ["\nThe same by user and case group (overlapped = the user has items of both domains; switch "
              "= the target's domain differs from the last input's; docs/metrics.md)", groups]
  cells = sorted({k.split("/")[1] for row in rows for k in row if k.startswith("align/")})
  if cells:
    lines.append("\nOrthogonal alignment at the best epoch (validation inputs): |mean cos(X,X')|, "
                 "mean |cos(X,X')|, |mean cos(X,Y)|, gate alpha")
    stats = ("abs_mean_cos", "mean_abs_cos", "xy_abs_mean_cos", "alpha")
    lines.append(table.render(
        ("rep", "cell", "|cos|", "mean|cos|", "|cosXY|", "alpha"),
        [[row["replica"], c, *(row.get(f"align/{c}/{s}", math.nan) for s in stats)]
         for row in rows for c in cells], widths=(3, 8, 8, 9, 8, 8)))
  else:
    lines.append("\n(no GCA cells: gca.positions is empty, the plain baseline)")
  lines.append(f"\nparams: {rows[0]['params/total']:,} total, {rows[0]['params/trainable']:,} trainable | "
               f"{rows[0]['steps_per_s']:.1f} steps/s | wall {writers.format_duration(rows[0]['wall_time_s'])}")
  return "\n".join(lines)
