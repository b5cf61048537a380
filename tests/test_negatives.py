"""On-device negative samplers (models/negatives.py): exclusion, distinctness and uniformity."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from orthoalign.models import negatives


def test_sample_excluding_is_uniform_over_allowed():
  hist = jnp.asarray(np.array([[0, 0, 2, 3, 5]], np.int32))
  draws = negatives.sample_excluding(
    jax.random.key(0),
    jnp.ones((1, 4000), jnp.int32),
    jnp.full((1, 4000), 7, jnp.int32),
    hist,
    tries=24,
  )
  counts = np.bincount(np.asarray(draws).ravel(), minlength=7)
  assert counts[[0, 2, 3, 5]].sum() == 0  # residual collision chance (1/2)**24 per draw
  # With the default 8 tries the documented residual p**8 (p = 1/2 here) shows up, and no more.
  draws = negatives.sample_excluding(
    jax.random.key(1), jnp.ones((1, 4000), jnp.int32), jnp.full((1, 4000), 7, jnp.int32), hist
  )
  assert np.isin(np.asarray(draws), [2, 3, 5]).mean() < 3 * 0.5**8
  assert np.all(np.abs(counts[[1, 4, 6]] / 4000 - 1 / 3) < 0.04)


@pytest.mark.parametrize("high", [400, 2**27])  # 2**27: too wide to pack, two-operand sort
def test_sample_distinct_excluding_draws_distinct_allowed_ids(high):
  rng = np.random.default_rng(0)
  hist = np.sort(rng.integers(0, 400, size=(16, 10)), axis=1).astype(np.int32)
  hist[:, -1] = high - 1 - np.arange(16)  # some history ids at the top of the range too
  hist.sort(axis=1)
  out = np.asarray(
    negatives.sample_distinct_excluding(jax.random.key(2), (16, 5), 3, high, hist, n=30)
  )
  assert out.shape == (16, 5, 30)
  assert out.min() >= 3 and out.max() < high
  for i in range(16):
    for t in range(5):
      assert len(set(out[i, t])) == 30
      assert not set(out[i, t]) & (set(hist[i]) - {0})


@pytest.mark.parametrize("high,n,extra", [(8, 3, 0), (17, 2, 2)])
def test_sample_distinct_excluding_is_a_uniform_subset(high, n, extra):
  """Ids 1..high-1 minus the history {2, 5}: every n-subset is equally likely and the first slot is
  uniform. high=8 takes the Gumbel-top-k path, high=17 (= 4 (n + extra) + 1) the rejection path,
  whose rows that ran out of spare draws (~1.4 % here) are left out: the failure event does not
  depend on which ids were drawn, so the other rows stay uniform.
  """
  hist = jnp.asarray([[0, 2, 5]], jnp.int32)
  out = np.asarray(
    negatives.sample_distinct_excluding(
      jax.random.key(3), (1, 30000), 1, high, hist, n=n, extra=extra
    )
  )[0]
  allowed = [v for v in range(1, high) if v not in (2, 5)]
  ok = np.isin(out, allowed).all(-1) & (np.diff(np.sort(out, -1), axis=-1) > 0).all(-1)
  assert ok.mean() > (0.999 if extra == 0 else 0.97)
  out = out[ok]
  subsets = {s: i for i, s in enumerate(itertools.combinations(allowed, n))}
  counts = np.bincount([subsets[tuple(sorted(r))] for r in out.tolist()], minlength=len(subsets))
  assert stats.chisquare(counts).pvalue > 1e-3
  first = np.bincount(out[:, 0], minlength=high)[allowed]
  assert stats.chisquare(first).pvalue > 1e-3


def test_sample_distinct_excluding_fills_with_rejected_draws_when_short():
  """Without spare draws, repeats remain (the documented failure mode of the rejection path)."""
  out = np.asarray(
    negatives.sample_distinct_excluding(
      jax.random.key(4), (1, 200), 1, 1001, jnp.zeros((1, 1), jnp.int32), n=60, extra=0
    )
  )[0]
  assert out.shape == (200, 60) and out.min() >= 1 and out.max() <= 1000
  assert (np.diff(np.sort(out, -1), axis=-1) == 0).any()  # ~1.8 repeated pairs per row
