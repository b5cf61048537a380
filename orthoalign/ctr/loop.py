"""train_and_evaluate for click prediction: config -> data -> R replicas -> epochs -> test.

The same run shape as the ranking trainer (train/loop.py), forked because what is evaluated
differs: validate the config, lock the workdir and write config.json, build the impressions
(datasets/impressions.py) and their windows (inputs.py), initialise one replica per seed
(train/state.py), then per epoch one compiled program trains every replica (train/step.py's
train_step on shuffled batches, binary cross-entropy with optional negative downsampling) and
one predicts the validation impressions; the host computes logloss, AUC, GAUC and PCOC
(metrics/ctr.py), keeps each replica's best epoch by `eval.select`, stops a replica after
`train.early_stop_patience` epochs without a gain, and checkpoints; at the end each replica's best
parameters predict the test impressions. Every number goes through train/metric_writer.py
(history.jsonl, TensorBoard, results.jsonl). Re-running the same command resumes from the last
checkpoint with identical results.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from orthoalign import errors
from orthoalign import fileio
from orthoalign import run_lock
from orthoalign.ctr import config as ctr_config
from orthoalign.ctr import inputs
from orthoalign.ctr import model as model_lib
from orthoalign.datasets import ads_synthetic
from orthoalign.datasets import events as events_lib
from orthoalign.datasets import impressions
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import events as events_format
from orthoalign.datasets.readers import tables
from orthoalign.metrics import alignment
from orthoalign.metrics import ctr as ctr_metrics
from orthoalign.metrics import keys
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import metric_writer
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib
from orthoalign.train import workdir as workdir_lib

METRICS = ("logloss", "auc", "gauc", "pcoc", "predicted_ctr", "observed_ctr")


def load_data(config: ml_collections.ConfigDict) -> impressions.ClickData:
  """The impressions a config names (the embedded scenario or a labelled log)."""
  d, c = config.data, config.ctr
  if d.format == "ads_synthetic":
    events = ads_synthetic.generate(ads_synthetic.AdsConfig(**d.ads.to_dict()))
  else:
    options = events_format.check(**{**events_format.OPTIONS, **d.reader_options.to_dict()})
    columns, filters, read = events_format.split_options(options)
    read["domains"] = (c.target, *c.sources)  # rows of other domains are dropped as read
    try:
      events = events_lib.read_events(
        tables.part_files(d.path, options["pattern"]), columns, BadLines(d.on_bad_line), **read
      )
    except errors.DataError as e:
      if e.key != "reader option domains":
        raise
      raise errors.DataError(e.detail, key="ctr.target / ctr.sources") from None
    events, _ = events_lib.apply_filters(events, filters, positives_only=False)
  split = (
    impressions.TimeSplit(c.valid_days, c.test_days)
    if c.split == "time"
    else impressions.UserLastSplit(c.valid_last, c.test_last)
  )
  return impressions.click_data(events, c.target, tuple(c.sources), split)


@dataclasses.dataclass
class _Model:
  """The click model behind train/state.py's and train/step.py's `task.model` (init, loss)."""

  module: model_lib.ClickModel
  example: dict[str, np.ndarray]
  downsample: float

  def init(self, key: jax.Array) -> Any:
    return self.module.init({"params": key}, self.example, train=False)["params"]

  def loss(self, params, frozen, batch, rng, hparams):
    del frozen, hparams
    drop_key, down_key = jax.random.split(rng)
    logits, _ = self.module.apply(
      {"params": params}, inputs.model_inputs(batch), train=True, rngs={"dropout": drop_key}
    )
    label = batch["label"]
    keep = batch["row_valid"]
    if self.downsample < 1:  # each non-click kept with probability `downsample`
      keep = keep & ((label > 0) | (jax.random.uniform(down_key, label.shape) < self.downsample))
    w = keep.astype(jnp.float32)
    loss = jnp.sum(w * optax.sigmoid_binary_cross_entropy(logits, label)) / jnp.maximum(w.sum(), 1)
    return loss, {"loss": loss}


@dataclasses.dataclass
class _Task:
  model: _Model
  hparams: dict[str, float] = dataclasses.field(default_factory=dict)


def _epoch(state, data, epoch, *, task, tx, batch_size):
  """One replica's epoch: shuffled batches (the last padded), train_step over each."""
  n = data["ad"].shape[0]
  steps = step_lib.steps_per_epoch(n, batch_size)
  perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(state.rng, 0), epoch), n)
  idx = jnp.pad(perm, (0, steps * batch_size - n), constant_values=-1).reshape(steps, batch_size)

  def one(state, idx_b):
    batch = step_lib.gather_batch(data, idx_b)
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, 1), state.step)
    return step_lib.train_step(state, batch, rng, task=task, tx=tx, frozen={})

  state, metrics = jax.lax.scan(one, state, idx)
  return state, jax.tree.map(jnp.mean, metrics)


def _predict(params, data, *, module, cells):
  """One replica's logits of every row (data reshaped [num_batches, batch, ...]) and the cells'
  alignment sums over the real rows ("weight" > 0).
  """

  def batch_out(batch):
    logits, out = module.apply({"params": params}, inputs.model_inputs(batch), train=False)
    rows = (batch["weight"] > 0)[:, None]
    sums = {}
    for name in cells:
      cell = out["cells"][name]
      stats = alignment.alignment_sums(
        cell["x"], cell["x_prime"], cell["y"], cell["x_mask"] & rows, cell["y_mask"] & rows
      )
      stats["alpha_sum"], stats["alpha_count"] = cell["alpha_sum"], cell["alpha_count"]
      sums.update({keys.align_key(name, k): jnp.asarray(v, jnp.float32) for k, v in stats.items()})
    return sums, logits

  def one(carry, batch):
    sums, logits = batch_out(batch)
    return jax.tree.map(jnp.add, carry, sums), logits

  first = jax.tree.map(lambda x: x[0], data)
  zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(batch_out, first)[0])
  sums, logits = jax.lax.scan(one, zeros, data)
  return logits.reshape(-1), sums


def _batched(rows: dict[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
  """Host arrays padded to whole batches and reshaped [num_batches, batch, ...], with "weight"."""
  n = rows["ad"].shape[0]
  size = min(batch_size, n)
  total = -(-n // size) * size
  out = {}
  for k, v in inputs.model_inputs(rows).items():
    pad = np.zeros((total - n, *v.shape[1:]), v.dtype)
    out[k] = np.concatenate([v, pad]).reshape(-1, size, *v.shape[1:])
  out["weight"] = (
    np.concatenate([np.ones(n), np.zeros(total - n)]).astype(np.float32).reshape(-1, size)
  )
  return out


def split_metrics(rows: dict[str, np.ndarray], logits: np.ndarray, rate: float) -> dict[str, float]:
  """Every metric of one split and of each impression group, from one replica's logits."""
  z = ctr_metrics.correct_downsampling(logits[: rows["ad"].shape[0]], rate)
  out = {}
  groups = {"": np.ones(z.shape, bool), "cold": rows["group/cold"], "warm": ~rows["group/cold"]}
  for group, mask in groups.items():
    m = ctr_metrics.ctr_metrics(rows["user"][mask], rows["label"][mask], z[mask])
    prefix = f"{group}/" if group else ""
    out.update({f"{prefix}{k}": v for k, v in m.items()})
  return out


def _better(select: str, new: float, old: float) -> bool:
  if np.isnan(new):
    return False
  if np.isnan(old):
    return True
  return new < old if select == "logloss" else new > old


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  """Trains the config's replicas and returns one results row per replica (module docstring)."""
  fileio.local_folder(workdir, "--workdir")
  ctr_config.check_config(config)
  with run_lock.acquire(workdir):
    workdir_lib.prepare(config, workdir)
    try:
      return _train(config, workdir)
    except KeyboardInterrupt:
      last = checkpoint_lib.saved_epochs(workdir)
      where = f"the checkpoint of epoch {last[-1]} is kept" if last else "no checkpoint yet"
      raise errors.Interrupted(f"stopped {workdir}; {where}: the same command resumes") from None


def _train(config: ml_collections.ConfigDict, workdir: str) -> list[dict[str, Any]]:
  t_run = time.time()
  c, tc = config.ctr, config.train
  data = load_data(config)
  summary = data.summary()
  print(
    f"impressions of {data.target!r}: train {summary['train']['impressions']:,} "
    f"(click rate {summary['train']['ctr']:.4f}), valid {summary['valid']['impressions']:,}, test "
    f"{summary['test']['impressions']:,}; sources {list(data.sources) or 'none'}",
    flush=True,
  )
  rows = {
    name: inputs.arrays(data, np.flatnonzero(data.split == code), c.target_len, c.source_len)
    for code, name in enumerate(impressions.SPLIT_NAMES)
  }
  for name in ("valid", "test"):
    if not rows[name]["ad"].size:
      raise errors.ConfigError(f"the {name} split is empty; config key ctr.split gives it none")
  ctr_train = float(rows["train"]["label"].mean())
  module = model_lib.ClickModel(
    num_items=tuple((n, s.num_items) for n, s in data.streams.items()),
    width=config.model.width,
    blocks=config.model.blocks,
    heads=config.model.heads,
    dropout=config.model.dropout,
    mlp=tuple(config.model.mlp),
    positions=tuple(config.gca.positions),
    cell=tuple(
      (k, config.gca[k]) for k in ("heads", "gate", "act", "gate_init", "layernorm", "dropout")
    ),
    # The base rate the model sees in training: non-clicks are kept at `downsample`.
    base_logit=float(np.log(ctr_train / ((1 - ctr_train) * c.downsample))),
  )
  example = {k: v[:2] for k, v in inputs.model_inputs(rows["train"]).items()}
  task = _Task(_Model(module, example, float(c.downsample)))
  cells = tuple(model_lib.cell_name(p, s) for p in config.gca.positions for s in data.sources)
  seeds = np.asarray(config.sweep.seeds, np.int64)
  num = seeds.size
  tx = state_lib.make_optimizer()
  init = jax.jit(jax.vmap(functools.partial(state_lib.init_replica, task, tx)))
  state = init(
    seeds,
    np.full(num, tc.learning_rate, np.float32),
    np.full(num, tc.weight_decay, np.float32),
    np.full(num, config.gca.gate_init, np.float32),
  )
  train_data = jax.device_put(inputs.train_inputs(rows["train"]))
  epoch_fn = jax.jit(
    jax.vmap(
      functools.partial(_epoch, task=task, tx=tx, batch_size=tc.batch_size), in_axes=(0, None, None)
    )
  )
  # On the device once: the validation impressions are predicted after every epoch.
  eval_batches = {
    n: jax.device_put(_batched(rows[n], config.eval.batch_size)) for n in ("valid", "test")
  }
  predict = jax.jit(
    jax.vmap(functools.partial(_predict, module=module, cells=cells), in_axes=(0, None))
  )
  params_count = state_lib.count_params(jax.tree.map(lambda x: x[0], state.params))

  # --- Resume ------------------------------------------------------------------------------------
  ckpt = checkpoint_lib.Checkpointer(workdir)
  best = state.params
  selection = {
    "epoch": 0,
    "best_epoch": [0] * num,
    "best_value": [float("nan")] * num,
    "bad_epochs": [0] * num,
  }
  restored = ckpt.restore_latest(state, best)
  if restored is not None:
    state, best, selection = restored.state, restored.best, restored.meta["selection"]
    print(f"resumed {workdir} from its epoch-{restored.epoch} checkpoint", flush=True)
  writer = metric_writer.MetricWriter(workdir, selection["epoch"] or None, tc.max_epochs)
  select = config.eval.select
  print(
    f"click model: {params_count:,} parameters per replica, {num} replica(s) (seeds "
    f"{list(map(int, seeds))}), GCA cells {list(cells) or 'none'}",
    flush=True,
  )
  try:
    for epoch in range(selection["epoch"] + 1, tc.max_epochs + 1):
      if all(b >= tc.early_stop_patience for b in selection["bad_epochs"]):
        break
      t0 = time.time()
      state, train_metrics = epoch_fn(state, train_data, jnp.int32(epoch))
      logits, _ = predict(state.params, eval_batches["valid"])
      logits, train_metrics = jax.device_get((logits, train_metrics))
      numbers = []
      for r in range(num):
        valid = split_metrics(rows["valid"], np.asarray(logits[r]), c.downsample)
        value = valid[select]
        if selection["bad_epochs"][r] < tc.early_stop_patience:
          if _better(select, value, selection["best_value"][r]):
            selection["best_value"][r], selection["best_epoch"][r] = value, epoch
            selection["bad_epochs"][r] = 0
            best = jax.tree.map(lambda b, s, r=r: b.at[r].set(s[r]), best, state.params)
          else:
            selection["bad_epochs"][r] += 1
        numbers.append(
          {
            keys.train_key("loss"): float(train_metrics["loss"][r]),
            **{f"valid/{k}": v for k, v in valid.items() if k in METRICS},
          }
        )
      selection["epoch"] = epoch
      writer.write(epoch, numbers)
      if epoch % tc.checkpoint_every == 0 or epoch == tc.max_epochs:
        with errors.interrupts_held():
          ckpt.save(epoch, state, best, {"selection": selection})
      mean = np.nanmean([n[f"valid/{select}"] for n in numbers])
      writer.report(epoch, f"valid {select} {mean:.4f}", f"{time.time() - t0:.1f}s/epoch")
  finally:
    writer.close()
  # --- Test each replica at its best validation epoch ---------------------------------------------
  logits, sums = jax.device_get(predict(best, eval_batches["test"]))
  results = []
  for r in range(num):
    row: dict[str, Any] = {
      "replica": r,
      "seed": int(seeds[r]),
      "best_epoch": int(selection["best_epoch"][r]),
      "params": params_count,
      "target": data.target,
      "sources": list(data.sources),
      "gca_positions": list(config.gca.positions),
    }
    row.update(
      {f"test/{k}": v for k, v in split_metrics(rows["test"], logits[r], c.downsample).items()}
    )
    for cell in cells:
      cell_sums = {
        k.split("/")[-1]: v[r] for k, v in sums.items() if k.startswith(f"align/{cell}/")
      }
      stats = alignment.finalize_alignment(cell_sums)
      count = float(cell_sums["alpha_count"])
      stats["alpha"] = float(cell_sums["alpha_sum"]) / count if count else float("nan")
      row.update({keys.align_key(cell, k): v for k, v in stats.items()})
    row["wall_s"] = time.time() - t_run
    results.append(row)
  path = writer.results(results)
  ckpt.close()
  print(results_table(results, cells))
  print(f"results: {path} (per-epoch history, TensorBoard events and checkpoints beside it)")
  return results


def results_table(results: list[dict[str, Any]], cells: tuple[str, ...]) -> str:
  """The test metrics per replica and impression group, then each cell's alignment statistics."""
  head = f"{'rep':>3} {'seed':>5} {'best':>4} {'group':>5} {'imps':>7} {'clicks':>6}"
  head += "".join(f" {m.upper():>9}" for m in ("logloss", "auc", "gauc", "pcoc"))
  head += f" {'pCTR':>7} {'oCTR':>7}"
  lines = [
    "Test results at each replica's best validation epoch (groups: cold = no earlier click in "
    "the target domain, warm = at least one)",
    head,
  ]
  for row in results:
    for group in ("", "cold/", "warm/"):
      get = lambda k, g=group: row.get(f"test/{g}{k}", float("nan"))
      name = group.rstrip("/") or "all"
      lines.append(
        f"{row['replica']:>3} {row['seed']:>5} {row['best_epoch']:>4} {name:>5}"
        f" {int(get('impressions')):>7} {int(get('clicks')):>6}"
        + "".join(f" {get(m):>9.4f}" for m in ("logloss", "auc", "gauc", "pcoc"))
        + f" {get('predicted_ctr'):>7.4f} {get('observed_ctr'):>7.4f}"
      )
  if cells:
    lines.append("")
    lines.append("GCA cells, on the test impressions: |cos(X, X')|, |cos(X, Y)|, alpha (mean gate)")
    lines.append(f"{'rep':>3} {'cell':>16} {'|cos XX|':>9} {'|cos XY|':>9} {'alpha':>7}")
    for row in results:
      for cell in cells:
        get = lambda s, cell=cell: row.get(keys.align_key(cell, s), float("nan"))
        lines.append(
          f"{row['replica']:>3} {cell:>16} {get('mean_abs_cos'):>9.4f} "
          f"{get('xy_mean_abs_cos'):>9.4f} {get('alpha'):>7.4f}"
        )
  else:
    lines.append("(no GCA cells: gca.positions is empty)")
  return "\n".join(lines)
