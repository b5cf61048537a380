"""Tests for orthoalign.metrics.ranking against a numpy brute force."""

import math

import hypothesis
from hypothesis import strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign.metrics import ranking

_SETTINGS = hypothesis.settings(max_examples=60, deadline=None)
# Fixed width for the hypothesis tests: shorter cases are padded with invalid
# columns, so every example reuses one compiled shape (and exercises `valid`).
_WIDTH = 12


# ----------------------------------------------------------------------------
# numpy brute force
# ----------------------------------------------------------------------------


def ref_rank_loop(target: float, negatives, valid) -> tuple[int, int]:
  """Explicit loop: counts valid negatives scoring >= the target."""
  rank = 0
  num = 0
  for s, v in zip(negatives, valid):
    if not v:
      continue
    num += 1
    if s >= target:
      rank += 1
  return rank, num


def ref_rank_sort(target: float, negatives, valid) -> int:
  """Sorting: position of the target in a descending order with ties first."""
  cands = [(float(s), 0) for s, v in zip(negatives, valid) if v]
  cands.append((float(target), 1))  # 1 sorts the target after its ties.
  order = sorted(cands, key=lambda t: (-t[0], t[1]))
  return order.index((float(target), 1))


def ref_metrics(rank: int, num: int, ks=ranking.KS) -> dict[str, float]:
  out = {}
  for k in ks:
    out[f"ndcg@{k}"] = 1.0 / math.log2(rank + 2) if rank < k else 0.0
    out[f"hr@{k}"] = 1.0 if rank < k else 0.0
  out["mrr"] = 1.0 / (rank + 1)
  out["auc"] = (num - rank) / num if num > 0 else 0.0
  return out


def ref_domain_means(per_case, domain, weight) -> dict[str, float]:
  out = {}
  for dom, sel in (("A", domain == 0), ("B", domain == 1), ("all", np.ones_like(domain, bool))):
    w = np.where(sel, weight, 0.0).astype(np.float64)
    for name, v in per_case.items():
      if w.sum() == 0:
        out[f"{dom}/{name}"] = float("nan")
      else:
        v = np.where(w != 0, np.asarray(v, np.float64), 0.0)
        out[f"{dom}/{name}"] = float((w * v).sum() / w.sum())
  return out


def _tied_scores(rng: np.random.Generator, shape, levels: int = 4):
  """Integer-valued float scores: few levels, so ties are frequent."""
  return rng.integers(0, levels, size=shape).astype(np.float32)


def _assert_metrics_close(got, ranks, nums):
  for i, (r, n) in enumerate(zip(ranks, nums)):
    want = ref_metrics(int(r), int(n))
    assert set(got) == set(want)
    for name, value in want.items():
      np.testing.assert_allclose(
        np.asarray(got[name])[i], value, rtol=1e-6, err_msg=f"{name} case {i}"
      )


# ----------------------------------------------------------------------------
# sampled_rank / full_rank against the brute force
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [2, 5, 1000])
def test_sampled_rank_matches_brute_force(levels):
  rng = np.random.default_rng(levels)
  b, n = 64, 20
  scores = _tied_scores(rng, (b, 1 + n), levels)
  valid = rng.random((b, 1 + n)) < 0.7
  valid[:, 0] = rng.random(b) < 0.5  # Column 0 must be ignored.
  valid[:3, 1:] = False  # Some cases have no valid negative at all.

  rank, num = ranking.sampled_rank(jnp.asarray(scores), jnp.asarray(valid))
  assert rank.dtype == jnp.int32 and num.dtype == jnp.int32
  assert rank.shape == (b,) and num.shape == (b,)
  for i in range(b):
    want_rank, want_num = ref_rank_loop(scores[i, 0], scores[i, 1:], valid[i, 1:])
    assert ref_rank_sort(scores[i, 0], scores[i, 1:], valid[i, 1:]) == want_rank
    assert int(rank[i]) == want_rank, i
    assert int(num[i]) == want_num, i

  _assert_metrics_close(ranking.metrics_from_rank(rank, num), rank, num)


def test_sampled_rank_without_valid_counts_all_negatives():
  rng = np.random.default_rng(0)
  scores = _tied_scores(rng, (3, 5, 8))  # Extra leading axis.
  rank, num = ranking.sampled_rank(jnp.asarray(scores))
  assert rank.shape == (3, 5)
  np.testing.assert_array_equal(num, 7)
  want = (scores[..., 1:] >= scores[..., :1]).sum(-1)
  np.testing.assert_array_equal(rank, want)


def test_sampled_rank_nan_scores_count_against_target():
  scores = jnp.array(
    [
      [jnp.nan, 1.0, 2.0, 3.0],  # NaN target: worst rank.
      [2.0, jnp.nan, 1.0, 0.0],  # NaN negative: counts against.
    ]
  )
  rank, num = ranking.sampled_rank(scores)
  np.testing.assert_array_equal(rank, [3, 1])
  np.testing.assert_array_equal(num, [3, 3])


def test_full_rank_matches_brute_force():
  rng = np.random.default_rng(1)
  b, n_items = 32, 50
  item_scores = _tied_scores(rng, (b, n_items), levels=6)
  target_idx = rng.integers(0, n_items, size=b)
  target_score = item_scores[np.arange(b), target_idx]
  mask = rng.random((b, n_items)) < 0.8
  mask[:, 0] = False  # Pad item.
  mask[np.arange(b), target_idx] = False  # The target is never a negative.
  mask[0] = False  # A case with no candidates.

  rank, num = ranking.full_rank(
    jnp.asarray(target_score), jnp.asarray(item_scores), jnp.asarray(mask)
  )
  assert rank.dtype == jnp.int32 and rank.shape == (b,)
  for i in range(b):
    want_rank, want_num = ref_rank_loop(target_score[i], item_scores[i], mask[i])
    assert int(rank[i]) == want_rank, i
    assert int(num[i]) == want_num, i
  assert int(rank[0]) == 0 and int(num[0]) == 0
  _assert_metrics_close(ranking.metrics_from_rank(rank, num), rank, num)


def test_full_rank_agrees_with_sampled_rank():
  """Full ranking is sampled ranking with every candidate as a negative."""
  rng = np.random.default_rng(2)
  b, n_items = 16, 30
  item_scores = _tied_scores(rng, (b, n_items))
  target_score = _tied_scores(rng, (b,))
  mask = rng.random((b, n_items)) < 0.5
  full = ranking.full_rank(jnp.asarray(target_score), jnp.asarray(item_scores), jnp.asarray(mask))
  scores = np.concatenate([target_score[:, None], item_scores], axis=1)
  valid = np.concatenate([np.ones((b, 1), bool), mask], axis=1)
  sampled = ranking.sampled_rank(jnp.asarray(scores), jnp.asarray(valid))
  np.testing.assert_array_equal(full[0], sampled[0])
  np.testing.assert_array_equal(full[1], sampled[1])


# ----------------------------------------------------------------------------
# properties
# ----------------------------------------------------------------------------


@st.composite
def _cases(draw):
  n = draw(st.integers(0, _WIDTH - 1))
  vals = draw(st.lists(st.integers(-3, 3), min_size=1 + n, max_size=1 + n))
  scores = np.zeros(_WIDTH, np.float32)
  scores[: 1 + n] = vals
  # Garbage in the padded columns must not matter.
  scores[1 + n :] = 99.0
  valid = np.arange(_WIDTH) < 1 + n
  return scores, valid, n


@hypothesis.given(_cases())
@_SETTINGS
def test_rank_properties(case):
  scores, valid, n = case
  rank, num = ranking.sampled_rank(jnp.asarray(scores[None]), jnp.asarray(valid[None]))
  rank, num = int(rank[0]), int(num[0])
  assert num == n
  assert 0 <= rank <= n
  assert (rank, num) == ref_rank_loop(scores[0], scores[1 : 1 + n], [True] * n)
  m = ranking.metrics_from_rank(jnp.asarray([rank]), jnp.asarray([num]))
  for name, v in m.items():
    v = float(v[0])
    assert 0.0 <= v <= 1.0, name
    assert math.isfinite(v), name


@hypothesis.given(st.integers(0, _WIDTH - 1), st.integers(-5, 5))
@_SETTINGS
def test_all_equal_scores_give_worst_rank(n, value):
  scores = np.full((1, _WIDTH), value, np.float32)
  valid = (np.arange(_WIDTH) < 1 + n)[None]
  rank, num = ranking.sampled_rank(jnp.asarray(scores), jnp.asarray(valid))
  assert int(rank[0]) == n and int(num[0]) == n
  m = ranking.metrics_from_rank(rank, num)
  assert float(m["auc"][0]) == 0.0


@hypothesis.given(
  st.integers(1, _WIDTH - 1), st.lists(st.integers(-5, 5), min_size=_WIDTH - 1, max_size=_WIDTH - 1)
)
@_SETTINGS
def test_perfect_target_gives_rank_zero(n, negatives):
  scores = np.asarray([6] + negatives, np.float32)[None]  # Strictly highest.
  valid = (np.arange(_WIDTH) < 1 + n)[None]
  rank, num = ranking.sampled_rank(jnp.asarray(scores), jnp.asarray(valid))
  assert int(rank[0]) == 0 and int(num[0]) == n
  m = ranking.metrics_from_rank(rank, num)
  for name in ("ndcg@1", "hr@1", "mrr", "auc"):
    assert float(m[name][0]) == 1.0, name


@hypothesis.given(st.integers(0, 200))
@_SETTINGS
def test_metrics_monotone_in_rank(n):
  # Fixed shape (ranks past n are clipped to n) so every example reuses one
  # compiled computation.
  ranks = jnp.minimum(jnp.arange(201), n)
  m = ranking.metrics_from_rank(ranks, jnp.full_like(ranks, n))
  for name, v in m.items():
    v = np.asarray(v)
    assert np.all(np.diff(v) <= 0), name
    assert np.all((v >= 0) & (v <= 1)), name
  if n > 0:
    np.testing.assert_allclose(m["auc"][0], 1.0)
    np.testing.assert_allclose(m["auc"][-1], 0.0)


def test_metrics_from_rank_values_by_hand():
  m = ranking.metrics_from_rank(jnp.array([0, 4, 9, 10]), jnp.array([0, 9, 99, 10]))
  np.testing.assert_allclose(m["ndcg@1"], [1, 0, 0, 0])
  np.testing.assert_allclose(m["ndcg@5"], [1, 1 / math.log2(6), 0, 0], rtol=1e-6)
  np.testing.assert_allclose(m["ndcg@10"], [1, 1 / math.log2(6), 1 / math.log2(11), 0], rtol=1e-6)
  np.testing.assert_allclose(m["hr@10"], [1, 1, 1, 0])
  np.testing.assert_allclose(m["mrr"], [1, 1 / 5, 1 / 10, 1 / 11], rtol=1e-6)
  # No negatives -> 0 (safe, pessimistic); otherwise share below the target.
  np.testing.assert_allclose(m["auc"], [0, 5 / 9, 90 / 99, 0], rtol=1e-6)
  for v in m.values():
    assert v.dtype == jnp.float32


# ----------------------------------------------------------------------------
# domain_sums / finalize
# ----------------------------------------------------------------------------


def test_domain_sums_and_finalize_match_brute_force():
  rng = np.random.default_rng(3)
  b, n = 40, 15
  scores = _tied_scores(rng, (b, 1 + n), levels=5)
  domain = rng.integers(0, 2, size=b)
  weight = (rng.random(b) < 0.8).astype(np.float32)
  weight[:5] = 0.0
  scores[:5] = np.nan  # Padded rows hold garbage; it must not leak.

  rank, num = ranking.sampled_rank(jnp.asarray(scores))
  per_case = ranking.metrics_from_rank(rank, num)
  sums = ranking.domain_sums(per_case, jnp.asarray(domain), jnp.asarray(weight))
  expected_keys = {f"{d}/{m}" for d in ("A", "B", "all") for m in list(per_case) + ["count"]}
  assert set(sums) == expected_keys
  for d, sel in (("A", domain == 0), ("B", domain == 1), ("all", True)):
    np.testing.assert_allclose(sums[f"{d}/count"], np.sum(np.where(sel, weight, 0)))

  got = ranking.finalize(sums)
  assert not any(k.endswith("/count") for k in got)
  want = ref_domain_means({k: np.asarray(v) for k, v in per_case.items()}, domain, weight)
  assert set(got) == set(want)
  for k, v in want.items():
    assert isinstance(got[k], float)
    np.testing.assert_allclose(got[k], v, rtol=1e-6, err_msg=k)


def test_domain_sums_fractional_and_bool_weights():
  per_case = {"x": jnp.array([1.0, 2.0, 3.0, 4.0])}
  domain = jnp.array([0, 1, 0, 1])
  sums = ranking.domain_sums(per_case, domain, jnp.array([0.5, 1.0, 1.5, 0.0]))
  np.testing.assert_allclose(sums["A/x"], 0.5 * 1 + 1.5 * 3)
  np.testing.assert_allclose(sums["A/count"], 2.0)
  np.testing.assert_allclose(sums["B/x"], 2.0)
  np.testing.assert_allclose(sums["all/count"], 3.0)
  sums = ranking.domain_sums(per_case, domain, jnp.array([True, False, True, True]))
  np.testing.assert_allclose(sums["A/x"], 4.0)
  np.testing.assert_allclose(sums["B/x"], 4.0)
  np.testing.assert_allclose(sums["all/count"], 3.0)


def test_sums_are_additive_across_batches():
  rng = np.random.default_rng(4)
  b, n = 24, 10
  scores = _tied_scores(rng, (b, 1 + n))
  domain = rng.integers(0, 2, size=b)
  weight = (rng.random(b) < 0.8).astype(np.float32)

  def sums_of(sl):
    rank, num = ranking.sampled_rank(jnp.asarray(scores[sl]))
    return ranking.domain_sums(
      ranking.metrics_from_rank(rank, num), jnp.asarray(domain[sl]), jnp.asarray(weight[sl])
    )

  whole = sums_of(slice(None))
  halves = [sums_of(slice(0, 10)), sums_of(slice(10, None))]
  added = {k: halves[0][k] + halves[1][k] for k in whole}
  for k in whole:
    np.testing.assert_allclose(added[k], whole[k], rtol=1e-6, err_msg=k)
  # Stacked per-device sums are summed by finalize.
  stacked = {k: np.stack([halves[0][k], halves[1][k]]) for k in whole}
  a, b_ = ranking.finalize(stacked), ranking.finalize(whole)
  for k in a:
    np.testing.assert_allclose(a[k], b_[k], rtol=1e-6, err_msg=k)


def test_finalize_empty_domain_is_nan():
  per_case = {"mrr": jnp.array([1.0, 0.5, 0.25])}
  sums = ranking.domain_sums(per_case, jnp.array([0, 0, 1]), jnp.array([1.0, 1.0, 0.0]))
  got = ranking.finalize(sums)
  assert got["A/mrr"] == pytest.approx(0.75)
  assert got["all/mrr"] == pytest.approx(0.75)
  assert math.isnan(got["B/mrr"])
  assert set(got) == {"A/mrr", "B/mrr", "all/mrr"}


# ----------------------------------------------------------------------------
# jit / vmap
# ----------------------------------------------------------------------------


def _eval_step(scores, valid, domain, weight):
  rank, num = ranking.sampled_rank(scores, valid)
  return ranking.domain_sums(ranking.metrics_from_rank(rank, num), domain, weight)


def test_jit_agrees_with_eager():
  rng = np.random.default_rng(5)
  b, n = 16, 9
  args = (
    jnp.asarray(_tied_scores(rng, (b, 1 + n))),
    jnp.asarray(rng.random((b, 1 + n)) < 0.8),
    jnp.asarray(rng.integers(0, 2, size=b)),
    jnp.asarray((rng.random(b) < 0.8).astype(np.float32)),
  )
  eager = _eval_step(*args)
  jitted = jax.jit(_eval_step)(*args)
  for k in eager:
    np.testing.assert_allclose(jitted[k], eager[k], rtol=1e-6, err_msg=k)

  target = jnp.asarray(_tied_scores(rng, (b,)))
  items = jnp.asarray(_tied_scores(rng, (b, 20)))
  mask = jnp.asarray(rng.random((b, 20)) < 0.5)
  for got, want in zip(
    jax.jit(ranking.full_rank)(target, items, mask), ranking.full_rank(target, items, mask)
  ):
    np.testing.assert_array_equal(got, want)


def test_vmap_agrees_with_batched_call():
  rng = np.random.default_rng(6)
  g, b, n = 3, 8, 7
  scores = jnp.asarray(_tied_scores(rng, (g, b, 1 + n)))
  valid = jnp.asarray(rng.random((g, b, 1 + n)) < 0.8)
  domain = jnp.asarray(rng.integers(0, 2, size=(g, b)))
  weight = jnp.asarray((rng.random((g, b)) < 0.8).astype(np.float32))

  # vmap(sampled_rank) over an extra axis == the [..., 1+N] batched call.
  vr, vn = jax.vmap(ranking.sampled_rank)(scores, valid)
  br, bn = ranking.sampled_rank(scores, valid)
  np.testing.assert_array_equal(vr, br)
  np.testing.assert_array_equal(vn, bn)

  # vmap(jit(step)) per group, summed over groups == one step on everything.
  per_group = jax.vmap(jax.jit(_eval_step))(scores, valid, domain, weight)
  whole = _eval_step(
    scores.reshape(g * b, -1), valid.reshape(g * b, -1), domain.reshape(-1), weight.reshape(-1)
  )
  for k in whole:
    assert per_group[k].shape == (g,)
    np.testing.assert_allclose(per_group[k].sum(), whole[k], rtol=1e-5, err_msg=k)

  target = jnp.asarray(_tied_scores(rng, (g, b)))
  items = jnp.asarray(_tied_scores(rng, (g, b, 12)))
  mask = jnp.asarray(rng.random((g, b, 12)) < 0.5)
  vr, vn = jax.vmap(ranking.full_rank)(target, items, mask)
  for i in range(g):
    r, n_ = ranking.full_rank(target[i], items[i], mask[i])
    np.testing.assert_array_equal(vr[i], r)
    np.testing.assert_array_equal(vn[i], n_)
