"""The GCA cell: gates, masks, causality, intermediates."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign.models import gca

B, LQ, LK, D = 2, 5, 6, 8


def _inputs(seed=0):
  r = np.random.default_rng(seed)
  x = jnp.asarray(r.normal(size=(B, LQ, D)), jnp.float32)
  y = jnp.asarray(r.normal(size=(B, LK, D)), jnp.float32)
  x_time = jnp.asarray(np.tile(np.arange(1, 2 * LQ, 2), (B, 1)))  # 1 3 5 7 9
  y_time = jnp.asarray(np.tile(np.arange(0, 2 * LK, 2), (B, 1)))  # 0 2 4 6 8 10
  x_valid = jnp.ones((B, LQ), bool).at[0, 0].set(False)
  y_valid = jnp.ones((B, LK), bool).at[1, :2].set(False)
  return x, y, x_time, y_time, x_valid, y_valid


def _apply(cell, args, params=None):
  if params is None:
    params = cell.init(jax.random.key(0), *args, train=False)
  return cell.apply(params, *args, train=False), params


def test_tanh_zero_init_is_identity_and_sigmoid_is_half():
  args = _inputs()
  (out, aux), _ = _apply(gca.GatedCrossAttention(D, heads=2, act="tanh"), args)
  np.testing.assert_allclose(out, args[0], atol=1e-6)  # the identity, padding included
  assert float(aux["alpha"]) == 0.0
  (out, aux), _ = _apply(gca.GatedCrossAttention(D, act="sigmoid"), args)
  valid = args[4][..., None]
  np.testing.assert_allclose(
    out, np.where(valid, aux["x"] + 0.5 * aux["x_prime"], args[0]), atol=1e-6
  )
  assert not np.all(args[0][~args[4]] == 0)  # the padding queries here are not zero vectors
  assert abs(float(aux["alpha"]) - 0.5) < 1e-6


def test_causal_cross_mask_blocks_the_future():
  x, y, xt, yt, xv, yv = _inputs()
  cell = gca.GatedCrossAttention(D, heads=2, causal=True)
  (out, aux), params = _apply(cell, (x, y, xt, yt, xv, yv))
  # Query 1 (time 3) may see keys at time 0, 2; perturb keys at time >= 4.
  y2 = y.at[:, 2:].add(10.0)
  (out2, _), _ = _apply(cell, (x, y2, xt, yt, xv, yv), params)
  np.testing.assert_allclose(out[:, :2], out2[:, :2], atol=1e-5)
  assert not np.allclose(out[:, 2:], out2[:, 2:])
  # Non-causal: the same perturbation reaches every query.
  cell_nc = gca.GatedCrossAttention(D, heads=2, causal=False)
  (o1, _), p = _apply(cell_nc, (x, y, xt, yt, xv, yv))
  (o2, _), _ = _apply(cell_nc, (x, y2, xt, yt, xv, yv), p)
  assert not np.allclose(o1[:, :2], o2[:, :2])


def test_queries_without_visible_keys_get_no_update():
  x, y, xt, yt, xv, yv = _inputs()
  # User 1 has keys 0, 1 padded; its first query (time 1) sees only key time 0, which is padding.
  (out, aux), _ = _apply(gca.GatedCrossAttention(D, causal=True), (x, y, xt, yt, xv, yv))
  np.testing.assert_allclose(aux["x_prime"][1, 0], 0.0)
  np.testing.assert_allclose(out[1, 0], x[1, 0], atol=1e-6)
  assert not bool(aux["x_mask"][1, 0]) and not bool(aux["x_mask"][0, 0])  # padding query too
  assert bool(aux["x_mask"][1, 2])


@pytest.mark.parametrize("gate,ln", [("scalar", "post"), ("vector", "pre"), ("input", "none")])
def test_gate_shapes_and_layernorm(gate, ln):
  args = _inputs()
  cell = gca.GatedCrossAttention(D, gate=gate, layernorm=ln, gate_init=0.3, act="tanh")
  (out, aux), params = _apply(cell, args)
  assert out.shape == (B, LQ, D)
  g = params["params"][gca.GATE_PARAM]
  assert g.shape == {"scalar": (), "vector": (D,), "input": (D,)}[gate]
  np.testing.assert_allclose(g, 0.3)
  if gate != "input":
    np.testing.assert_allclose(float(aux["alpha"]), np.tanh(0.3), rtol=1e-6)
  filled = gca.set_gate_init(params, -1.5)
  np.testing.assert_allclose(filled["params"][gca.GATE_PARAM], -1.5)
  # Other params untouched.
  np.testing.assert_array_equal(
    filled["params"]["query"]["kernel"], params["params"]["query"]["kernel"]
  )


def test_bad_heads_named():
  with pytest.raises(ValueError, match="gca.heads"):
    _apply(gca.GatedCrossAttention(D, heads=3), _inputs())
