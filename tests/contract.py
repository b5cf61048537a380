"""The contract every baseline keeps with the generic trainer, as checks any test can run.

tests/test_model_contract.py runs them for every registered baseline, tests/test_toy_baseline.py
for a baseline registered from inside its test file. Each check takes the model's name and a
tiny config (with GCA cells, so that the cells take part).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign import models
from orthoalign.config import flags
from orthoalign.datasets import load as data_load
from orthoalign.models import param_count
from orthoalign.train import build
from orthoalign.train import task as task_lib

# Each registered baseline's tiny config (seconds to train): the contract suite, the entry-point
# smoke tests and the parameter-path record run every model through it.
TINY = {
  "abxi": "configs/tiny_abxi.py",
  "c2dsr": "configs/tiny_c2dsr.py",
  "cdsrnp": "configs/tiny_cdsrnp.py",
  "llm4cdsr": "configs/tiny.py",
  "merit": "configs/tiny_merit.py",
  "sasrec": "configs/tiny_sasrec.py",
}


def tiny_config(name):
  """The tiny config of a registered baseline, on one device."""
  config = flags.load_file(TINY[name])
  config.train.num_devices = 1
  return config


def bind(config):
  return task_lib.bind(data_load.load(config.data), config)


def batch_of(task, rows=8):
  batch = {k: jnp.asarray(v[:rows]) for k, v in task.train_data.items()}
  batch["row_valid"] = jnp.ones(rows, bool)
  return batch


def building_prints_nothing(config, capsys):
  """What a model was built from goes into model.notes, which the trainer prints once."""
  task = bind(config)
  assert capsys.readouterr().out == ""
  assert all(isinstance(n, str) and n for n in task.model.notes)


def init_is_finite_and_counted(config, task):
  params = task.model.init(jax.random.key(0))
  leaves = jax.tree.leaves(params)
  assert leaves and all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
  trainable = sum(x.size for x in leaves)
  assert param_count.count(config) == (
    trainable + sum(np.size(x) for x in jax.tree.leaves(task.model.frozen)),
    trainable,
  )


def finite_loss_and_a_gradient_for_every_trainable_leaf(task, zero_at_init=()):
  """Every trainable tensor is reached by the loss (a leaf with an all-zero gradient is dead
  weight or a wiring mistake), except `zero_at_init` (e.g. LoRA's A matrices, whose gradient is
  B^T(...) with B initialised to zero: zero at initialisation only).
  """
  params = task.model.init(jax.random.key(0))
  (loss, metrics), grads = jax.value_and_grad(task.model.loss, has_aux=True)(
    params, task.model.frozen, batch_of(task, 16), jax.random.key(1)
  )
  assert np.isfinite(float(loss)) and float(metrics["loss"]) == pytest.approx(float(loss))
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  assert all(bool(jnp.all(jnp.isfinite(g))) for _, g in flat)
  dead = [jax.tree_util.keystr(p) for p, g in flat if not bool(jnp.any(g != 0))]
  dead = [d for d in dead if d not in zero_at_init]
  assert not dead, dead


def hparams_enter_the_loss(task):
  """Every replica hyperparameter the model declares changes the loss (it is not ignored)."""
  params = task.model.init(jax.random.key(0))
  batch, rng, frozen = batch_of(task, 16), jax.random.key(1), task.model.frozen
  base = float(task.model.loss(params, frozen, batch, rng)[0])
  assert float(task.model.loss(params, frozen, batch, rng, dict(task.hparams))[0]) == (
    pytest.approx(base)
  )
  for key, value in task.hparams.items():
    changed = float(task.model.loss(params, frozen, batch, rng, {key: value * 2 + 0.5})[0])
    assert changed != pytest.approx(base, rel=1e-6), key


def evaluation_outputs(task):
  params = task.model.init(jax.random.key(0))
  split = task.eval_data["valid"]
  b = 8
  batch = {k: jnp.asarray(v[:b]) for k, v in split.items()}
  frozen = task.model.frozen
  out = task.model.score(params, frozen, task.model.tables(params, frozen), batch)
  assert out.sampled_scores.shape == (b, split["cand"].shape[1])
  assert out.full_scores.shape == (b, task.num_items_a + task.num_items_b + 1)
  assert tuple(sorted(out.cells)) == tuple(sorted(task.cell_names))
  for cell in out.cells.values():
    x, x_prime, y = cell["x"], cell["x_prime"], cell["y"]
    assert x.shape == x_prime.shape and x.shape[0] == b == y.shape[0]
    assert y.shape[-1] == x.shape[-1]
    assert cell["x_mask"].shape == x.shape[:2] and cell["y_mask"].shape == y.shape[:2]
  for key in ("domain", "target", "hist"):
    assert key in split


def one_trace_per_epoch_program(name, config, monkeypatch):
  """The epoch program traces the model's loss once, not again from one epoch to the next."""
  traces = []
  cls = models.baseline_class(name)

  class Counting(cls):
    def loss(self, *args, **kwargs):
      traces.append(1)
      return super().loss(*args, **kwargs)

  monkeypatch.setattr(models, "baseline_class", lambda n: Counting)
  run = build.setup(config)
  state = run.state
  for epoch in (1, 2, 3):
    state, metrics = run.epoch_fn(state, run.train_data, run.frozen, run.epoch_arg(epoch))
    assert np.all(np.isfinite(jax.device_get(metrics["loss"])))
  assert len(traces) == 1


def _times(ids, time):
  """Merged-sequence time per token; without a time array, the index among the valid tokens."""
  if time is not None:
    return np.asarray(time)
  valid = np.asarray(ids) > 0
  return np.where(valid, np.cumsum(valid, axis=1) - 1, -1)


def _other_item(ids, kind, na, nb):
  """A different item of the same domain for every non-padding id (padding stays 0)."""
  ids = np.asarray(ids)
  if kind == "a":
    new = ids % na + 1
  elif kind == "b":
    new = ids % nb + 1
  else:
    new = np.where(ids <= na, ids % na + 1, na + (ids - na) % nb + 1)
  return np.where(ids > 0, new, 0).astype(ids.dtype)


def future_changed(config, streams):
  """(max |change| of outputs before the cut, max |change| after it), items at time >= cut changed.

  Args:
    config: a config whose model is causal (e.g. dropout 0 and any causality flag on).
    streams: {module output key: [(input id key, time key or None = index among valid tokens, id
      kind: "global" or the domain "a"/"b" of local ids)]}; the output's tokens follow the first
      input.
  """
  task = bind(config)
  params = task.model.init(jax.random.key(0))
  batch = {k: np.asarray(v[:16]) for k, v in task.train_data.items()}
  batch["row_valid"] = np.ones(16, bool)
  first = {key: specs[0] for key, specs in streams.items()}
  # Cut each row at half its (first stream's) valid length.
  ids0 = next(iter(first.values()))[0]
  cut = np.asarray([max(1, int((np.asarray(batch[ids0][r]) > 0).sum()) // 2) for r in range(16)])
  changed = dict(batch)
  for specs in streams.values():
    for ids, time_key, kind in specs:
      future = _times(batch[ids], batch.get(time_key) if time_key else None) >= cut[:, None]
      changed[ids] = np.where(
        future, _other_item(batch[ids], kind, task.num_items_a, task.num_items_b), batch[ids]
      )
  apply = lambda b: task.model.module.apply(
    {"params": params, **task.model.frozen},
    jax.tree.map(jnp.asarray, b),
    train=True,
    rngs={"dropout": jax.random.key(2)},
  )
  before, after = apply(batch), apply(changed)
  past_diff = future_diff = 0.0
  for key, (ids, time_key, _) in first.items():
    t = _times(batch[ids], batch.get(time_key) if time_key else None)
    diff = np.abs(np.asarray(before[key]) - np.asarray(after[key])).max(-1)
    past = (t >= 0) & (t < cut[:, None])
    past_diff = max(past_diff, float(diff[past].max()))
    future_diff = max(future_diff, float(diff[t >= cut[:, None]].max()))
  return past_diff, future_diff


def no_future_leakage(config, streams):
  """Changing the items at merged time >= t leaves every token state before t unchanged (and does
  change the later ones, so the probe reaches the model).
  """
  past, future = future_changed(config, streams)
  assert past < 1e-6 and future > 1e-3, (past, future)


def replica_equals_standalone_run(make_config):
  """Replica 1 of a two-replica program (seeds 0, 1) trains as a standalone seed-1 run.

  vmap batches the float32 matmuls differently, and Adam turns a last-bit difference of a gradient
  near zero into up to one step of size lr, so single weights may differ by ~lr: compared are the
  epoch losses (rtol 1e-4), the parameter tree as a whole (relative L2 distance < 1e-3; replica 0,
  another seed, is at ~1) and the validation metric sums (rtol = atol = 1e-3).
  """

  def trained(seeds):
    config = make_config()
    config.sweep.seeds = seeds
    run = build.setup(config)
    state, losses = run.state, []
    for epoch in (1, 2):
      state, metrics = run.epoch_fn(state, run.train_data, run.frozen, run.epoch_arg(epoch))
      losses.append(metrics["loss"])
    sums = run.eval_fn(state.params, run.frozen, run.eval_data["valid"])
    return jax.device_get((state.params, np.stack(losses, 1), sums))

  def distance(a, b):
    sq = lambda t: sum(float(np.sum(np.square(x))) for x in jax.tree.leaves(t))
    return (sq(jax.tree.map(np.subtract, a, b)) / sq(a)) ** 0.5

  (pair, pair_loss, pair_sums), (alone, alone_loss, alone_sums) = trained((0, 1)), trained((1,))
  replica = lambda tree, r: jax.tree.map(lambda x: x[r], tree)
  np.testing.assert_allclose(alone_loss[0], pair_loss[1], rtol=1e-4)
  assert distance(replica(alone, 0), replica(pair, 1)) < 1e-3
  assert distance(replica(alone, 0), replica(pair, 0)) > 0.1
  for key in alone_sums:
    np.testing.assert_allclose(
      np.asarray(alone_sums[key])[0],
      np.asarray(pair_sums[key])[1],
      rtol=1e-3,
      atol=1e-3,
      err_msg=key,
    )
