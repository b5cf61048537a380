"""Splits of different sizes evaluate in one compiled program (build.same_batch_count)."""

from conftest import tiny_config
import jax
import numpy as np
import pytest

from orthoalign.train import build
from orthoalign.train import step as step_lib

BUCKETS = {"train.length_buckets": (4,), "model.mask_padding_keys": True}


@pytest.fixture(scope="module", params=[{}, BUCKETS], ids=["plain", "length buckets"])
def bucketed_run(request):
  config = tiny_config(**{"eval.batch_size": 8, **request.param})
  return build.setup(config), build.bucket_lengths(config)


def _splits(run, buckets):
  """The validation cases whole and cut to their first 19 (3 batches of 8 against more)."""
  full = run.task.eval_data["valid"]
  short = {k: v[:19] for k, v in full.items()}
  width = full["hist"].shape[1]
  return {
    s: build.eval_batches(a, 8, width, buckets, run.task)
    for s, a in (("full", full), ("short", short))
  }


def test_padded_splits_give_the_sums_of_their_own_batches_in_one_program(bucketed_run):
  run, buckets = bucketed_run
  natural = _splits(run, buckets)
  assert len(natural["short"]["weight"]) == 3 < len(natural["full"]["weight"])
  padded = build.same_batch_count(natural)
  assert {len(d["weight"]) for d in padded.values()} == {len(natural["full"]["weight"])}
  assert int(padded["short"][step_lib.NUM_BATCHES_KEY]) == 3
  params = run.state.params
  kw = {"task": run.padded.task, "mesh": run.mesh, "buckets": buckets}
  plain = jax.jit(jax.vmap(lambda p, d: step_lib.evaluate(p, run.frozen, d, **kw), (0, None)))
  for split in ("short", "full"):
    got = jax.device_get(run.eval_fn(params, run.frozen, padded[split]))
    want = jax.device_get(plain(params, natural[split]))
    assert got.keys() == want.keys()
    for key in want:  # the same batches summed in the same order
      np.testing.assert_allclose(got[key], want[key], rtol=1e-6, atol=1e-6, err_msg=key)
  assert run.eval_fn._cache_size() == 1


def test_splits_of_one_batch_count_stay_as_they_are(bucketed_run):
  natural = _splits(*bucketed_run)
  same = {"valid": natural["full"], "test": natural["full"]}
  assert build.same_batch_count(same) is same
