"""Ranking metrics under the "one rank per test case" protocol.

Every metric of a test case is a function of the 0-based rank of the held-out
target among its negatives. A tie between the target and a negative is resolved
by a rule (`TIES`, `config.eval.ties`), computed from two counts per case: h,
the negatives scoring strictly higher, and e, those scoring exactly equal:

- 'pessimistic' (default): rank h + e; ties count against the target, so a
  model that scores everything equal gets the worst rank, never a lucky one.
- 'optimistic': rank h; what a stable sort with the target first gives.
- 'expected': each metric's expectation when ties are broken uniformly at
  random, i.e. the mean of the metric over ranks h, h+1, ..., h+e (exact).

A NaN score on either side counts against the target under every rule (it is
in h, never in e), so a numerically broken model cannot look good.

The device-side functions are pure `jax.numpy`, have static shapes and no
Python control flow on traced values, so they run inside jitted / vmapped eval
steps. Per-batch results are reduced to additive sums (`domain_sums`); the host
adds those up over batches and divides once at the end (`finalize`).
"""

from collections.abc import Mapping, Sequence
import math
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special
import numpy as np

from orthoalign.metrics import keys

KS = (1, 5, 10)
TIES = ("pessimistic", "optimistic", "expected")
_COUNT = "count"
# Below this first harmonic index the expected MRR uses digamma differences;
# from it on an Euler-Maclaurin form that keeps float32 precision (see
# `_mean_reciprocal`).
_HARMONIC_SWITCH = 16.0


def _counts_against(
  target: jax.Array, negatives: jax.Array, mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Counts masked negatives above and tied with the target.

  Args:
    target: [..., 1] target scores, broadcastable against `negatives`.
    negatives: [..., N] negative scores.
    mask: bool [..., N], True for negatives that count.

  Returns:
    (higher, equal, num_negatives), int32 [...]. higher + equal is the
    pessimistic rank; a NaN on either side is in `higher`.
  """
  # `not (s_j < s_0)` rather than `s_j >= s_0`: identical for ordinary numbers
  # (ties count against the target) but a NaN on either side also counts
  # against the target instead of silently giving it rank 0.
  against = jnp.logical_not(negatives < target) & mask
  equal = (negatives == target) & mask  # False whenever a NaN is involved
  higher = against & jnp.logical_not(equal)
  return (
    jnp.sum(higher, axis=-1, dtype=jnp.int32),
    jnp.sum(equal, axis=-1, dtype=jnp.int32),
    jnp.sum(mask, axis=-1, dtype=jnp.int32),
  )


def _sampled_parts(
  scores: jax.Array, valid: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(target [..., 1], negatives [..., N], mask bool [..., N]) of sampled scores."""
  target = scores[..., :1]
  negatives = scores[..., 1:]
  if valid is None:
    mask = jnp.ones(negatives.shape, dtype=bool)
  else:
    mask = jnp.broadcast_to(jnp.asarray(valid, dtype=bool)[..., 1:], negatives.shape)
  return target, negatives, mask


def sampled_rank(scores: jax.Array, valid: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """Rank of the target among sampled negatives.

  Args:
    scores: [..., 1+N] scores; column 0 is the target, columns 1.. negatives.
    valid: optional bool [..., 1+N]; False marks negatives that do not count
      (e.g. padding). Column 0 is ignored. None means all negatives count.

  Returns:
    (rank, num_negatives), int32 [...]; rank = #{j>=1 valid: s_j >= s_0}.
  """
  higher, equal, num_negatives = sampled_counts(scores, valid)
  return higher + equal, num_negatives


def sampled_counts(
  scores: jax.Array, valid: jax.Array | None = None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Negatives above and tied with the target among sampled negatives.

  Args:
    scores: [..., 1+N] scores; column 0 is the target, columns 1.. negatives.
    valid: optional bool [..., 1+N] as in `sampled_rank`.

  Returns:
    (higher, equal, num_negatives), int32 [...]: higher = #{j>=1 valid:
    not s_j <= s_0} (NaN included), equal = #{j>=1 valid: s_j == s_0}.
  """
  return _counts_against(*_sampled_parts(scores, valid))


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
  higher, equal, num_negatives = full_counts(target_score, item_scores, candidate_mask)
  return higher + equal, num_negatives


def full_counts(
  target_score: jax.Array, item_scores: jax.Array, candidate_mask: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Items above and tied with the target among all candidate items.

  Args:
    target_score: [B] score of the target item.
    item_scores: [B, N_items] scores of every item.
    candidate_mask: bool [B, N_items] as in `full_rank`.

  Returns:
    (higher, equal, num_negatives), int32 [B], as in `sampled_counts`.
  """
  mask = jnp.asarray(candidate_mask, dtype=bool)
  return _counts_against(target_score[..., None], item_scores, mask)


def catalogue_counts(
  item_scores: jax.Array, target: jax.Array, lo: jax.Array, hi: jax.Array, seen: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`full_counts` over a contiguous id range minus the seen items, with no [B, N] mask.

  The negatives of case b are the ids in [lo_b, hi_b] except the target and
  the ids in `seen[b]`. The counts are taken in two parts: over the whole
  range minus the target (one comparison and one sum along the item axis, so
  an item axis sharded over devices gives per-shard partial sums and a small
  all-reduce, never all scores on one device), then minus the counts over the
  distinct seen ids in the range (their scores gathered: [B, L]). Integer
  counts, so the result equals `full_counts` with the explicit mask exactly,
  under every tie rule (NaN scores included).

  Args:
    item_scores: [B, N] scores by item id.
    target: int [B] target ids (in [lo, hi]).
    lo, hi: int [B] first and last id of the case's candidate range.
    seen: int [B, L] ids to exclude (any order, repeats and out-of-range ids
      allowed; e.g. the user's history with 0 as padding).

  Returns:
    (higher, equal, num_negatives), int32 [B], as in `full_counts`.
  """
  ids = jax.lax.broadcasted_iota(jnp.int32, (1, item_scores.shape[-1]), 1)
  t = target[:, None]
  target_score = jnp.take_along_axis(item_scores, t, axis=-1)
  in_range = (ids >= lo[:, None]) & (ids <= hi[:, None]) & (ids != t)
  h_all, e_all, n_all = _counts_against(target_score, item_scores, in_range)
  seen = jnp.sort(seen, axis=-1)
  first = jnp.concatenate(
    [jnp.ones_like(seen[:, :1], dtype=bool), seen[:, 1:] != seen[:, :-1]], axis=-1
  )
  drop = first & (seen >= lo[:, None]) & (seen <= hi[:, None]) & (seen != t)
  seen_scores = jnp.take_along_axis(
    item_scores, jnp.clip(seen, 0, item_scores.shape[-1] - 1), axis=-1
  )
  h_seen, e_seen, n_seen = _counts_against(target_score, seen_scores, drop)
  return h_all - h_seen, e_all - e_seen, n_all - n_seen


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
    out[f"ndcg@{k}"] = jnp.where(hit, dcg, 0.0)
    out[f"hr@{k}"] = hit.astype(jnp.float32)
  out["mrr"] = 1.0 / (rank_f + 1.0)
  # With no negatives the AUC is undefined; report 0 (pessimistic, like ties)
  # and keep the division away from 0 so neither branch produces NaN.
  out["auc"] = jnp.where(num_f > 0, (num_f - rank_f) / jnp.maximum(num_f, 1.0), 0.0)
  return out


def _mean_reciprocal(higher: jax.Array, equal: jax.Array) -> jax.Array:
  """Mean of 1/(r+1) over r = h..h+e, i.e. (H(h+e+1) - H(h)) / (e+1).

  Args:
    higher: float32 [...] h >= 0.
    equal: float32 [...] e >= 0.

  Returns:
    float32 [...]. e == 0 gives exactly 1/(h+1). Small h uses digamma
    differences (H(n) = digamma(n+1) + euler_gamma); from h+1 >=
    _HARMONIC_SWITCH the sum of 1/m over m = a..b is taken as
    log((b+1/2)/(a-1/2)) - (1/(a-1/2)^2 - 1/(b+1/2)^2)/24 (Euler-Maclaurin,
    relative error < 1e-6 there), which, unlike a difference of two large
    digammas, keeps float32 precision far down the ranking.
  """
  a = higher + 1.0  # first and last reciprocal index
  b = higher + equal + 1.0
  n = equal + 1.0
  small = jax.scipy.special.digamma(b + 1.0) - jax.scipy.special.digamma(a)
  lo = jnp.maximum(a, _HARMONIC_SWITCH) - 0.5  # keeps the unused branch finite
  hi = b + (lo + 0.5 - a) + 0.5
  large = jnp.log1p(n / lo) - (1.0 / lo**2 - 1.0 / hi**2) / 24.0
  mean = jnp.where(a < _HARMONIC_SWITCH, small, large) / n
  return jnp.where(equal > 0, mean, 1.0 / a)


def metrics_from_counts(
  higher: jax.Array,
  equal: jax.Array,
  num_negatives: jax.Array,
  ties: str = "pessimistic",
  ks: Sequence[int] = KS,
) -> dict[str, jax.Array]:
  """Per-case metrics under a tie rule, plus whether the case has a tie.

  Args:
    higher: int [...] negatives scoring strictly above the target (NaN too).
    equal: int [...] negatives scoring exactly as the target.
    num_negatives: int [...] number of negatives.
    ties: static rule, one of `TIES`: 'pessimistic' = metrics_from_rank(h+e),
      'optimistic' = metrics_from_rank(h), 'expected' = the mean of each
      metric over ranks h..h+e (uniformly random tie-breaking), in closed
      form: ndcg@k = sum_{r<k, h<=r<=h+e} 1/log2(r+2) / (e+1), hr@k =
      #{r<k: h<=r<=h+e} / (e+1), mrr = (H(h+e+1) - H(h)) / (e+1),
      auc = (N - h - e/2) / N (a tie counts 1/2).
    ks: static cut-offs for NDCG@k and HR@k.

  Returns:
    float32 [...] arrays: those of `metrics_from_rank` and 'tie_share' =
    [e > 0] (its mean is the share of cases with at least one tie).

  Raises:
    ValueError: an unknown rule.
  """
  if ties not in TIES:
    raise ValueError(f"unknown tie rule {ties!r}; valid choices: {list(TIES)}")
  higher = jnp.asarray(higher)
  equal = jnp.asarray(equal)
  if ties == "pessimistic":
    out = metrics_from_rank(higher + equal, num_negatives, ks)
  elif ties == "optimistic":
    out = metrics_from_rank(higher, num_negatives, ks)
  else:
    h = higher.astype(jnp.float32)
    e = equal.astype(jnp.float32)
    num_f = jnp.asarray(num_negatives).astype(jnp.float32)
    n = e + 1.0
    out = {}
    for k in ks:
      dcg = jnp.zeros(h.shape, jnp.float32)
      for r in range(k):  # static: only ranks < k count
        inside = (h <= r) & (r <= h + e)
        dcg = dcg + jnp.where(inside, 1.0 / math.log2(r + 2), 0.0)
      out[f"ndcg@{k}"] = dcg / n
      out[f"hr@{k}"] = jnp.clip(jnp.minimum(h + e, k - 1.0) - h + 1.0, 0.0) / n
    out["mrr"] = _mean_reciprocal(h, e)
    out["auc"] = jnp.where(num_f > 0, (num_f - h - 0.5 * e) / jnp.maximum(num_f, 1.0), 0.0)
  out["tie_share"] = (equal > 0).astype(jnp.float32)
  return out


def domain_sums(
  per_case: Mapping[str, jax.Array],
  domain: jax.Array,
  weight: jax.Array,
  names: tuple[str, ...] = ("A", "B"),
) -> dict[str, jax.Array]:
  """Weighted per-domain sums of per-case metrics, additive across batches.

  Args:
    per_case: float [B] metric arrays (e.g. from `metrics_from_rank`).
    domain: int [B], the target's domain index (0 = the first of `names`).
    weight: float or bool [B]; 0 for padded rows.
    names: the domains' names (the dataset's `domain_names`).

  Returns:
    float32 scalars keyed '<dom>/<metric>' and '<dom>/count' for dom in `names` and 'all', every
    row with nonzero weight.
  """
  weight = jnp.asarray(weight).astype(jnp.float32)
  domain = jnp.asarray(domain)
  dom_weights = {name: jnp.where(domain == i, weight, 0.0) for i, name in enumerate(names)}
  dom_weights["all"] = weight
  sums = {}
  for dom, w in dom_weights.items():
    for name, value in per_case.items():
      # `where`, not a plain product: padded rows may hold NaN/inf garbage and
      # 0 * NaN would poison the sum.
      contrib = jnp.where(w != 0, w * jnp.asarray(value, jnp.float32), 0.0)
      sums[keys.domain_metric(dom, name)] = jnp.sum(contrib)
    sums[keys.domain_metric(dom, _COUNT)] = jnp.sum(w)
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
    dom, name = keys.split_domain_metric(key)
    if name == _COUNT:
      continue
    count = float(np.sum(np.asarray(sums[keys.domain_metric(dom, _COUNT)], np.float64)))
    total = float(np.sum(np.asarray(value, np.float64)))
    out[key] = total / count if count > 0 else float("nan")
  return out
