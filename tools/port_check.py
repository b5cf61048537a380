"""What the port checks (compare_*_original.py) share: perturbed float64 weights."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def perturbed_float64(init_params: Callable[[jax.Array], Any], scale: float = 0.02) -> Any:
  """orthoalign's initialisation (key 0) + N(0, scale^2) per entry (key 7), in float64, so that
  zero-initialised biases, LoRA B matrices and LayerNorm parameters all matter in the comparison.
  """
  leaves, tree = jax.tree_util.tree_flatten(init_params(jax.random.key(0)))
  keys = jax.random.split(jax.random.key(7), len(leaves))
  return jax.tree_util.tree_unflatten(
    tree,
    [(x + scale * jax.random.normal(k, x.shape)).astype(jnp.float64) for x, k in zip(leaves, keys)],
  )
