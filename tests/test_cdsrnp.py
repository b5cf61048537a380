"""CDSRNP (specification-level reimplementation): windows, KL, episodes, leakage, GCA, training."""

import functools
import types

from conftest import require_data
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import cdsrnp as cdsrnp_config
from configs import tiny_cdsrnp
from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.config import validation
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load
from orthoalign.datasets import splits
from orthoalign.inputs import domain_windows
from orthoalign.models import cdsrnp
from orthoalign.models import gca as gca_lib
from orthoalign.train import build
from orthoalign.train import results
from orthoalign.train import task as task_lib

# ---------------------------------------------------------------------------------------------
# domain_windows


def _toy(merged_timeline=True):
  # nA = 5, nB = 4: A ids 1..5, B ids 6..9.
  seqs = [
    np.array([1, 6, 2, 7, 3, 8, 9]),  # training prefix (len - 2) = 1 6 2 7 3
    np.array([6, 7, 1, 8, 2]),  # prefix = 6 7 1
    np.array([2, 3, 4, 5, 1]),  # A only: prefix = 2 3 4
    np.array([2, 3]),
  ]  # too short: never trained or evaluated
  return dataset_lib.CDSRDataset.from_sequences("toy", 5, 4, seqs, merged_timeline=merged_timeline)


def test_train_windows_hand_worked():
  w = domain_windows.train_windows(_toy(), max_len=4, mixed=True)
  assert w["user"].tolist() == [0, 1, 2]
  assert w["overlapped"].tolist() == [True, True, False]
  # User 0, A items 1 2 3 at merged indices 0 2 4: every item is an input, its target the next A
  # item.
  np.testing.assert_array_equal(w["seq_a"][0], [0, 1, 2, 3])
  np.testing.assert_array_equal(w["pos_a"][0], [0, 2, 3, 0])
  np.testing.assert_array_equal(w["positions_a"][0], [0, 1, 2, 3])
  np.testing.assert_array_equal(w["time_a"][0], [-1, 0, 2, 4])
  # B items 6 7 (local 1 2) at indices 1 3.
  np.testing.assert_array_equal(w["seq_b"][0], [0, 0, 1, 2])
  np.testing.assert_array_equal(w["pos_b"][0], [0, 0, 2, 0])
  np.testing.assert_array_equal(w["time_b"][0], [-1, -1, 1, 3])
  np.testing.assert_array_equal(w["hist"][0], [1, 2, 3, 6, 7])
  # Mixed inputs = the prefix minus its last item; mix_idx points at the item just before a target.
  np.testing.assert_array_equal(w["seq_m"][0], [1, 6, 2, 7])
  np.testing.assert_array_equal(w["mix_idx_a"][0], [-1, 1, 3, -1])  # 6 before target 2, 7 before 3
  np.testing.assert_array_equal(w["mix_idx_b"][0], [-1, -1, 2, -1])  # 2 before target 7
  # User 1 (prefix 6 7 1): one A item, no A target.
  np.testing.assert_array_equal(w["seq_a"][1], [0, 0, 0, 1])
  np.testing.assert_array_equal(w["pos_a"][1], [0, 0, 0, 0])
  np.testing.assert_array_equal(w["time_b"][1], [-1, -1, 0, 1])
  np.testing.assert_array_equal(w["hist"][1], [0, 0, 1, 6, 7])
  # User 2 (A only): no B stream.
  np.testing.assert_array_equal(w["seq_a"][2], [0, 2, 3, 4])
  np.testing.assert_array_equal(w["pos_a"][2], [0, 3, 4, 0])
  assert not w["seq_b"][2].any()
  # A window shorter than the domain history keeps its most recent items.
  w2 = domain_windows.train_windows(_toy(), max_len=2)
  np.testing.assert_array_equal(w2["seq_a"][0], [2, 3])
  np.testing.assert_array_equal(w2["pos_a"][0], [3, 0])
  np.testing.assert_array_equal(w2["time_a"][0], [2, 4])
  np.testing.assert_array_equal(w2["positions_a"][0], [1, 2])


def test_eval_windows_hand_worked():
  ds = _toy()
  w = domain_windows.eval_windows(ds, splits.eval_split(ds, "test"), max_len=4, mixed=True)
  # User 0: input 1 6 2 7 3 8, target 9 (B).
  assert w["user"].tolist() == [0, 1, 2]
  assert (w["target"][0], w["domain"][0]) == (9, 1)
  np.testing.assert_array_equal(w["seq_a"][0], [0, 1, 2, 3])
  np.testing.assert_array_equal(w["seq_b"][0], [0, 1, 2, 3])
  np.testing.assert_array_equal(w["time_b"][0], [-1, 1, 3, 5])
  np.testing.assert_array_equal(w["seq_m"][0], [2, 7, 3, 8])
  np.testing.assert_array_equal(w["hist"][0], [1, 2, 3, 6, 7, 8])
  assert w["overlapped"].tolist() == [True, True, False]
  # Valid split: user 0's input is the training prefix.
  v = domain_windows.eval_windows(ds, splits.eval_split(ds, "valid"), max_len=4)
  assert (v["target"][0], v["domain"][0]) == (8, 1)
  np.testing.assert_array_equal(v["seq_b"][0], [0, 0, 1, 2])


def test_windows_without_a_merged_timeline():
  """Per-domain order is kept; every valid token gets time 0 so a GCA query sees every valid key."""
  with_t, without_t = _toy(True), _toy(False)
  assert domain_windows.has_merged_timeline(with_t) and not domain_windows.has_merged_timeline(
    without_t
  )
  a = domain_windows.train_windows(with_t, max_len=4)
  b = domain_windows.train_windows(without_t, max_len=4)
  for key in a:
    if not key.startswith("time_"):
      np.testing.assert_array_equal(a[key], b[key], err_msg=key)
  for s in ("a", "b"):
    np.testing.assert_array_equal(b[f"time_{s}"], np.where(b[f"seq_{s}"] > 0, 0, -1))
  e = domain_windows.eval_windows(without_t, splits.eval_split(without_t, "test"), max_len=4)
  np.testing.assert_array_equal(e["time_a"], np.where(e["seq_a"] > 0, 0, -1))
  with pytest.raises(ValueError, match="no merged timeline"):
    domain_windows.train_windows(without_t, max_len=4, mixed=True)
  # A dataset object without the field reads as a merged timeline.
  assert domain_windows.has_merged_timeline(types.SimpleNamespace(name="old"))


# ---------------------------------------------------------------------------------------------
# Model pieces


def test_kl_matches_numpy():
  r = np.random.default_rng(0)
  mu_q, lv_q = r.normal(size=(5, 7)), r.normal(size=(5, 7))
  mu_p, lv_p = r.normal(size=(1, 7)), r.normal(size=(1, 7))
  got = cdsrnp.module.gaussian_kl(*(jnp.asarray(x, jnp.float32) for x in (mu_q, lv_q, mu_p, lv_p)))
  var_q, var_p = np.exp(lv_q), np.exp(lv_p)
  # KL of diagonal Gaussians, dimension by dimension: log(s_p/s_q) + (s_q^2 + (m_q-m_p)^2)/(2 s_p^2)
  # - 1/2.
  want = np.sum(0.5 * np.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5, -1)
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)
  assert (
    float(cdsrnp.module.gaussian_kl(jnp.ones(3), jnp.zeros(3), jnp.ones(3), jnp.zeros(3))) == 0.0
  )


@functools.cache
def _setup(**model):
  config = tiny_cdsrnp.get_config()
  config.gca.positions = (0, 1)
  config.model.update(dropout=0.0, **model)
  ds = data_load.load(config.data)
  task = task_lib.bind(ds, config)
  params = jax.jit(task.model.init)(jax.random.key(0))
  return config, ds, task, params


@functools.cache
def _episode_fn(key):
  """A jitted episode of `key.module` with fixed rngs."""
  module = key.module

  @functools.partial(jax.jit, static_argnums=(5,), static_argnames=("train",))
  def run(params, query, support, support_ok, row_valid, psd, train=True):
    return module.apply(
      {"params": params},
      query,
      support,
      support_ok,
      row_valid,
      psd,
      train=train,
      rngs={"dropout": jax.random.key(3), "latent": jax.random.key(4)},
      method=cdsrnp.module.CDSRNP.episode,
    )

  return run


def _episode(module, *args, **kwargs):
  return _episode_fn(_ById(module))(*args, **kwargs)


class _ById:
  """Hashes an (unhashable) Flax module by identity, for the cache above."""

  def __init__(self, module):
    self.module = module

  def __hash__(self):
    return id(self.module)

  def __eq__(self, other):
    return self.module is other.module


def _rows(task, idx):
  return {k: jnp.asarray(np.asarray(task.train_data[k])[idx]) for k in task.train_data}


def _support(task, config, n=8):
  pool, _ = cdsrnp.inputs.support_sets(task.train_data, config.model, np.zeros(0, np.int64))
  return {k: jnp.asarray(v[:n]) for k, v in pool.items()}


def test_prior_equals_posterior_when_the_query_adds_nothing():
  config, _, task, params = _setup()
  single = np.nonzero(~task.train_data["overlapped"])[0][:12]
  overlapped = np.nonzero(task.train_data["overlapped"])[0]
  support = _support(task, config)
  ok, valid = jnp.ones(8, bool), jnp.ones(12, bool)
  # Single-domain queries (not admitted to Q+): no observed query pairs, so every posterior is the
  # prior.
  out = jax.device_get(
    _episode(task.model.module, params, _rows(task, single), support, ok, valid, False, train=False)
  )
  for stat in ("mu", "logvar"):
    q, p = out[f"{stat}_q"]["z"], out[f"{stat}_p"]["z"]
    np.testing.assert_allclose(q, np.broadcast_to(p, q.shape), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out["kl"], 0.0, atol=1e-5)
  # One overlapped query user: its own posterior is leave-one-out, so it equals the prior, while the
  # other query users' posteriors read its pair.
  rows = np.concatenate([overlapped[:1], single[1:]])
  out = jax.device_get(
    _episode(task.model.module, params, _rows(task, rows), support, ok, valid, False, train=False)
  )
  np.testing.assert_allclose(out["kl"][0], 0.0, atol=1e-5)
  assert np.all(out["kl"][1:] > 1e-7)
  # Padding rows are no query users: masking the overlapped row removes its pair again.
  out = jax.device_get(
    _episode(
      task.model.module,
      params,
      _rows(task, rows),
      support,
      ok,
      valid.at[0].set(False),
      False,
      train=False,
    )
  )
  np.testing.assert_allclose(out["kl"], 0.0, atol=1e-5)


def test_support_sets_hold_only_overlapped_training_users():
  # A user-level split: held-out users' whole sequences are never training data.
  r = np.random.default_rng(0)
  seqs, split = [], []
  for u in range(60):
    kind = u % 3  # overlapped, A only, B only
    n = int(r.integers(3, 9))
    pool = {0: np.arange(1, 21), 1: np.arange(1, 11), 2: np.arange(11, 21)}[kind]
    seqs.append(r.permutation(pool)[:n])
    split.append(
      dataset_lib.USER_TRAIN
      if u < 40
      else dataset_lib.USER_TEST
      if u % 2
      else dataset_lib.USER_VALID
    )
  ds = dataset_lib.CDSRDataset.from_sequences("split", 10, 10, seqs, user_split=split)
  config = tiny_cdsrnp.get_config()
  config.model.update(support_size=5, support_pool=0)
  train = domain_windows.train_windows(ds, config.model.max_len)
  train["person"] = cdsrnp.inputs.person_ids(ds)[train["user"]]
  none = np.zeros(0, np.int64)
  pool, eval_support = cdsrnp.inputs.support_sets(train, config.model, none)
  lengths = splits.train_lengths(ds)
  both = {
    u
    for u in range(ds.num_users)
    if lengths[u] and len(set(ds.domains[ds.offsets[u] : ds.offsets[u] + lengths[u]])) == 2
  }
  assert set(pool["person"].tolist()) == both and all(u < 40 for u in both)
  for rows in (pool, eval_support):
    assert np.all((rows["seq_a"] > 0).any(1) & (rows["seq_b"] > 0).any(1))
  assert len(eval_support["seq_a"]) == 5
  # Eval support rows are pool rows, drawn reproducibly from the seed.
  again = cdsrnp.inputs.support_sets(train, config.model, none)[1]
  np.testing.assert_array_equal(again["seq_a"], eval_support["seq_a"])
  # An episode's draw: distinct pool rows; batch users are dropped from it.
  batch = {"person": jnp.asarray(pool["person"][:3]), "row_valid": jnp.asarray([True, True, False])}
  for seed in range(5):
    support, ok = cdsrnp.loss.draw_support(jax.random.key(seed), pool, 8, batch)
    users = np.asarray(support["person"])
    assert len(set(users.tolist())) == 8 and set(users.tolist()) <= both
    np.testing.assert_array_equal(np.asarray(ok), ~np.isin(users, pool["person"][:2]))
  capped = config.model.copy_and_resolve_references()
  capped.support_pool = 4
  assert len(cdsrnp.inputs.support_sets(train, capped, none)[0]["person"]) == 4


def test_rows_of_one_person_never_meet_in_a_support_set_or_posterior():
  """The open-world CSVs repeat a user (same lists, the other target domain): such rows are one
  person, kept out of each other's episode support set and posterior, and a held-out person's
  training rows are kept out of the evaluation support set.
  """
  seqs = [[1, 2, 11, 12], [11, 12, 1, 2], [3, 4, 13, 14], [5, 6, 15, 16], [13, 14, 3, 4]]
  ds = dataset_lib.CDSRDataset.from_sequences(
    "people",
    10,
    10,
    seqs,
    user_split=[0, 0, 0, 0, dataset_lib.USER_TEST],
    user_ids=np.array([7, 7, 8, 9, 8]),
  )
  person = cdsrnp.inputs.person_ids(ds)
  assert person[0] == person[1] and person[2] == person[4] and len(set(person.tolist())) == 3
  config = tiny_cdsrnp.get_config()
  config.model.update(support_size=4, support_pool=0)
  train = domain_windows.train_windows(ds, config.model.max_len)
  train["person"] = person[train["user"]]
  pool, eval_support = cdsrnp.inputs.support_sets(train, config.model, person[[4]])
  # Person 8 (user id 8) has a test row: its training row (items 3, 4) is no evaluation support row.
  assert len(pool["person"]) == 4 and len(eval_support["seq_a"]) == 3
  assert not np.any(eval_support["seq_a"] == 3)
  batch = {"person": jnp.asarray(pool["person"][:1]), "row_valid": jnp.asarray([True])}
  support, ok = cdsrnp.loss.draw_support(jax.random.key(0), pool, 4, batch)
  np.testing.assert_array_equal(np.asarray(ok), np.asarray(support["person"]) != pool["person"][0])


def test_evaluation_never_samples():
  """tables_fn + eval_fn read no rng (no random primitive in their program); two evaluations agree
  exactly; and the evaluation z is the prior mean of the frozen support set.
  """
  _, _, task, params = _setup()
  batch = {k: jnp.asarray(v[:16]) for k, v in task.eval_data["valid"].items()}
  tables_fn = jax.jit(lambda p: task.model.tables(p, task.model.frozen))
  scores = jax.jit(lambda p, t: task.model.score(p, task.model.frozen, t, batch).sampled_scores)
  program = str(
    jax.make_jaxpr(lambda p: scores(p, task.model.tables(p, task.model.frozen)))(params)
  )
  assert not any(
    name in program for name in ("random_bits", "random_seed", "random_wrap", "threefry")
  )
  tables = tables_fn(params)
  first, second = scores(params, tables), scores(params, tables_fn(params))
  np.testing.assert_array_equal(np.asarray(first), np.asarray(second))
  # The latent enters the scores, as the prior mean.
  summary, out_tables = tables
  shifted = dict(summary, mu_p={k: v + 1.0 for k, v in summary["mu_p"].items()})
  assert not np.allclose(np.asarray(scores(params, (shifted, out_tables))), np.asarray(first))


@pytest.mark.parametrize(
  "model",
  [
    dict(),
    dict(pair_y="next_item", posterior_single_domain=True, latent="directional", adapt="film"),
  ],
)
def test_own_target_never_reaches_own_score_or_latent(model):
  """Perturbing a query user's own targets leaves its scores (before the target) and its latent
  unchanged, while the other query users' latents move (the target does feed the episode).
  """
  config, _, task, params = _setup(**model)
  data = task.train_data
  rows = np.nonzero(data["overlapped"] & ((data["seq_a"] > 0).sum(1) >= 4))[0][:12]
  query = _rows(task, rows)
  support = _support(task, config)
  ok, valid = jnp.ones(8, bool), jnp.ones(len(rows), bool)
  psd = bool(config.model.posterior_single_domain)
  base = jax.device_get(_episode(task.model.module, params, query, support, ok, valid, psd))
  na = task.num_items_a
  for j in (-1, -2):  # the last A item (final A target), then an earlier one
    changed = dict(query)
    new_item = int(query["seq_a"][0, j]) % na + 1
    changed["seq_a"] = query["seq_a"].at[0, j].set(new_item)
    changed["pos_a"] = query["pos_a"].at[0, j - 1].set(new_item)  # it is position j-1's target
    out = jax.device_get(_episode(task.model.module, params, changed, support, ok, valid, psd))
    # Row 0's user vectors at the positions up to the one predicting the changed item.
    np.testing.assert_allclose(out["v_a"][0, :j], base["v_a"][0, :j], atol=1e-6)
    t = int(query["time_a"][0, j])
    early_b = np.asarray(query["time_b"][0]) < t
    np.testing.assert_allclose(out["v_b"][0][early_b], base["v_b"][0][early_b], atol=1e-6)
    for name in base["mu_q"]:
      np.testing.assert_allclose(out["mu_q"][name][0], base["mu_q"][name][0], atol=1e-6)
      np.testing.assert_allclose(out["logvar_q"][name][0], base["logvar_q"][name][0], atol=1e-6)
      np.testing.assert_allclose(out["z"][name][0], base["z"][name][0], atol=1e-6)
    moved = max(np.abs(out["mu_q"][n][1:] - base["mu_q"][n][1:]).max() for n in base["mu_q"])
    assert moved > 1e-6


@pytest.mark.parametrize("layernorm", ["none", "post"])
def test_single_domain_rows_leave_the_gca_cell_unchanged(layernorm):
  if layernorm == "none":
    _, _, task, params = _setup()  # the default cell
  else:
    config = tiny_cdsrnp.get_config()
    config.gca.update(positions=(0,), layernorm=layernorm)
    task = task_lib.bind(data_load.load(config.data), config)
    params = jax.jit(task.model.init)(jax.random.key(0))
  data = task.train_data
  rows = np.concatenate(
    [np.nonzero(~data["overlapped"])[0][:4], np.nonzero(data["overlapped"])[0][:4]]
  )
  batch = _rows(task, rows)
  r = np.random.default_rng(0)
  h = {
    s: jnp.asarray(r.normal(size=batch[f"seq_{s}"].shape + (16,)), jnp.float32)
    * (batch[f"seq_{s}"] > 0)[..., None]
    for s in ("a", "b")
  }

  def cross(module, h, rows):
    cells = {}
    new = gca_lib.exchange(module.cells, 0, h, rows, train=False, out=cells)
    return {**h, **new}, cells

  apply = jax.jit(lambda p, h, b: task.model.module.apply({"params": p}, h, b, method=cross))
  new, cells = jax.device_get(apply(params, h, batch))
  single = ~np.asarray(data["overlapped"][rows])
  for s in ("a", "b"):
    np.testing.assert_array_equal(new[s][single], np.asarray(h[s])[single])  # exactly X
    assert not np.allclose(new[s][~single], np.asarray(h[s])[~single])
  for name in ("gca0_A", "gca0_B"):
    assert not cells[name]["x_mask"][single].any()  # excluded from the alignment statistics


def test_no_timeline_lets_every_query_see_every_key():
  """On data without a merged timeline every valid token of an overlapped row saw a key; with the
  same sequences on a timeline, tokens earlier than the other domain's first item did not.
  """
  # nA = 8 (ids 1..8), nB = 6 (ids 9..14).
  seqs = [np.array([1, 2, 3, 9, 10, 4, 11, 5, 12]), np.array([9, 10, 1, 11, 2, 3, 12, 4])]
  config = tiny_cdsrnp.get_config()
  config.gca.positions = (0,)
  config.model.update(support_size=2, max_len=8)
  config.eval.num_negatives = 1
  seen = {}
  for timeline in (True, False):
    ds = dataset_lib.CDSRDataset.from_sequences("t", 8, 6, seqs, merged_timeline=timeline)
    task = task_lib.bind(ds, config)
    params = jax.jit(task.model.init)(jax.random.key(0))
    batch = {k: jnp.asarray(v) for k, v in task.train_data.items()}
    out = jax.device_get(
      jax.jit(lambda p, b: task.model.module.apply({"params": p}, b, train=False))(params, batch)
    )
    seen[timeline] = out["cells"]["gca0_A"]["x_mask"], np.asarray(batch["seq_a"]) > 0
  mask, valid = seen[False]
  np.testing.assert_array_equal(mask, valid)
  mask, valid = seen[True]
  assert (valid & ~mask).any()


@pytest.mark.slow  # ~45 s with a cold compilation cache on a busy 2-core CPU (8 s warm)
def test_all_options_train_and_differ_from_the_default():
  """Every non-default choice at once (mixed encoder, directional latents, attention pooling, FiLM
  with memory, next-item pairs, single-domain posterior users, linear heads, sampled loss): finite
  loss and a gradient for every parameter.
  """
  config, _, task, params = _setup(
    mixed_encoder=True,
    latent="directional",
    pooling="attention",
    adapt="film",
    memory_slots=3,
    pair_y="next_item",
    posterior_single_domain=True,
    scoring="linear",
    loss="sampled",
  )
  batch = _rows(task, np.arange(24))
  batch["row_valid"] = jnp.ones(24, bool)
  (loss, metrics), grads = jax.jit(jax.value_and_grad(task.model.loss, has_aux=True))(
    params, task.model.frozen, batch, jax.random.key(1)
  )
  assert np.isfinite(float(loss)) and float(metrics["kl"]) > 0
  flat = jax.tree_util.tree_flatten_with_path(grads)[0]
  dead = [jax.tree_util.keystr(p) for p, g in flat if not bool(jnp.any(g != 0))]
  assert not dead, dead
  assert {"memory_a", "out_bias_b", "item_emb_m", "head_z_ab", "head_z_ba"} <= set(params)


# ---------------------------------------------------------------------------------------------
# Config and end to end


def test_config_validates_and_documents_its_command():
  config = cdsrnp_config.get_config()
  validation.validate(config)
  assert "python -m orthoalign.main --config=configs/cdsrnp.py" in cdsrnp_config.__doc__
  assert "specification-level reimplementation" in config.model.label
  assert "SPECIFICATION-LEVEL REIMPLEMENTATION" in cdsrnp.__doc__
  assert config.model.name == "cdsrnp" and tuple(config.sweep.model) == tuple(
    cdsrnp.Baseline.REPLICA_HPARAMS
  )
  for key, value, allowed in (
    ("model.adapt", "mlp", "attention"),
    ("model.latent", "both", "shared"),
    ("gca.positions", (3,), "0, 1, 2"),
    ("gca.kv", "mixed", "other"),
    ("model.support_size", 0, ">= 1"),
  ):
    bad = cdsrnp_config.get_config()
    node, leaf = dicts.parent_of(bad, key), key.rsplit(".", 1)[-1]
    node[leaf] = value
    with pytest.raises(errors.ConfigError, match=f"{key}.*{allowed}"):
      validation.validate(bad)


def test_mixed_encoder_needs_a_merged_timeline():
  config = tiny_cdsrnp.get_config()
  config.model.mixed_encoder = True
  with pytest.raises(errors.ConfigError, match="model.mixed_encoder"):
    task_lib.bind(_toy(False), config)


def _valid_ndcg(run, params):
  sums = jax.device_get(run.eval_fn(params, run.frozen, run.eval_data["valid"]))
  return results.finalize_split(sums, 0, "valid")["valid/sampled/all/ndcg@10"]


@pytest.mark.slow  # ~60 s with a cold compilation cache on a busy 2-core CPU (14 s warm)
def test_learns_end_to_end():
  """Generic trainer: validation NDCG@10 after a few epochs beats the untrained one's."""
  config = tiny_cdsrnp.get_config()
  config.gca.positions = (0,)
  config.train.num_devices = 1
  config.model.update(width=32, latent_dim=16)
  config.train.learning_rate = 3e-3
  run = build.setup(config)
  before = _valid_ndcg(run, run.state.params)
  state = run.state
  for epoch in range(1, 9):
    state, metrics = run.epoch_fn(state, run.train_data, run.frozen, run.epoch_arg(epoch))
  assert np.all(np.isfinite(jax.device_get(metrics["loss"])))
  after = _valid_ndcg(run, state.params)
  assert after > before + 0.02, (before, after)


def test_query_rows_of_one_person_do_not_feed_each_others_posterior():
  config, _, task, params = _setup()
  rows = np.nonzero(task.train_data["overlapped"])[0][:2]
  support = _support(task, config)
  ok, valid = jnp.ones(8, bool), jnp.ones(2, bool)

  def kl(person):
    out = task.model.module.apply(
      {"params": params},
      _rows(task, rows),
      support,
      ok,
      valid,
      False,
      jnp.asarray(person),
      train=False,
      method=cdsrnp.module.CDSRNP.episode,
    )
    return np.asarray(out["kl"])

  np.testing.assert_allclose(kl([5, 5]), 0.0, atol=1e-5)  # one person: each posterior = prior
  assert np.all(kl([5, 6]) > 1e-7)  # two people read each other's pair


@pytest.mark.parametrize(
  "name,fmt,negatives",
  [
    ("imvae-phone-elec", "imvae", 999),
    ("llmcdsr-food-kitchen", "llmcdsr", 100),
    ("abxi-afk", "abxi", 999),
  ],
)
def test_builds_on_the_real_datasets(name, fmt, negatives, tmp_path):
  """configs/cdsrnp.py's data and the two other real sets: support sets of overlapped training
  users, user groups in every split, and (open-world data) the seen / unseen groups.
  """
  path = require_data(name)
  config = cdsrnp_config.get_config()
  config.data.update(format=fmt, path=str(path), cache_dir=str(tmp_path))
  if fmt != "imvae":
    config.data.reader_options = ml_collections.ConfigDict()
  config.eval.num_negatives = negatives
  ds = data_load.load(config.data)
  task = task_lib.bind(ds, config)
  assert 0 < task.train_data["overlapped"].mean() <= 1
  for split in task.eval_data.values():
    ov, nov = split["group/overlapped"], split["group/non-overlapped"]
    assert np.all(ov ^ nov) and split["cand"].shape[1] == negatives + 1
  test = task.eval_data["test"]
  if fmt == "imvae":
    assert test["group/non-overlapped"].sum() > 1000 and test["group/seen"].sum() == 312
  if fmt == "llmcdsr":
    assert not test["group/non-overlapped"].any()  # its held-out users are all overlapped
