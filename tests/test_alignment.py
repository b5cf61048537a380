"""Tests for orthoalign.metrics.alignment."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign.metrics import alignment

_SUM_KEYS = {"cos_sum", "abs_cos_sum", "count", "xy_cos_sum", "xy_abs_cos_sum", "xy_count"}
_FINAL_KEYS = {
  "mean_cos",
  "abs_mean_cos",
  "mean_abs_cos",
  "xy_mean_cos",
  "xy_abs_mean_cos",
  "xy_mean_abs_cos",
}


def _run(x, x_prime, y, q_mask, kv_mask):
  sums = alignment.alignment_sums(
    jnp.asarray(x), jnp.asarray(x_prime), jnp.asarray(y), jnp.asarray(q_mask), jnp.asarray(kv_mask)
  )
  assert set(sums) == _SUM_KEYS
  return sums, alignment.finalize_alignment(sums)


def ref_sums(x, x_prime, y, q_mask, kv_mask) -> dict[str, float]:
  """Explicit loops over users and tokens, float64."""
  x, x_prime, y = (np.asarray(a, np.float64) for a in (x, x_prime, y))
  out = dict.fromkeys(_SUM_KEYS, 0.0)

  def cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else float(a @ b / (na * nb))

  for u in range(x.shape[0]):
    keys = [y[u, j] for j in range(y.shape[1]) if kv_mask[u, j]]
    ybar = np.mean(keys, axis=0) if keys else None
    for t in range(x.shape[1]):
      if not q_mask[u, t]:
        continue
      c = cos(x[u, t], x_prime[u, t])
      out["cos_sum"] += c
      out["abs_cos_sum"] += abs(c)
      out["count"] += 1
      if ybar is not None:
        c = cos(x[u, t], ybar)
        out["xy_cos_sum"] += c
        out["xy_abs_cos_sum"] += abs(c)
        out["xy_count"] += 1
  return out


def _random_batch(rng, b=6, lq=7, lk=5, d=8):
  x = rng.normal(size=(b, lq, d)).astype(np.float32)
  x_prime = rng.normal(size=(b, lq, d)).astype(np.float32)
  y = rng.normal(size=(b, lk, d)).astype(np.float32)
  q_mask = rng.random((b, lq)) < 0.7
  kv_mask = rng.random((b, lk)) < 0.6
  kv_mask[0] = False  # A user without any valid key token.
  q_mask[1] = False  # A user without any valid query token.
  return x, x_prime, y, q_mask, kv_mask


# ----------------------------------------------------------------------------
# cosine
# ----------------------------------------------------------------------------


def test_cosine_basic_and_zero_safe():
  a = jnp.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
  b = jnp.array([[0.0, 3.0], [2.0, 2.0], [1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])
  c = alignment.cosine(a, b)
  assert c.shape == (5,)
  np.testing.assert_allclose(c, [0.0, 1.0, 0.0, -1.0, 0.0], atol=1e-6)
  assert np.all(np.isfinite(c))
  # Gradients at a zero vector are finite too (the clamp sits before sqrt).
  g = jax.grad(lambda v: alignment.cosine(v, b[2]))(jnp.zeros(2))
  assert np.all(np.isfinite(g))


def test_cosine_bounded_and_broadcasts():
  rng = np.random.default_rng(0)
  a = jnp.asarray(rng.normal(size=(4, 3, 16)) * 1e3, jnp.float32)
  c = alignment.cosine(a, a[:, :1])  # Broadcasts [4, 1, 16] against [4, 3].
  assert c.shape == (4, 3)
  assert np.all(np.abs(np.asarray(c)) <= 1.0)
  np.testing.assert_allclose(c[:, 0], 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------
# alignment_sums / finalize_alignment
# ----------------------------------------------------------------------------


def _basis_batch(x_prime_fn):
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 4, 6)).astype(np.float32)
  y = rng.normal(size=(2, 3, 6)).astype(np.float32)
  ones_q = np.ones((2, 4), bool)
  ones_k = np.ones((2, 3), bool)
  return x, x_prime_fn(x), y, ones_q, ones_k


def test_orthogonal_gives_zero():
  def orthogonal(x):
    # Gram-Schmidt a random vector against each x_t.
    r = np.random.default_rng(2).normal(size=x.shape).astype(np.float32)
    proj = (r * x).sum(-1, keepdims=True) / (x * x).sum(-1, keepdims=True)
    return r - proj * x

  sums, fin = _run(*_basis_batch(orthogonal))
  assert int(sums["count"]) == 8
  assert set(fin) == _FINAL_KEYS
  assert fin["mean_cos"] == pytest.approx(0.0, abs=1e-5)
  assert fin["abs_mean_cos"] == pytest.approx(0.0, abs=1e-5)
  assert fin["mean_abs_cos"] == pytest.approx(0.0, abs=1e-5)


def test_parallel_gives_one():
  _, fin = _run(*_basis_batch(lambda x: 3.0 * x))
  for k in ("mean_cos", "abs_mean_cos", "mean_abs_cos"):
    assert fin[k] == pytest.approx(1.0, abs=1e-6), k


def test_antiparallel_gives_minus_one():
  _, fin = _run(*_basis_batch(lambda x: -0.5 * x))
  assert fin["mean_cos"] == pytest.approx(-1.0, abs=1e-6)
  assert fin["abs_mean_cos"] == pytest.approx(1.0, abs=1e-6)
  assert fin["mean_abs_cos"] == pytest.approx(1.0, abs=1e-6)


def test_signed_mean_differs_from_mean_of_abs():
  # Half parallel, half antiparallel: the signed mean cancels, |c| does not.
  sign = np.array([1.0, -1.0, 1.0, -1.0], np.float32)[None, :, None]
  _, fin = _run(*_basis_batch(lambda x: sign * x))
  assert fin["mean_cos"] == pytest.approx(0.0, abs=1e-6)
  assert fin["abs_mean_cos"] == pytest.approx(0.0, abs=1e-6)
  assert fin["mean_abs_cos"] == pytest.approx(1.0, abs=1e-6)


def test_masks_exclude_padding():
  x, x_prime, y, q_mask, kv_mask = _basis_batch(lambda x: 2.0 * x)
  # Padded query tokens are antiparallel garbage (and NaN): must not count.
  x_prime[:, 2:] = -x[:, 2:]
  x[:, 3] = np.nan
  q_mask[:, 2:] = False
  # Padded key tokens are NaN: must not reach ybar.
  y[:, 2] = np.nan
  kv_mask[:, 2] = False
  sums, fin = _run(x, x_prime, y, q_mask, kv_mask)
  assert int(sums["count"]) == 4
  assert int(sums["xy_count"]) == 4
  for v in fin.values():
    assert math.isfinite(v)
  assert fin["mean_cos"] == pytest.approx(1.0, abs=1e-6)


def test_zero_vectors_do_not_nan():
  b, lq, lk, d = 2, 3, 2, 4
  zeros_q = np.zeros((b, lq, d), np.float32)
  zeros_k = np.zeros((b, lk, d), np.float32)
  ones_q, ones_k = np.ones((b, lq), bool), np.ones((b, lk), bool)
  ones_x, ones_y = np.ones_like(zeros_q), np.ones_like(zeros_k)
  for x, x_prime, y in (
    (zeros_q, zeros_q, zeros_k),
    (ones_x, zeros_q, zeros_k),
    (zeros_q, ones_x, ones_y),
  ):
    sums, fin = _run(x, x_prime, y, ones_q, ones_k)
    for k, v in sums.items():
      assert np.isfinite(np.asarray(v)), k
    assert fin["mean_cos"] == 0.0 and fin["xy_mean_cos"] == 0.0
    assert int(sums["count"]) == b * lq


def test_pooled_y_by_hand():
  # User 0: ybar = mean of its two valid keys = [0.5, 0.5]; the third key is
  # padding and would swing ybar to the diagonal's far side if included.
  # User 1: no valid key -> its tokens count for c but not for c_y.
  x = np.array([[[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.0], [0.0, 1.0]]], np.float32)
  x_prime = np.array([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]], np.float32)
  y = np.array(
    [[[1.0, 0.0], [0.0, 1.0], [-100.0, 0.0]], [[5.0, 5.0], [5.0, 5.0], [5.0, 5.0]]], np.float32
  )
  q_mask = np.array([[True, True], [True, False]])
  kv_mask = np.array([[True, True, False], [False, False, False]])
  sums, fin = _run(x, x_prime, y, q_mask, kv_mask)

  # c: user 0 -> 0, 1; user 1 -> 1 (second token masked).
  np.testing.assert_allclose(sums["cos_sum"], 2.0, atol=1e-6)
  assert int(sums["count"]) == 3
  # c_y: user 0 only, both tokens at 45 degrees to [0.5, 0.5].
  np.testing.assert_allclose(sums["xy_cos_sum"], 2 / math.sqrt(2), rtol=1e-6)
  np.testing.assert_allclose(sums["xy_abs_cos_sum"], 2 / math.sqrt(2), rtol=1e-6)
  assert int(sums["xy_count"]) == 2
  assert fin["mean_cos"] == pytest.approx(2 / 3, rel=1e-6)
  assert fin["xy_mean_cos"] == pytest.approx(1 / math.sqrt(2), rel=1e-6)


def test_matches_numpy_reference():
  rng = np.random.default_rng(3)
  batch = _random_batch(rng)
  sums, fin = _run(*batch)
  want = ref_sums(*batch)
  for k, v in want.items():
    np.testing.assert_allclose(sums[k], v, rtol=1e-5, atol=1e-5, err_msg=k)
  assert sums["count"].dtype == jnp.int32
  assert sums["cos_sum"].dtype == jnp.float32
  mean = want["cos_sum"] / want["count"]
  xy_mean = want["xy_cos_sum"] / want["xy_count"]
  for k, v in {
    "mean_cos": mean,
    "abs_mean_cos": abs(mean),
    "mean_abs_cos": want["abs_cos_sum"] / want["count"],
    "xy_mean_cos": xy_mean,
    "xy_abs_mean_cos": abs(xy_mean),
    "xy_mean_abs_cos": want["xy_abs_cos_sum"] / want["xy_count"],
  }.items():
    assert isinstance(fin[k], float)
    assert fin[k] == pytest.approx(v, rel=1e-5, abs=1e-6), k


def test_additive_over_batch_halves():
  rng = np.random.default_rng(4)
  batch = _random_batch(rng, b=8)
  whole, whole_fin = _run(*batch)
  first, _ = _run(*(a[:3] for a in batch))
  second, _ = _run(*(a[3:] for a in batch))
  added = {k: first[k] + second[k] for k in whole}
  for k in whole:
    np.testing.assert_allclose(added[k], whole[k], rtol=1e-5, atol=1e-6, err_msg=k)
  added_fin = alignment.finalize_alignment(added)
  for k in whole_fin:
    assert added_fin[k] == pytest.approx(whole_fin[k], rel=1e-5), k
  # Stacked (per-device) sums are summed entirely by finalize.
  stacked = {k: np.stack([first[k], second[k]]) for k in whole}
  stacked_fin = alignment.finalize_alignment(stacked)
  for k in whole_fin:
    assert stacked_fin[k] == pytest.approx(whole_fin[k], rel=1e-5), k


def test_finalize_empty_is_nan():
  rng = np.random.default_rng(5)
  x, x_prime, y, q_mask, kv_mask = _random_batch(rng)
  _, fin = _run(x, x_prime, y, np.zeros_like(q_mask), kv_mask)
  assert set(fin) == _FINAL_KEYS
  for v in fin.values():
    assert math.isnan(v)
  # Only the Y side empty.
  _, fin = _run(x, x_prime, y, q_mask, np.zeros_like(kv_mask))
  assert math.isfinite(fin["mean_cos"])
  for k in ("xy_mean_cos", "xy_abs_mean_cos", "xy_mean_abs_cos"):
    assert math.isnan(fin[k]), k


def test_jit_vmap_and_bf16():
  rng = np.random.default_rng(6)
  batch = tuple(jnp.asarray(a) for a in _random_batch(rng, b=6))
  eager = alignment.alignment_sums(*batch)
  jitted = jax.jit(alignment.alignment_sums)(*batch)
  for k in eager:
    np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # vmap over groups of users, summed == one call on everything.
  grouped = tuple(a.reshape((2, 3) + a.shape[1:]) for a in batch)
  per_group = jax.vmap(alignment.alignment_sums)(*grouped)
  for k in eager:
    assert per_group[k].shape == (2,)
    np.testing.assert_allclose(per_group[k].sum(), eager[k], rtol=1e-5, atol=1e-6, err_msg=k)
  # bf16 activations: sums still come back float32 and close to float32 ones.
  x, x_prime, y, q_mask, kv_mask = batch
  low = alignment.alignment_sums(
    x.astype(jnp.bfloat16), x_prime.astype(jnp.bfloat16), y.astype(jnp.bfloat16), q_mask, kv_mask
  )
  assert low["cos_sum"].dtype == jnp.float32
  np.testing.assert_allclose(low["abs_cos_sum"], eager["abs_cos_sum"], rtol=2e-2)
