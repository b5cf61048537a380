"""LLM4CDSR: loss against a direct numpy computation, quirk flags, causality, sampling, counts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import llm4cdsr as llm4cdsr_config
from orthoalign.data import synthetic
from orthoalign.models import llm4cdsr
from orthoalign.train import state as state_lib


def small_config(**model):
  cfg = llm4cdsr_config.get_config()
  cfg.data.synthetic.update(num_users=120, num_items_a=60, num_items_b=50, mean_length=12,
                            max_length=30, text_dim=48, seed=3)
  cfg.model.update(hidden_size=16, max_len=12, global_dim=32, **model)
  cfg.eval.num_negatives = 20
  cfg.gca.positions = ()           # the plain baseline unless a test adds cells
  return cfg


def build(cfg):
  ds = synthetic.generate(synthetic.from_config_dict(cfg.data.synthetic))
  return ds, llm4cdsr.build(ds, cfg)


def _batch(task, rows):
  b = {k: jnp.asarray(v[rows]) for k, v in task.train_data.items()}
  b["row_valid"] = jnp.ones(len(rows), bool)
  return b


def test_rec_loss_matches_numpy():
  cfg = small_config(alpha=0.0, beta=0.0)
  ds, task = build(cfg)
  params = task.init_params(jax.random.key(0))
  batch = _batch(task, np.arange(8))
  rng = jax.random.key(7)
  loss, metrics = task.loss_fn(params, task.frozen, batch, rng)
  # Recompute with the same randomness, by hand.
  r_drop, r_neg, _ = jax.random.split(rng, 3)
  module = llm4cdsr.LLM4CDSR(ds.num_items_a, ds.num_items_b, hidden=16, max_len=12, global_dim=32)
  hp = llm4cdsr.Hyper(ds.num_items_a, ds.num_items_b, 0.0, 0.0, 1.0, 1.0, "input", True, True)
  negs = jax.device_get(llm4cdsr.sample_train_negatives(r_neg, batch, hp))
  var = {"params": params, **task.frozen}
  out = jax.device_get(module.apply(var, batch, train=True, rngs={"dropout": r_drop}))
  mix_t, a_t, b_t = jax.device_get(module.apply(var, method=llm4cdsr.LLM4CDSR.item_tables))
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
    t = np.exp(sim - sim.max(1, keepdims=True)); t /= t.sum(1, keepdims=True)
    ls = lambda z: z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    xl = -(t * ls(logits)).sum(1)
    yl = -(t.T * ls(logits.T)).sum(1)
    return ((xl + yl) / 2).mean()

  got = llm4cdsr.soft_clip_loss(jnp.asarray(x), jnp.asarray(y), jnp.ones(6, bool), 0.5)
  np.testing.assert_allclose(float(got), reference(x, y, 0.5), rtol=1e-5)
  valid = np.array([1, 0, 1, 1, 0, 1], bool)
  got = llm4cdsr.soft_clip_loss(jnp.asarray(x), jnp.asarray(y), jnp.asarray(valid), 1.0)
  np.testing.assert_allclose(float(got), reference(x[valid], y[valid], 1.0), rtol=1e-5)


def test_negatives_avoid_history_and_respect_domains():
  cfg = small_config()
  ds, task = build(cfg)
  batch = _batch(task, np.arange(32))
  hp = llm4cdsr.Hyper(ds.num_items_a, ds.num_items_b, 0.1, 0.1, 1.0, 1.0, "target", True, True)
  negs = jax.device_get(llm4cdsr.sample_train_negatives(jax.random.key(1), batch, hp))
  hist = np.asarray(batch["hist"])
  na, nb = ds.num_items_a, ds.num_items_b
  for i in range(32):
    seen = set(hist[i]) - {0}
    assert not seen & set(negs["neg_a"][i].tolist())
    assert not seen & {int(v) + na for v in negs["neg_b"][i]}
    assert not seen & set(negs["neg"][i].tolist())
  assert negs["neg_a"].min() >= 1 and negs["neg_a"].max() <= na - 1      # exclusive upper (quirk)
  assert negs["neg_b"].min() >= 1 and negs["neg_b"].max() <= nb - 1
  pos = np.asarray(batch["pos"])
  valid = pos > 0
  # mixed_neg_domain="target": negatives share the target's domain.
  np.testing.assert_array_equal((negs["neg"] > na)[valid], (pos > na)[valid])


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_causality_flag(causal):
  cfg = small_config(causal_self_attention=causal)
  ds, task = build(cfg)
  module = llm4cdsr.LLM4CDSR(ds.num_items_a, ds.num_items_b, hidden=16, max_len=12, global_dim=32,
                             causal=causal)
  params = task.init_params(jax.random.key(0))
  var = {"params": params, **task.frozen}
  batch = _batch(task, np.arange(4))
  rows = np.nonzero(np.asarray(batch["seq"][:, 3]) > 0)[0]
  out = module.apply(var, batch, train=False)
  changed = dict(batch)
  changed["seq"] = batch["seq"].at[:, -1].set(1)       # perturb the latest mixed input
  out2 = module.apply(var, changed, train=False)
  early_same = np.allclose(out["f_m"][rows, :-1], out2["f_m"][rows, :-1], atol=1e-5)
  assert early_same == causal       # the original (non-causal) leaks the future into earlier tokens


def test_gca_cross_attention_is_causal_in_merged_time():
  cfg = small_config(causal_self_attention=True)
  cfg.gca.positions = (0, 1)
  ds, task = build(cfg)
  module = llm4cdsr.LLM4CDSR(ds.num_items_a, ds.num_items_b, hidden=16, max_len=12, global_dim=32,
                             causal=True, gca_positions=(0, 1),
                             gca=dict(gate="scalar", act="sigmoid", layernorm="none", heads=1,
                                      causal=True, dropout=0.0, gate_init=0.0))
  params = task.init_params(jax.random.key(0))
  var = {"params": params, **task.frozen}
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
  params = task.init_params(jax.random.key(0))
  d, g, L = 16, 32, 12
  block = (d * 3 * d + 3 * d) + (d * d + d) + 2 * (d * d + d) + 4 * d     # attn, out, ffn, 2 LN
  stream = (L + 1) * d + 2 * block + 2 * d                              # pos emb, blocks, last LN
  adapter = (g * g // 2 + g // 2) + (g // 2 * d + d)
  user = (48 * 24 + 24) + (24 * d + d)
  assert state_lib.count_params(params) == 3 * stream + adapter + user
  n = ds.num_items_a + ds.num_items_b
  assert state_lib.count_params(task.frozen) == (n + 1) * g + (ds.num_items_a + 1 + ds.num_items_b + 1) * d
  # One GCA position = two cells of 4 d x d projections (+ biases) and a scalar gate each.
  cfg.gca.positions = (0,)
  _, task2 = build(cfg)
  extra = state_lib.count_params(task2.init_params(jax.random.key(0))) - state_lib.count_params(params)
  assert extra == 2 * (4 * (d * d + d) + 1)


def test_id_embedding_mode_without_text():
  """No text tables: trainable ID embeddings on every stream, no adapter, no user guidance."""
  cfg = small_config(global_emb=False, local_emb=False)
  ds, task = build(cfg)
  assert task.frozen == {}
  params = task.init_params(jax.random.key(0))
  n = ds.num_items_a + ds.num_items_b
  assert params["item_emb"].shape == (n + 1, 16)
  assert params["item_emb_a"].shape == (ds.num_items_a + 1, 16)
  assert not any(k.startswith("adapter") for k in params)
  loss, metrics = task.loss_fn(params, task.frozen, _batch(task, np.arange(8)), jax.random.key(0))
  assert np.isfinite(float(loss)) and "reg_loss" in metrics
