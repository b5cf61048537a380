"""On-device negative sampling that excludes each user's history.

The baselines draw negatives with Python rejection loops (`random_neq`). Inside a compiled step we
draw `tries` uniform candidates at once and keep the first that is not in the user's history. The
result is exact uniform sampling over the allowed items unless all `tries` draws collide, which
happens with probability p**tries for a user whose history covers a share p of the range; then the
last draw is kept. With tries=8 and p <= 0.2 that is < 3e-6 per draw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def sample_excluding(rng: Array, low: Array, high: Array, history: Array, offset: Array | int = 0,
                     tries: int = 8) -> Array:
  """Draws one id per element uniformly from [low, high), avoiding ids in `history`.

  Args:
    rng: PRNG key.
    low, high: int arrays of shape [B, ...] (broadcast together); high > low.
    history: int [B, H] global ids to avoid, each row sorted ascending (0 = padding, never equal to a
      drawn id >= 1). Membership is a binary search, so memory stays O(draws), not O(draws x H).
    offset: added to a draw before comparing with `history` (domain-local draws vs global history).
    tries: candidates drawn per element.

  Returns:
    int32 array of the broadcast shape of low/high.
  """
  low, high = jnp.broadcast_arrays(jnp.asarray(low, jnp.int32), jnp.asarray(high, jnp.int32))
  draws = jax.random.randint(rng, (tries,) + low.shape, low, high, dtype=jnp.int32)
  glob = draws + jnp.asarray(offset, jnp.int32)
  ok = ~jnp.moveaxis(is_member(history, jnp.moveaxis(glob, 0, 1)), 0, 1)   # [tries, B, ...]
  first = jnp.argmax(ok, axis=0)                                        # first clean draw (0 if none)
  first = jnp.where(jnp.any(ok, axis=0), first, tries - 1)
  return jnp.take_along_axis(draws, first[None], axis=0)[0]


def is_member(sorted_rows: Array, values: Array) -> Array:
  """bool [B, ...]: values[b, ...] occurs in sorted_rows[b] (rows sorted ascending)."""

  def one(row, vals):
    idx = jnp.clip(jnp.searchsorted(row, vals), 0, row.shape[0] - 1)
    return row[idx] == vals

  return jax.vmap(one)(sorted_rows, values)


def sample_from_rows(rng: Array, items: Array, allowed: Array) -> tuple[Array, Array]:
  """Picks one entry per row uniformly among the allowed ones.

  Args:
    rng: PRNG key.
    items: [B, H] ids.
    allowed: bool [B, H].

  Returns:
    (picked [B], found bool [B]); picked is 0 where a row has no allowed entry.
  """
  noise = jax.random.uniform(rng, items.shape)
  idx = jnp.argmax(jnp.where(allowed, noise, -1.0), axis=-1)
  found = jnp.any(allowed, axis=-1)
  return jnp.where(found, jnp.take_along_axis(items, idx[:, None], -1)[:, 0], 0), found
