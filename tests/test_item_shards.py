"""Item tables and full-catalogue scores split over the mesh's "model" axis (train.item_shards).

conftest.py gives this process four fake CPU devices.
"""

from conftest import tiny_config
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.bench import sharded_eval
from orthoalign.config import validation
from orthoalign.datasets import synthetic
from orthoalign.metrics import ranking
from orthoalign.train import build
from orthoalign.train import item_shards
from orthoalign.train import loop
from orthoalign.train import sharding


def _explicit_mask(target, lo, hi, seen, n):
  ids = np.arange(n)[None, :]
  mask = (ids >= lo[:, None]) & (ids <= hi[:, None]) & (ids != target[:, None])
  for b in range(len(target)):
    mask[b, seen[b]] = False
  return mask


@pytest.mark.parametrize("sharded", [False, True])
def test_catalogue_counts_equal_the_explicit_mask_under_every_rule(sharded):
  rng = np.random.default_rng(0)
  b, n, length = 16, 101, 9
  # Few distinct values (many ties), NaNs on both sides, repeated and padding history ids.
  scores = rng.integers(0, 4, (b, n)).astype(np.float32)
  scores[rng.random((b, n)) < 0.05] = np.nan
  is_b = rng.random(b) < 0.5
  lo, hi = np.where(is_b, 51, 1), np.where(is_b, 100, 50)
  target = rng.integers(lo, hi + 1)
  seen = rng.integers(0, n, (b, length))
  seen[:, :2] = 0
  seen[:, 2] = seen[:, 3]
  seen[:, 4] = target
  want = ranking.full_counts(
    jnp.asarray(scores[np.arange(b), target]),
    jnp.asarray(scores),
    jnp.asarray(_explicit_mask(target, lo, hi, seen, n)),
  )
  args = [jnp.asarray(x) for x in (scores, target, lo, hi, seen)]
  if sharded:  # the item axis split over the 4 devices (101 columns: uneven inside jit)
    mesh = sharding.make_mesh(4, item_shards=4)
    fn = jax.jit(
      lambda s, *rest: ranking.catalogue_counts(
        jax.lax.with_sharding_constraint(s, NamedSharding(mesh, P(None, "model"))), *rest
      )
    )
  else:
    fn = jax.jit(ranking.catalogue_counts)
  got = fn(*args)
  for w, g in zip(want, got):
    np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
  for rule in ranking.TIES:
    m_want, m_got = (ranking.metrics_from_counts(*c, ties=rule) for c in (want, got))
    for k in m_want:
      np.testing.assert_array_equal(np.asarray(m_got[k]), np.asarray(m_want[k]))


def test_mesh_and_config_errors():
  mesh = sharding.make_mesh(4, item_shards=2)
  assert dict(mesh.shape) == {"data": 2, "model": 2} and sharding.data_size(mesh) == 2
  with pytest.raises(ValueError, match="train.item_shards=3 must be >= 1 and divide the 4 devices"):
    sharding.make_mesh(4, item_shards=3)
  cfg = tiny_config(**{"train.item_shards": 0})
  with pytest.raises(errors.ConfigError, match="train.item_shards=0 must be an int >= 1"):
    validation.validate(cfg)
  cfg = tiny_config(**{"train.num_devices": 4, "train.item_shards": 3})
  with pytest.raises(errors.ConfigError, match="item_shards=3 must be >= 1 and divide the 4"):
    build.setup(cfg)


def _trainable_tables(**overrides):
  """tiny LLM4CDSR, trainable ID and LLM tables: each item table is a param with Adam moments."""
  return tiny_config(**{"model.local_emb": False, "model.freeze_global": False, **overrides})


def _assert_same_results(sums_one, sums_four, cases_one, cases_four):
  """One and four item shards rank every case alike, up to rare near-ties (< 1 % of cases), and
  give the same metric sums up to float32 summation order (which XLA picks per program and
  instruction set) and the near-ties that ranked otherwise.
  """
  flips = 0
  for protocol, c in sharded_eval.rank_mismatches(cases_one, cases_four).items():
    assert c["cases"] == int(sums_one["full/all/count"][0]) > 0
    assert c["mismatches"] == 0, (protocol, c)
    assert c["near_ties"] < 0.01 * c["cases"], (protocol, c)  # else the check would be vacuous
    flips += c["near_tie_flips"]
  assert sharded_eval.sums_differ(sums_one, sums_four, flipped_cases=flips) == []


def test_sums_differ_allows_float32_summation_order_only():
  sums = {
    "full/all/ndcg@10": np.float32([21.029654]),
    "full/all/count": np.float32([160.0]),
    "align/gca0_A/cos_sum": np.float32([-3.0]),
    "align/gca0_A/abs_cos_sum": np.float32([90.0]),
    "align/gca0_A/count": np.int32([400]),
  }
  ulp = {**sums, "full/all/ndcg@10": np.float32([21.029655])}  # one ulp: another order
  assert sharded_eval.sums_differ(sums, ulp) == []
  rank = {**sums, "full/all/ndcg@10": np.float32([21.029654 + 0.01])}  # one case's rank moved
  assert sharded_eval.sums_differ(sums, rank) == ["full/all/ndcg@10"]
  assert sharded_eval.sums_differ(sums, rank, flipped_cases=1) == []  # ... at a near-tie
  # A signed sum is bounded by its |cos| sum: 2 * 400 * 2^-24 * 90 = 4.3e-3.
  assert (
    sharded_eval.sums_differ(sums, {**sums, "align/gca0_A/cos_sum": np.float32([-3.004])}) == []
  )
  assert sharded_eval.sums_differ(sums, {**sums, "align/gca0_A/cos_sum": np.float32([-3.01])})
  assert sharded_eval.sums_differ(sums, {**sums, "full/all/count": np.float32([159.0])})


def test_sharded_evaluation_equals_unsharded_and_splits_the_arrays():
  config = _trainable_tables()
  one, sums_one, cases_one = sharded_eval.measure(config, 1, passes=1, with_cases=True)
  four, sums_four, cases_four = sharded_eval.measure(config, 4, passes=1, with_cases=True)
  _assert_same_results(sums_one, sums_four, cases_one, cases_four)
  # A device holds a quarter of each item table and of its two Adam moments (tiny: 60 + 50 items,
  # hidden 16, LLM table width 32), up to the padding rows; the rest of the state is replicated.
  tables = 3 * 4 * (111 * 32 + 61 * 16 + 51 * 16) / 2**20
  saved = one["mib_per_device"]["state"] - four["mib_per_device"]["state"]
  assert abs(saved - 0.75 * tables) < 0.05 * tables, (saved, tables)
  assert four["devices"] == 4 and one["devices"] == 1


def test_padding_rows_stay_zero_and_the_model_sees_its_own_shapes():
  config = _trainable_tables(**{"train.num_devices": 4, "train.item_shards": 4})
  run = build.setup(config)
  na, nb = run.task.num_items_a, run.task.num_items_b  # 60 + 50: 61, 51, 111 rows
  assert item_shards.padded_rows(run.task, 4) == (64, 52, 112)
  state, _ = run.epoch_fn(run.state, run.train_data, run.frozen, run.epoch_arg(1))
  params = jax.device_get(state.params)
  assert params["item_emb_a"].shape == (1, 64, 16)
  np.testing.assert_array_equal(params["item_emb_a"][:, na + 1 :], 0.0)  # padding: zero grads
  np.testing.assert_array_equal(params["item_emb_llm"][:, na + nb + 1 :], 0.0)
  assert np.abs(params["item_emb_a"][:, 1 : na + 1]).sum() > 0
  spec = state.params["item_emb_a"].sharding.spec
  assert spec == P(None, "model")
  assert run.padded.params["item_emb_a"].shape == (na + 1, 16)


@pytest.mark.slow  # ~1.5 min: two set-ups and compilations per model
@pytest.mark.parametrize("name", ["tiny_abxi", "tiny_cdsrnp", "tiny_sasrec"])
def test_sharded_evaluation_equals_unsharded_other_models(name):
  import importlib

  config = importlib.import_module(f"configs.{name}").get_config()
  config.gca.positions = (0,)
  _, sums_one, cases_one = sharded_eval.measure(config, 1, passes=1, with_cases=True)
  _, sums_four, cases_four = sharded_eval.measure(config, 4, passes=1, with_cases=True)
  _assert_same_results(sums_one, sums_four, cases_one, cases_four)


@pytest.mark.slow  # ~1 min: two short training runs
def test_sharded_training_run_matches_unsharded(tmp_path):
  overrides = {"train.max_epochs": 2}
  rows_one = loop.train_and_evaluate(_trainable_tables(**overrides), str(tmp_path / "one"))
  rows_two = loop.train_and_evaluate(
    _trainable_tables(**overrides, **{"train.num_devices": 4, "train.item_shards": 2}),
    str(tmp_path / "two"),
  )
  a, b = rows_one[0], rows_two[0]
  assert a["params/total"] == b["params/total"] and a["params/trainable"] == b["params/trainable"]
  assert b["num_devices"] == 4
  for key in ("test/full/all/ndcg@10", "test/sampled/all/ndcg@10", "test/full/all/auc"):
    assert abs(a[key] - b[key]) < 2e-3, (key, a[key], b[key])  # float sums in another order


def test_light_generator_sizes_no_repeats_and_determinism():
  cfg = synthetic.from_config_dict(
    {
      "num_users": 200,
      "num_items_a": 30,
      "num_items_b": 40,
      "max_length": 25,
      "mean_length": 12.0,
      "planted": False,
    }
  )
  ds = synthetic.generate(cfg)
  again = synthetic.generate(cfg)
  np.testing.assert_array_equal(ds.items, again.items)
  assert ds.item_text_emb.shape == (71, cfg.text_dim)
  for u in range(ds.num_users):
    items = ds.items[ds.offsets[u] : ds.offsets[u + 1]]
    assert len(set(items.tolist())) == len(items)
  a = ds.items[ds.domains == 0]
  b = ds.items[ds.domains == 1]
  assert a.min() >= 1 and a.max() <= 30 and b.min() >= 31 and b.max() <= 70
  with pytest.raises(Exception, match="expected True or False"):
    synthetic.from_config_dict({"planted": 0})
