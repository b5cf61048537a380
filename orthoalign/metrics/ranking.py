"""Ranking metrics under the "one rank per test case" protocol.

Every metric of a test case is a function of a single 0-based rank of the
held-out target among its negatives. Ties count against the target
(pessimistic): a model that scores everything equal gets the worst rank, never
a lucky one. A NaN score on either side also counts against the target, so a
numerically broken model cannot look good.

The device-side functions are pure `jax.numpy`, have static shapes and no
Python control flow on traced values, so they run inside jitted / vmapped eval
steps. Per-batch results are reduced to additive sums (`domain_sums`); the host
adds those up over batches and divides once at the end (`finalize`).
"""

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

KS = (1, 5, 10)
DOMAINS = ('A', 'B', 'all')
_COUNT = 'count'


def _rank_against(
    target: jax.Array, negatives: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Counts masked negatives that are not strictly below the target.

  Args:
    target: [..., 1] target scores, broadcastable against `negatives`.
    negatives: [..., N] negative scores.
    mask: bool [..., N], True for negatives that count.

  Returns:
    (rank, num_negatives), both int32 [...].
  """
  # `not (s_j < s_0)` rather than `s_j >= s_0`: identical for ordinary numbers
  # (ties count against the target) but a NaN on either side also counts
  # against the target instead of silently giving it rank 0.
  against = jnp.logical_not(negatives < target) & mask
  rank = jnp.sum(against, axis=-1, dtype=jnp.int32)
  num_negatives = jnp.sum(mask, axis=-1, dtype=jnp.int32)
  return rank, num_negatives


def sampled_rank(
    scores: jax.Array, valid: jax.Array | None = None
) -> tuple[jax.Array, jax.Array]:
  """Rank of the target among sampled negatives.

  Args:
    scores: [..., 1+N] scores; column 0 is the target, columns 1.. negatives.
    valid: optional bool [..., 1+N]; False marks negatives that do not count
      (e.g. padding). Column 0 is ignored. None means all negatives count.

  Returns:
    (rank, num_negatives), int32 [...]; rank = #{j>=1 valid: s_j >= s_0}.
  """
  target = scores[..., :1]
  negatives = scores[..., 1:]
  if valid is None:
    mask = jnp.ones(negatives.shape, dtype=bool)
  else:
    mask = jnp.broadcast_to(jnp.asarray(valid, dtype=bool)[..., 1:],
                            negatives.shape)
  return _rank_against(target, negatives, mask)


def full_rank(
    target_score: jax.Array, item_scores: jax.Array, candidate_mask: jax.Array
) -> tuple[jax.Array, jax.Array]:
  """Rank of the target among all candidate items.

  Args:
    target_score: [B] score of the target item.
    item_scores: [B, N_items] scores of every item.
    candidate_mask: bool [B, N_items], True for items that count as negatives.
      The caller excludes pad, other-domain items, the user's history and the
      target itself.

  Returns:
    (rank, num_negatives), int32 [B].
  """
  mask = jnp.asarray(candidate_mask, dtype=bool)
  return _rank_against(target_score[..., None], item_scores, mask)


def metrics_from_rank(
    rank: jax.Array, num_negatives: jax.Array, ks: Sequence[int] = KS
) -> dict[str, jax.Array]:
  """Per-case metrics from the target's 0-based rank.

  Args:
    rank: int [...] 0-based rank of the target (ties against it).
    num_negatives: int [...] number of negatives the rank was taken among.
    ks: static cut-offs for NDCG@k and HR@k.

  Returns:
    float32 [...] arrays keyed 'ndcg@k', 'hr@k' (each k), 'mrr' and 'auc'.
    ndcg@k = 1/log2(rank+2) if rank < k else 0; hr@k = [rank < k];
    mrr = 1/(rank+1), untruncated; auc = (num_negatives - rank) /
    num_negatives, the share of negatives strictly below the target, 0 when
    there are no negatives.
  """
  rank_f = jnp.asarray(rank).astype(jnp.float32)
  num_f = jnp.asarray(num_negatives).astype(jnp.float32)
  dcg = 1.0 / jnp.log2(rank_f + 2.0)
  out = {}
  for k in ks:
    hit = rank_f < k
    out[f'ndcg@{k}'] = jnp.where(hit, dcg, 0.0)
    out[f'hr@{k}'] = hit.astype(jnp.float32)
  out['mrr'] = 1.0 / (rank_f + 1.0)
  # With no negatives the AUC is undefined; report 0 (pessimistic, like ties)
  # and keep the division away from 0 so neither branch produces NaN.
  out['auc'] = jnp.where(
      num_f > 0, (num_f - rank_f) / jnp.maximum(num_f, 1.0), 0.0)
  return out


def domain_sums(
    per_case: Mapping[str, jax.Array], domain: jax.Array, weight: jax.Array
) -> dict[str, jax.Array]:
  """Weighted per-domain sums of per-case metrics, additive across batches.

  Args:
    per_case: float [B] metric arrays (e.g. from `metrics_from_rank`).
    domain: int [B], 0 = domain A, 1 = domain B.
    weight: float or bool [B]; 0 for padded rows.

  Returns:
    float32 scalars keyed '<dom>/<metric>' and '<dom>/count' for dom in
    ('A', 'B', 'all'); 'all' is every row with nonzero weight.
  """
  weight = jnp.asarray(weight).astype(jnp.float32)
  domain = jnp.asarray(domain)
  dom_weights = {
      'A': jnp.where(domain == 0, weight, 0.0),
      'B': jnp.where(domain == 1, weight, 0.0),
      'all': weight,
  }
  sums = {}
  for dom, w in dom_weights.items():
    for name, value in per_case.items():
      # `where`, not a plain product: padded rows may hold NaN/inf garbage and
      # 0 * NaN would poison the sum.
      contrib = jnp.where(w != 0, w * jnp.asarray(value, jnp.float32), 0.0)
      sums[f'{dom}/{name}'] = jnp.sum(contrib)
    sums[f'{dom}/{_COUNT}'] = jnp.sum(w)
  return sums


def finalize(sums: Mapping[str, Any]) -> dict[str, float]:
  """Host side: turns accumulated sums into means.

  Args:
    sums: '<dom>/<metric>' and '<dom>/count' values accumulated over batches.
      Array values (e.g. one per device) are summed entirely.

  Returns:
    '<dom>/<metric>' = sum / count as float (nan if count == 0); no counts.
  """
  out = {}
  for key, value in sums.items():
    dom, _, name = key.partition('/')
    if name == _COUNT:
      continue
    count = float(np.sum(np.asarray(sums[f'{dom}/{_COUNT}'], np.float64)))
    total = float(np.sum(np.asarray(value, np.float64)))
    out[key] = total / count if count > 0 else float('nan')
  return out
