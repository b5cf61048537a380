"""InfoNCE over sampled negatives as ABXI and MERIT compute it (same author, same code).

`cal_rec_loss` in `DiMarzioBian/ABXI` (models/ABXI.py) and `DiMarzioBian/MERIT` (models/MERIT.py):
logits [<h, e_target>, <h, e_neg>...] / temperature, -log softmax of the target's, then per
sequence the mean over its masked positions (`cal_norm_mask`, models/data/evaluation.py) and the
mean over sequences. Also what both share around it: the static loss settings, the negative pools
(`idx_all_a`, `idx_all_b` of their dataloaders) and the inner-product scores of `cal_rank`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from orthoalign.models import baseline
from orthoalign.models import negatives

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Loss and sampling settings of one run (static; not vmapped).

  Attributes:
    config: the model's `model.*` settings (its temp is the replica hyperparameter's default; its
      n_neg and neg_b_off_by_one set the draws).
    num_items_a, num_items_b: catalog sizes.
    catalog_scoring: model.neg_scoring resolved for this backend (`catalog_scoring`).
  """

  config: Any
  num_items_a: int
  num_items_b: int
  catalog_scoring: bool = False

  def pools(self) -> dict[str, tuple[int, int]]:
    """{"A": [low, high), "B": [low, high)}: the id ranges negatives are drawn from. With
    config.neg_b_off_by_one (the originals' `idx_all_b = arange(n_item_a, n_item + 1)`) the B
    range starts at nA, the last A item.
    """
    na, nb = self.num_items_a, self.num_items_b
    low_b = na if self.config.neg_b_off_by_one else na + 1
    return {"A": (1, na + 1), "B": (low_b, na + nb + 1)}

  def check_pools(self, history: np.ndarray, who: str) -> None:
    """Refuses model.n_neg where a training row's history leaves too few ids in a pool.

    Raises:
      ConfigError: naming model.n_neg, the domain and the largest value allowed.
    """
    negatives.check_pool_sizes(history, self.pools(), self.config.n_neg, "model.n_neg", who)


def inner_product_scores(
  h: Array, table: Array, batch: dict[str, Array], cells: dict[str, Any]
) -> baseline.EvalOutputs:
  """`cal_rank`'s scores <h, e_item>: h [B, d], the item table [nA+nB+1, d] -> the frozen
  candidates' scores [B, 1+N] and every item's [B, nA+nB+1].
  """
  sampled = jnp.einsum("bd,bcd->bc", h, table[batch["cand"]])
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=h @ table.T, cells=cells)


def catalog_scoring(mode: str) -> bool:
  """model.neg_scoring: "gather" (CPU-friendly), "catalog" (accelerator-friendly) or "auto"."""
  return mode == "catalog" or (mode == "auto" and jax.default_backend() != "cpu")


# Rows per block of the gathered InfoNCE: the [rows, L, 256, d] negative embeddings of one block
# (~400 MB at 32 rows) are rematerialised in the backward pass instead of kept for the whole batch
# (3.2 GB per replica at 256 rows, which capped the CPU at R = 5); the epoch time is unchanged.
_GATHER_BLOCK_ROWS = 32


def info_nce(
  h: Array, table: Array, target: Array, neg: Array, temp: float, catalog: bool = False
) -> Array:
  """-log softmax([<h, e_target>, <h, e_neg>...] / temp)[0] per position: [B, L].

  catalog=True scores every item once ([B, L, n_items+1]) and picks the target and negatives from
  it: the same numbers with one dense matmul (more FLOPs, no gathers or scatters), the better
  trade on a GPU. catalog=False gathers the negatives' embeddings block by block of rows.
  """
  if catalog:
    scores = h @ table.T
    pos = jnp.take_along_axis(scores, target[..., None], -1)
    negs = jnp.take_along_axis(scores, neg, -1)
    return _nce_from_logits(pos, negs, temp)

  @jax.checkpoint
  def block(h, target, neg):
    pos = jnp.sum(h * table[target], -1, keepdims=True)
    return _nce_from_logits(pos, jnp.einsum("bld,blnd->bln", h, table[neg]), temp)

  rows = h.shape[0]
  size = next(k for k in range(min(rows, _GATHER_BLOCK_ROWS), 0, -1) if rows % k == 0)
  split = lambda x: x.reshape((rows // size, size) + x.shape[1:])
  _, out = jax.lax.scan(lambda c, xs: (c, block(*xs)), None, (split(h), split(target), split(neg)))
  return out.reshape(target.shape)


def _nce_from_logits(pos: Array, negs: Array, temp: float) -> Array:
  logits = jnp.concatenate([pos, negs], -1) / temp
  return -jax.nn.log_softmax(logits, axis=-1)[..., 0]


def domain_loss(per_pos: Array, mask: Array, row_valid: Array) -> Array:
  """ABXI's `(loss * cal_norm_mask(mask)).sum(-1).mean()`: per-sequence mean over the masked
  positions (0 for a sequence without any), then the mean over the (valid) sequences.
  """
  w = mask.astype(per_pos.dtype)
  count = jnp.sum(w, -1)
  per_row = jnp.where(count > 0, jnp.sum(per_pos * w, -1) / jnp.maximum(count, 1.0), 0.0)
  rows = row_valid.astype(per_pos.dtype)
  return jnp.sum(per_row * rows) / jnp.maximum(jnp.sum(rows), 1.0)
