"""LLM4CDSR: loss against numpy, quirks, causality, sampling, counts, text-less items, configs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import llm4cdsr as llm4cdsr_config
from configs import llm4cdsr_afk as llm4cdsr_afk_config
from configs import llm4cdsr_fk as llm4cdsr_fk_config
from orthoalign import errors
from orthoalign.config import upgrade
from orthoalign.config import validation
from orthoalign.datasets import synthetic
from orthoalign.models import llm4cdsr
from orthoalign.train import state as state_lib
from orthoalign.train import task as task_lib


def small_config(**model):
  cfg = llm4cdsr_config.get_config()
  cfg.data.synthetic.update(
    num_users=120,
    num_items_a=60,
    num_items_b=50,
    mean_length=12,
    max_length=30,
    text_dim=48,
    seed=3,
  )
  cfg.model.update(width=16, max_len=12, global_dim=32, **model)
  cfg.eval.num_negatives = 20
  cfg.gca.positions = ()  # the plain baseline unless a test adds cells
  return cfg


def build(cfg):
  ds = synthetic.generate(synthetic.from_config_dict(cfg.data.synthetic))
  return ds, task_lib.bind(ds, cfg)


def _batch(task, rows):
  b = {k: jnp.asarray(v[rows]) for k, v in task.train_data.items()}
  b["row_valid"] = jnp.ones(len(rows), bool)
  return b


def test_rec_loss_matches_numpy():
  cfg = small_config(alpha=0.0, beta=0.0)
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  batch = _batch(task, np.arange(8))
  rng = jax.random.key(7)
  loss, metrics = task.model.loss(params, task.model.frozen, batch, rng)
  # Recompute with the same randomness, by hand.
  r_drop, r_neg, _ = jax.random.split(rng, 3)
  module = task.model.module
  hp = llm4cdsr.loss.Hyper(module.config, ds.num_items_a, ds.num_items_b)
  negs = jax.device_get(llm4cdsr.loss.sample_train_negatives(r_neg, batch, hp))
  var = {"params": params, **task.model.frozen}
  out = jax.device_get(module.apply(var, batch, train=True, rngs={"dropout": r_drop}))
  mix_t, a_t, b_t = jax.device_get(module.apply(var, method=llm4cdsr.module.LLM4CDSR.item_tables))
  b = jax.device_get(batch)
  f_m = out["f_m"]
  mix_pos = np.einsum("bld,bld->bl", f_m, mix_t[b["pos"]])
  mix_neg = np.einsum("bld,bld->bl", f_m, mix_t[negs["neg"]])
  total = 0.0
  softplus = lambda z: np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)
  for name, table in (("a", a_t), ("b", b_t)):
    f = out[f"f_{name}"]
    per = []
    for i in range(8):
      for s in range(12):
        if b[f"pos_{name}"][i, s] == 0:
          continue
        t = b[f"mix_idx_{name}"][i, s]
        p = f[i, s] @ table[b[f"pos_{name}"][i, s]] + mix_pos[i, t]
        n = f[i, s] @ table[negs[f"neg_{name}"][i, s]] + mix_neg[i, t]
        per.append(softplus(-p) + softplus(n))
    total += np.mean(per)
  np.testing.assert_allclose(float(loss), total, rtol=2e-4)
  assert set(metrics) == {"rec_loss", "loss"}


def test_soft_clip_loss_matches_original_formula_and_masks():
  r = np.random.default_rng(0)
  x, y = r.normal(size=(6, 4)).astype(np.float32), r.normal(size=(6, 4)).astype(np.float32)

  def reference(x, y, tau):
    logits = x @ y.T / tau
    sim = (y @ y.T + x @ x.T) / 2 * tau
    t = np.exp(sim - sim.max(1, keepdims=True))
    t /= t.sum(1, keepdims=True)
    ls = lambda z: (
      z
      - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
      - z.max(1, keepdims=True)
    )
    xl = -(t * ls(logits)).sum(1)
    yl = -(t.T * ls(logits.T)).sum(1)
    return ((xl + yl) / 2).mean()

  got = llm4cdsr.loss.soft_clip_loss(jnp.asarray(x), jnp.asarray(y), jnp.ones(6, bool), 0.5)
  np.testing.assert_allclose(float(got), reference(x, y, 0.5), rtol=1e-5)
  valid = np.array([1, 0, 1, 1, 0, 1], bool)
  got = llm4cdsr.loss.soft_clip_loss(jnp.asarray(x), jnp.asarray(y), jnp.asarray(valid), 1.0)
  np.testing.assert_allclose(float(got), reference(x[valid], y[valid], 1.0), rtol=1e-5)


def test_negatives_avoid_history_and_respect_domains():
  cfg = small_config()
  ds, task = build(cfg)
  batch = _batch(task, np.arange(32))
  hp = llm4cdsr.loss.Hyper(
    llm4cdsr.Config(mixed_neg_domain="target"), ds.num_items_a, ds.num_items_b
  )
  negs = jax.device_get(llm4cdsr.loss.sample_train_negatives(jax.random.key(1), batch, hp))
  hist = np.asarray(batch["hist"])
  na, nb = ds.num_items_a, ds.num_items_b
  for i in range(32):
    seen = set(hist[i]) - {0}
    assert not seen & set(negs["neg_a"][i].tolist())
    assert not seen & {int(v) + na for v in negs["neg_b"][i]}
    assert not seen & set(negs["neg"][i].tolist())
  assert negs["neg_a"].min() >= 1 and negs["neg_a"].max() <= na - 1  # exclusive upper (quirk)
  assert negs["neg_b"].min() >= 1 and negs["neg_b"].max() <= nb - 1
  pos = np.asarray(batch["pos"])
  valid = pos > 0
  # mixed_neg_domain="target": negatives share the target's domain.
  np.testing.assert_array_equal((negs["neg"] > na)[valid], (pos > na)[valid])


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_causality_flag(causal):
  cfg = small_config(causal=causal)
  ds, task = build(cfg)
  module = task.model.module
  assert module.config.causal == causal
  params = task.model.init(jax.random.key(0))
  var = {"params": params, **task.model.frozen}
  batch = _batch(task, np.arange(4))
  rows = np.nonzero(np.asarray(batch["seq"][:, 3]) > 0)[0]
  out = module.apply(var, batch, train=False)
  changed = dict(batch)
  changed["seq"] = batch["seq"].at[:, -1].set(1)  # perturb the latest mixed input
  out2 = module.apply(var, changed, train=False)
  early_same = np.allclose(out["f_m"][rows, :-1], out2["f_m"][rows, :-1], atol=1e-5)
  assert early_same == causal  # the original (non-causal) leaks the future into earlier tokens


def test_gca_cross_attention_is_causal_in_merged_time():
  cfg = small_config(causal=True)
  cfg.gca.update(positions=(0, 1), gate="scalar", act="sigmoid", layernorm="none", heads=1)
  cfg.gca.update(causal=True, dropout=0.0, gate_init=0.0)
  ds, task = build(cfg)
  module = task.model.module
  params = task.model.init(jax.random.key(0))
  var = {"params": params, **task.model.frozen}
  batch = _batch(task, np.arange(16))
  out = jax.device_get(module.apply(var, batch, train=False))
  assert set(out["cells"]) == {"gca0_A", "gca0_B", "gca1_A", "gca1_B"}
  # Perturb every B token after merged time t*; A tokens at time <= t* must not change.
  t_star = 4
  changed = dict(batch)
  late = np.asarray(batch["time_b"]) > t_star
  changed["seq_b"] = jnp.where(late, 1, batch["seq_b"])
  out2 = jax.device_get(module.apply(var, changed, train=False))
  early_a = (np.asarray(batch["time_a"]) <= t_star) & (np.asarray(batch["seq_a"]) > 0)
  assert early_a.sum() > 5 and late.sum() > 5
  np.testing.assert_allclose(out["f_a"][early_a], out2["f_a"][early_a], atol=1e-5)
  later_a = (np.asarray(batch["time_a"]) > t_star) & (np.asarray(batch["seq_a"]) > 0)
  assert not np.allclose(out["f_a"][later_a], out2["f_a"][later_a], atol=1e-5)


def test_parameter_counts():
  cfg = small_config()
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  d, g, L = 16, 32, 12
  block = (d * 3 * d + 3 * d) + (d * d + d) + 2 * (d * d + d) + 4 * d  # attn, out, ffn, 2 LN
  stream = (L + 1) * d + 2 * block + 2 * d  # pos emb, blocks, last LN
  adapter = (g * g // 2 + g // 2) + (g // 2 * d + d)
  user = (48 * 24 + 24) + (24 * d + d)
  assert state_lib.count_params(params) == 3 * stream + adapter + user
  n = ds.num_items_a + ds.num_items_b
  assert (
    state_lib.count_params(task.model.frozen)
    == (n + 1) * g + (ds.num_items_a + 1 + ds.num_items_b + 1) * d
  )
  # One GCA position = two cells of 4 d x d projections (+ biases) and a scalar gate each.
  cfg.gca.positions = (0,)
  _, task2 = build(cfg)
  extra = state_lib.count_params(task2.model.init(jax.random.key(0))) - state_lib.count_params(
    params
  )
  assert extra == 2 * (4 * (d * d + d) + 1)


def test_id_embedding_mode_without_text():
  """No text tables: trainable ID embeddings on every stream, no adapter, no user guidance."""
  cfg = small_config(global_emb=False, local_emb=False)
  ds, task = build(cfg)
  assert task.model.frozen == {}
  params = task.model.init(jax.random.key(0))
  n = ds.num_items_a + ds.num_items_b
  assert params["item_emb"].shape == (n + 1, 16)
  assert params["item_emb_a"].shape == (ds.num_items_a + 1, 16)
  assert not any(k.startswith("adapter") for k in params)
  loss, metrics = task.model.loss(
    params, task.model.frozen, _batch(task, np.arange(8)), jax.random.key(0)
  )
  assert np.isfinite(float(loss)) and "reg_loss" in metrics


def _without_text(cfg, n_a=2, n_b=2):
  """The small synthetic dataset with the most frequent n_a A and n_b B items' text zeroed."""
  ds = synthetic.generate(synthetic.from_config_dict(cfg.data.synthetic))
  items = np.concatenate([ds.sequence(u) for u in range(ds.num_users)])
  counts = np.bincount(items, minlength=ds.num_items_a + ds.num_items_b + 1)
  na = ds.num_items_a
  top_a = np.argsort(-counts[1 : na + 1])[:n_a] + 1
  top_b = np.argsort(-counts[na + 1 :])[:n_b] + na + 1
  emb = ds.item_text_emb.copy()
  emb[np.concatenate([top_a, top_b])] = 0.0
  return dataclasses.replace(ds, item_text_emb=emb), top_a, top_b


def test_missing_text_learned_gives_each_item_its_own_trainable_row():
  cfg = small_config(missing_text="learned")
  ds, top_a, top_b = _without_text(cfg)
  task = task_lib.bind(ds, cfg)
  na = ds.num_items_a
  params = task.model.init(jax.random.key(0))
  assert params["missing_text_m"].shape == (4, 16)
  assert params["missing_text_a"].shape == (2, 16) and params["missing_text_b"].shape == (2, 16)
  assert set(k for k in task.model.frozen["frozen"] if k.startswith("missing")) == {
    "missing_index_m",
    "missing_index_a",
    "missing_index_b",
  }
  mix_t, a_t, b_t, dom_t = jax.device_get(task.model.tables(params, task.model.frozen))
  np.testing.assert_array_equal(dom_t, np.concatenate([a_t, b_t[1:]]))  # by global id
  assert not np.allclose(mix_t[top_a[0]], mix_t[top_a[1]])
  assert not np.allclose(mix_t[top_b[0]], mix_t[top_b[1]])
  assert not np.allclose(a_t[top_a[0]], a_t[top_a[1]])
  assert not np.allclose(b_t[top_b[0] - na], b_t[top_b[1] - na])
  # Items with text keep their frozen vectors exactly.
  cfg0 = small_config(missing_text="zero")
  task0 = task_lib.bind(ds, cfg0)
  p0 = {k: v for k, v in params.items() if not k.startswith("missing_text")}
  mix0, a0, _, _ = jax.device_get(task0.model.tables(p0, task0.model.frozen))
  has = np.ones(na + 1, bool)
  has[top_a] = False
  has[0] = False
  np.testing.assert_array_equal(a_t[has], a0[has])
  np.testing.assert_array_equal(mix_t[1 : na + 1][has[1:]], mix0[1 : na + 1][has[1:]])
  # Gradients reach every new row (the items are the most frequent ones, so the loss sees them).
  batch = _batch(task, np.arange(len(task.train_data["seq"])))
  grads = jax.grad(lambda p: task.model.loss(p, task.model.frozen, batch, jax.random.key(3))[0])(
    params
  )
  for name in ("missing_text_m", "missing_text_a", "missing_text_b"):
    assert np.all(np.abs(np.asarray(grads[name])).sum(-1) > 0), name


def test_missing_text_zero_keeps_the_shared_row_and_the_old_program():
  cfg = small_config(missing_text="zero", reg_pool="history")
  ds, top_a, _ = _without_text(cfg)
  task = task_lib.bind(ds, cfg)
  params = task.model.init(jax.random.key(0))
  assert not any(k.startswith("missing") for k in params)
  assert not any(k.startswith("missing") for k in task.model.frozen["frozen"])
  mix_t, a_t, _, _ = jax.device_get(task.model.tables(params, task.model.frozen))
  np.testing.assert_array_equal(mix_t[top_a[0]], mix_t[top_a[1]])  # indistinguishable
  np.testing.assert_array_equal(a_t[top_a[0]], a_t[top_a[1]])
  # A config saved before the keys existed builds the same program (the legacy values).
  saved = small_config().to_dict()
  del saved["model"]["missing_text"], saved["model"]["reg_pool"]
  legacy = upgrade.config(saved)
  assert (legacy.model.missing_text, legacy.model.reg_pool) == ("zero", "history")
  llm4cdsr.Baseline.validate(legacy)
  task_legacy = task_lib.bind(ds, legacy)
  batch = _batch(task, np.arange(16))
  a = task.model.loss(params, task.model.frozen, batch, jax.random.key(5))[0]
  b = task_legacy.model.loss(params, task_legacy.model.frozen, batch, jax.random.key(5))[0]
  assert float(a) == float(b)


def test_missing_text_without_missing_items_adds_nothing():
  cfg = small_config()  # default "learned"; the synthetic data has text for every item
  _, task = build(cfg)
  assert not any(k.startswith("missing") for k in task.model.init(jax.random.key(0)))
  assert not any(k.startswith("missing") for k in task.model.frozen["frozen"])


def test_reg_pool_inputs_leaves_out_one_occurrence_of_the_last_item():
  hist = jnp.array([[0, 0, 2, 5, 5, 9], [0, 1, 3, 4, 4, 4], [0, 0, 0, 0, 6, 8]])
  pos = jnp.zeros((3, 4), jnp.int32).at[:, -1].set(jnp.array([5, 3, 8]))
  batch = {"hist": hist, "pos": pos}
  np.testing.assert_array_equal(llm4cdsr.loss.reg_pool_mask(batch, "history"), np.asarray(hist) > 0)
  got = np.asarray(llm4cdsr.loss.reg_pool_mask(batch, "inputs"))
  np.testing.assert_array_equal(got, [[0, 0, 1, 0, 1, 1], [0, 1, 0, 1, 1, 1], [0, 0, 0, 0, 1, 0]])


def test_reg_pool_flag_changes_only_the_regularisation_term():
  cfg = small_config(reg_pool="inputs")
  _, task = build(cfg)
  _, task_h = build(small_config(reg_pool="history"))
  params = task.model.init(jax.random.key(0))
  batch = _batch(task, np.arange(32))
  _, m_in = task.model.loss(params, task.model.frozen, batch, jax.random.key(2))
  _, m_h = task_h.model.loss(params, task_h.model.frozen, batch, jax.random.key(2))
  assert float(m_in["rec_loss"]) == float(m_h["rec_loss"])
  assert float(m_in["reg_loss"]) != float(m_h["reg_loss"])


def test_invalid_choices_are_refused():
  for key in ("missing_text", "reg_pool"):
    cfg = small_config(**{key: "bogus"})
    with pytest.raises(errors.ConfigError, match=f"model.{key}"):
      llm4cdsr.Baseline.validate(cfg)


@pytest.mark.parametrize("module", [llm4cdsr_afk_config, llm4cdsr_fk_config])
def test_real_data_configs_have_the_upstream_schedule(module):
  cfg = module.get_config()
  validation.validate(cfg)
  assert (cfg.model.max_len, cfg.train.max_epochs, cfg.train.early_stop_patience) == (200, 200, 20)
  assert (cfg.model.alpha, cfg.model.beta, cfg.eval.num_negatives) == (0.1, 0.1, 100)
  assert tuple(cfg.gca.positions) == ()
  assert (cfg.model.missing_text, cfg.model.reg_pool) == ("learned", "inputs")
  if module is llm4cdsr_afk_config:
    assert (cfg.data.format, cfg.data.text_emb) == ("abxi", "none")
