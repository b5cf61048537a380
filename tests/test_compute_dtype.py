"""Mixed precision (train.compute_dtype) and LLM4CDSR's adapt-the-table-then-gather path."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.config import validation
from orthoalign.models import llm4cdsr
from orthoalign.train import build
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib
from tests.conftest import tiny_config


def _one_step(run, compute_dtype):
  state = jax.tree.map(lambda x: x[0], run.state)
  batch = step_lib.gather_batch(run.train_data, jnp.arange(32))
  step = jax.jit(
    functools.partial(
      step_lib.train_step, task=run.task, tx=state_lib.make_optimizer(), compute_dtype=compute_dtype
    )
  )
  return state, step(state, batch, state.rng, frozen=run.frozen)


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state():
  run = build.setup(tiny_config())
  state, (new32, m32) = _one_step(run, "float32")
  _, (new16, m16) = _one_step(run, "bfloat16")
  for tree in (new16.params, new16.opt_state):
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32
  assert m16["loss"].dtype == jnp.float32 and np.isfinite(m16["loss"])
  # Same step up to bfloat16 rounding (8 bits of mantissa), but not bit-identical: the cast is real.
  assert float(m16["loss"]) == pytest.approx(float(m32["loss"]), rel=0.05)
  assert float(m16["loss"]) != float(m32["loss"])
  moved = jax.tree.leaves(
    jax.tree.map(
      lambda a, b, c: float(jnp.max(jnp.abs((a - c) - (b - c)))),
      new16.params,
      new32.params,
      state.params,
    )
  )
  assert max(moved) > 0


@pytest.mark.slow
def test_bfloat16_trains_end_to_end():
  cfg = tiny_config(**{"train.compute_dtype": "bfloat16", "train.max_epochs": 2})
  run = build.setup(cfg)
  state, metrics = run.epoch_fn(run.state, run.train_data, run.frozen, run.epoch_arg(1))
  assert np.all(np.isfinite(jax.device_get(metrics["loss"])))


def test_unknown_compute_dtype_is_refused():
  with pytest.raises(errors.ConfigError, match="train.compute_dtype.*float16"):
    validation.validate(tiny_config(**{"train.compute_dtype": "float16"}))


def test_mixed_items_table_path_equals_row_path():
  """More ids than catalogue rows adapts the table once and gathers; fewer adapts the rows. Both
  give the same vectors and the same adapter gradients.
  """
  run = build.setup(tiny_config())
  params = jax.tree.map(lambda x: x[0], run.state.params)
  module = llm4cdsr.module.LLM4CDSR
  n_rows = run.frozen["frozen"]["global_table"].shape[0]
  ids = jnp.asarray(np.random.default_rng(0).integers(0, n_rows, size=(4, n_rows)))  # > rows

  def total(p, ids):
    out = run.task.model.module.apply({"params": p, **run.frozen}, ids, method=module.mix_items)
    return jnp.sum(jnp.sin(out)), out

  (_, big), g_big = jax.value_and_grad(total, has_aux=True)(params, ids)
  # The same ids asked for in pieces smaller than the table take the row path.
  pieces = [jax.value_and_grad(total, has_aux=True)(params, ids[i]) for i in range(4)]
  small = jnp.stack([out for (_, out), _ in pieces])
  g_small = jax.tree.map(lambda *g: sum(g), *[g for _, g in pieces])
  np.testing.assert_allclose(big, small, rtol=1e-5, atol=1e-6)
  for a, b in zip(jax.tree.leaves(g_big), jax.tree.leaves(g_small)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
