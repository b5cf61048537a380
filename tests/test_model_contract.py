"""The contract every registered model keeps with the generic trainer (orthoalign.models.task.Task).

Parameterised over `orthoalign.models.names()`: a model added to the registry without an entry in
CONFIGS fails here. Tiny shapes; each model's task is built once per module.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from configs import tiny_abxi
from orthoalign import models
from orthoalign.data import load as data_load
from orthoalign.models import param_count
from orthoalign.train import loop
from orthoalign.train import step as step_lib


def _with_gca(config):
  config.gca.positions = (0, 1)
  config.train.num_devices = 1
  return config


# Per model: a tiny config with two GCA positions (so the cells take part in every check).
CONFIGS = {
    "llm4cdsr": lambda: _with_gca(tiny.get_config()),
    "abxi": lambda: _with_gca(tiny_abxi.get_config()),
}


# Trainable tensors whose gradient is zero at initialisation by design (see the gradient test).
ZERO_AT_INIT = {"abxi": tuple(f"['{m}']['mat_A']" for m in ("dlora_a", "dlora_b", "dlora_x",
                                                              "ilora_a", "ilora_b"))}


def test_every_registered_model_has_a_contract_config():
  assert set(CONFIGS) == set(models.names())


@functools.lru_cache(maxsize=None)
def _task(name):
  config = CONFIGS[name]()
  ds = data_load.load(config.data)
  return config, models.get_builder(name)(ds, config)


def _batch(task, rows=8):
  batch = {k: jnp.asarray(v[:rows]) for k, v in task.train_data.items()}
  batch["row_valid"] = jnp.ones(rows, bool)
  return batch


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_init_is_finite_and_counted(name):
  config, task = _task(name)
  params = task.init_params(jax.random.key(0))
  leaves = jax.tree.leaves(params)
  assert leaves and all(bool(jnp.all(jnp.isfinite(x))) for x in leaves)
  trainable = sum(x.size for x in leaves)
  assert param_count.count(config) == (trainable + sum(np.size(x) for x in jax.tree.leaves(task.frozen)),
                                       trainable)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_finite_loss_and_a_gradient_for_every_trainable_leaf(name):
  _, task = _task(name)
  params = task.init_params(jax.random.key(0))
  (loss, metrics), grads = jax.value_and_grad(task.loss_fn, has_aux=True)(
      params, task.frozen, _batch(task, 16), jax.random.key(1))
  assert np.isfinite(float(loss)) and float(metrics["loss"]) == pytest.approx(float(loss))
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  assert all(bool(jnp.all(jnp.isfinite(g))) for _, g in flat)
  # Every trainable tensor is reached by the loss (a leaf with an all-zero gradient is dead weight
  # or a wiring mistake). Exempt: LoRA's A matrices, whose gradient is B^T(...) with B initialised
  # to zero (ABXI's dLoRA/iLoRA, as LoRA does): zero at initialisation only.
  dead = [jax.tree_util.keystr(p) for p, g in flat if not bool(jnp.any(g != 0))]
  dead = [d for d in dead if d not in ZERO_AT_INIT.get(name, ())]
  assert not dead, dead


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_hparams_enter_the_loss(name):
  """Every replica hyperparameter the model declares changes the loss (it is not ignored)."""
  _, task = _task(name)
  params = task.init_params(jax.random.key(0))
  batch, rng = _batch(task, 16), jax.random.key(1)
  base = float(task.loss_fn(params, task.frozen, batch, rng)[0])
  assert float(task.loss_fn(params, task.frozen, batch, rng, dict(task.hparams))[0]) == pytest.approx(base)
  for key, value in task.hparams.items():
    changed = float(task.loss_fn(params, task.frozen, batch, rng, {key: value * 2 + 0.5})[0])
    assert changed != pytest.approx(base, rel=1e-6), key


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_evaluation_outputs(name):
  _, task = _task(name)
  params = task.init_params(jax.random.key(0))
  split = task.eval_data["valid"]
  b = 8
  batch = {k: jnp.asarray(v[:b]) for k, v in split.items()}
  out = task.eval_fn(params, task.frozen, task.tables_fn(params, task.frozen), batch)
  n_neg = split["cand"].shape[1] - 1 if "cand" in split else out.sampled_scores.shape[1] - 1
  assert out.sampled_scores.shape == (b, 1 + n_neg)
  assert out.full_scores.shape == (b, task.num_items_a + task.num_items_b + 1)
  assert tuple(sorted(out.cells)) == tuple(sorted(task.cell_names))
  for cell in out.cells.values():
    x, x_prime, y = cell["x"], cell["x_prime"], cell["y"]
    assert x.shape == x_prime.shape and x.shape[0] == b and y.shape[0] == b and y.shape[-1] == x.shape[-1]
    assert cell["x_mask"].shape == x.shape[:2] and cell["y_mask"].shape == y.shape[:2]
  for key in ("domain", "target", "hist"):
    assert key in split


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_one_trace_per_epoch_program(name, monkeypatch):
  """The epoch program traces the model's loss once and is not retraced from one epoch to the next."""
  traces = []
  builder = models.get_builder(name)

  def counting_builder(ds, config):
    task = builder(ds, config)

    def loss_fn(*args, **kwargs):
      traces.append(1)
      return task.loss_fn(*args, **kwargs)

    return dataclasses.replace(task, loss_fn=loss_fn)

  monkeypatch.setattr(models, "get_builder", lambda n: counting_builder)
  run = loop.setup(CONFIGS[name]())
  state = run.state
  for epoch in (1, 2, 3):
    state, metrics = run.epoch_fn(state, run.train_data, run.frozen, run.epoch_arg(epoch))
    assert np.all(np.isfinite(jax.device_get(metrics["loss"])))
  assert len(traces) == 1
