"""Orthogonal-alignment statistics of a gated cross-attention (GCA) cell.

A GCA cell computes X' = CrossAttn(q=X, k=v=Y) and out = X + alpha * X'. These
statistics measure how orthogonal the raw cross-attention output X' is to its
input X (and, for reference, how aligned X is with the pooled other stream Y).

The device side returns additive sums so the caller can add them over eval
batches; means, and the absolute value of the signed mean, are taken only on
the host in `finalize_alignment` (|mean| is not additive).
"""

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# Prefix of the statistics of X' before an intervention (models/gca.py), beside those of the X'
# added.
PRE = "pre_"


def _as_float(x: jax.Array) -> jax.Array:
  """Upcasts to at least float32 so bf16 activations do not lose the sums."""
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def cosine(a: jax.Array, b: jax.Array, eps: float = 1e-8) -> jax.Array:
  """Cosine similarity along the last axis.

  Each norm is clamped below at `eps`, so a zero vector gives 0, not NaN (and
  the clamp sits before the sqrt, so gradients stay finite too).

  Args:
    a: [..., d].
    b: [..., d], broadcastable against `a`.
    eps: lower bound on each vector norm.

  Returns:
    [...] cosine, clipped to [-1, 1] against rounding.
  """
  a = _as_float(a)
  b = _as_float(b)
  eps_sq = jnp.asarray(eps, a.dtype) ** 2
  norm_a = jnp.sqrt(jnp.maximum(jnp.sum(a * a, axis=-1), eps_sq))
  norm_b = jnp.sqrt(jnp.maximum(jnp.sum(b * b, axis=-1), eps_sq))
  dot = jnp.sum(a * b, axis=-1)
  return jnp.clip(dot / (norm_a * norm_b), -1.0, 1.0)


def alignment_sums(
  x: jax.Array,
  x_prime: jax.Array,
  y: jax.Array,
  q_mask: jax.Array,
  kv_mask: jax.Array,
) -> dict[str, jax.Array]:
  """Additive sums of per-token alignment cosines for one batch.

  Args:
    x: [B, Lq, d] query-stream input of the cell.
    x_prime: [B, Lq, d] raw cross-attention output (before the gate).
    y: [B, Lk, d] key/value stream.
    q_mask: bool [B, Lq] valid query tokens (no padding, saw at least one key).
    kv_mask: bool [B, Lk] valid key tokens.

  Returns:
    Scalars 'cos_sum' (sum of c), 'abs_cos_sum' (sum of |c|), 'count' over
    valid query tokens, where c = cos(x_t, x'_t); and 'xy_cos_sum',
    'xy_abs_cos_sum', 'xy_count' for c_y = cos(x_t, ybar), ybar being the mean
    of y over the user's valid key tokens (users without any are excluded).
    Sums are float32, counts int32.
  """
  q_mask = jnp.asarray(q_mask, dtype=bool)
  kv_mask = jnp.asarray(kv_mask, dtype=bool)
  y = _as_float(y)

  c = cosine(x, x_prime)
  # `where`, not multiply-by-mask: padded tokens may hold NaN/inf garbage.
  cos_sum = jnp.sum(jnp.where(q_mask, c, 0.0))
  abs_cos_sum = jnp.sum(jnp.where(q_mask, jnp.abs(c), 0.0))
  count = jnp.sum(q_mask, dtype=jnp.int32)

  # Pool Y per user over its valid key tokens.
  num_kv = jnp.sum(kv_mask, axis=-1)  # [B]
  y_total = jnp.sum(jnp.where(kv_mask[..., None], y, 0.0), axis=-2)  # [B, d]
  ybar = y_total / jnp.maximum(num_kv, 1)[..., None].astype(y.dtype)
  xy_mask = q_mask & (num_kv > 0)[..., None]  # [B, Lq]
  c_y = cosine(x, ybar[..., None, :])
  xy_cos_sum = jnp.sum(jnp.where(xy_mask, c_y, 0.0))
  xy_abs_cos_sum = jnp.sum(jnp.where(xy_mask, jnp.abs(c_y), 0.0))
  xy_count = jnp.sum(xy_mask, dtype=jnp.int32)

  return {
    "cos_sum": cos_sum,
    "abs_cos_sum": abs_cos_sum,
    "count": count,
    "xy_cos_sum": xy_cos_sum,
    "xy_abs_cos_sum": xy_abs_cos_sum,
    "xy_count": xy_count,
  }


def finalize_alignment(sums: Mapping[str, Any]) -> dict[str, float]:
  """Host side: turns accumulated alignment sums into means.

  Args:
    sums: the keys of `alignment_sums`, accumulated over batches. Array values
      (e.g. one per device) are summed entirely.

  Returns:
    'mean_cos' (signed mean of c), 'abs_mean_cos' (|mean_cos|), 'mean_abs_cos'
    (mean of |c|) and the same three with an 'xy_' prefix; where `sums` has
    them (a cell with an orthogonal or parallel intervention), the same three
    with a 'pre_' prefix, of the X' before the intervention; nan when the
    corresponding count is 0.
  """

  def total(key: str) -> float:
    return float(np.sum(np.asarray(sums[key], np.float64)))

  out = {}
  for prefix in ("", "xy_") + ((PRE,) if f"{PRE}count" in sums else ()):
    count = total(f"{prefix}count")
    if count > 0:
      mean_cos = total(f"{prefix}cos_sum") / count
      mean_abs_cos = total(f"{prefix}abs_cos_sum") / count
    else:
      mean_cos = mean_abs_cos = float("nan")
    out[f"{prefix}mean_cos"] = mean_cos
    out[f"{prefix}abs_mean_cos"] = abs(mean_cos)
    out[f"{prefix}mean_abs_cos"] = mean_abs_cos
  return out
