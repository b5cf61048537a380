"""ABXI: aligned sequences, windows, loss against numpy, causality, init, parameter counts, e2e."""

from conftest import require_data
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import abxi as abxi_config
from orthoalign.config import flags as flag_checks
from orthoalign.config import validation
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load
from orthoalign.datasets import splits
from orthoalign.datasets import synthetic
from orthoalign.inputs import abxi_windows
from orthoalign.models import abxi
from orthoalign.models import settings
from orthoalign.train import loop
from orthoalign.train import state as state_lib
from orthoalign.train import task as task_lib

D, MAX_LEN = 16, 11  # tiny model: width 16, windows of 11
GCA = dict(
  gate="scalar", act="sigmoid", layernorm="none", heads=1, causal=True, dropout=0.0, gate_init=0.0
)


def small_config(**model):
  cfg = abxi_config.get_config()
  cfg.data.format = "synthetic"
  cfg.data.path = ""
  cfg.data.synthetic.update(
    num_users=96, num_items_a=40, num_items_b=30, mean_length=10, max_length=18, seed=5
  )
  cfg.model.update(width=D, heads=2, ffn=24, rd=2, ri=4, n_neg=6, max_len=MAX_LEN, **model)
  cfg.eval.num_negatives = 10
  cfg.eval.batch_size = 32
  cfg.train.batch_size = 32
  return cfg


def build(cfg):
  ds = synthetic.generate(synthetic.from_config_dict(cfg.data.synthetic))
  return ds, task_lib.bind(ds, cfg)


def module_for(ds, cfg, positions=(), kv="other", **model):
  m = cfg.model.copy_and_resolve_references()
  m.update(**model)
  return abxi.module.ABXI(
    ds.num_items_a, ds.num_items_b, settings.read(abxi.Config, m), positions, kv, GCA
  )


def _batch(arrays, rows):
  b = {k: jnp.asarray(v[rows]) for k, v in arrays.items()}
  b["row_valid"] = jnp.ones(len(rows), bool)
  return b


# ---------------------------------------------------------------------------------------------
# Aligned sequences and windows


def original_rule(n_item_a, seq, gt):
  """ABXI's `get_spe_seq` rule, restated step by step (fill the target slots of each domain with
  that domain's input items in order, after dropping the first slot of the domain the sequence does
  not start with and the last item of the domain the last target is not in).
  """
  a_items = [v for v in seq if 0 < v <= n_item_a]
  b_items = [v for v in seq if v > n_item_a]
  a_slots = [i for i, v in enumerate(gt) if 0 < v <= n_item_a]
  b_slots = [i for i, v in enumerate(gt) if v > n_item_a]
  if seq[0] > n_item_a:
    a_slots = a_slots[1:]
  else:
    b_slots = b_slots[1:]
  if gt[-1] > n_item_a:
    a_items = a_items[:-1]
  else:
    b_items = b_items[:-1]
  assert len(a_slots) == len(a_items) and len(b_slots) == len(b_items)
  seq_a, seq_b = np.zeros(len(gt), int), np.zeros(len(gt), int)
  seq_a[a_slots], seq_b[b_slots] = a_items, b_items
  return seq_a, seq_b


def test_aligned_sequences_hand_worked():
  na = 10
  # Starts with A: the first B-target slot has no earlier B item.
  t = np.array([1, 11, 2, 12, 13, 3])
  seq_a, seq_b = abxi_windows.aligned_domain_sequences(t[:-1], t[1:], na)
  np.testing.assert_array_equal(seq_a, [0, 1, 0, 0, 2])
  np.testing.assert_array_equal(seq_b, [0, 0, 11, 12, 0])
  # Starts with B: the first A-target slot is zeroed; the last B target is predicted from 13.
  t = np.array([11, 12, 1, 13, 2, 3, 14])
  seq_a, seq_b = abxi_windows.aligned_domain_sequences(t[:-1], t[1:], na)
  np.testing.assert_array_equal(seq_a, [0, 0, 0, 1, 2, 0])
  np.testing.assert_array_equal(seq_b, [11, 0, 12, 0, 0, 13])
  for t in (np.array([1, 11, 2, 12, 13, 3]), np.array([11, 12, 1, 13, 2, 3, 14])):
    for mine, orig in zip(
      abxi_windows.aligned_domain_sequences(t[:-1], t[1:], na), original_rule(na, t[:-1], t[1:])
    ):
      np.testing.assert_array_equal(mine, orig)
  # A domain absent from the targets (the original raises here): no tokens in that stream.
  seq_a, seq_b = abxi_windows.aligned_domain_sequences(np.array([1, 11]), np.array([11, 12]), na)
  np.testing.assert_array_equal(seq_a, [0, 0])
  np.testing.assert_array_equal(seq_b, [0, 11])


def test_aligned_sequences_match_original_rule_on_random_sequences():
  rng = np.random.default_rng(0)
  na, checked = 30, 0
  for _ in range(400):
    n = rng.integers(3, 40)
    t = np.where(
      rng.random(n) < rng.uniform(0.2, 0.8),
      rng.integers(na + 1, 2 * na, n),
      rng.integers(1, na + 1, n),
    )
    gt = t[1:]
    if not ((gt <= na).any() and (gt > na).any()):
      continue  # the original needs both domains among targets
    for mine, orig in zip(
      abxi_windows.aligned_domain_sequences(t[:-1], gt, na), original_rule(na, t[:-1], gt)
    ):
      np.testing.assert_array_equal(mine, orig)
    checked += 1
  assert checked > 300


def test_train_and_eval_windows_by_hand():
  na, len_max = 10, 8  # windows of 5
  seqs = [
    np.array([11, 12, 1, 13, 2, 3, 14, 4, 15]),  # train part: the first 7 items
    np.array([1, 2, 11, 3, 12]),
  ]
  ds = dataset_lib.CDSRDataset.from_sequences("hand", na, 10, seqs)
  tr = abxi_windows.train_windows(ds, len_max)
  # User 0: cut to the last 8 items, T = [12, 1, 13, 2, 3, 14]: 5 inputs, 5 targets.
  np.testing.assert_array_equal(tr["seq_x"][0], [12, 1, 13, 2, 3])
  np.testing.assert_array_equal(tr["target"][0], [1, 13, 2, 3, 14])
  np.testing.assert_array_equal(tr["seq_a"][0], [0, 0, 1, 2, 0])
  np.testing.assert_array_equal(tr["seq_b"][0], [0, 12, 0, 0, 13])
  np.testing.assert_array_equal(tr["time_x"][0], [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(tr["time_a"][0], [-1, -1, 2, 3, -1])
  np.testing.assert_array_equal(tr["time_b"][0], [-1, 1, -1, -1, 4])
  np.testing.assert_array_equal(tr["hist"][0], [1, 2, 3, 12, 13, 14])
  # User 1: T = [1, 2, 11] -> inputs [1, 2], targets [2, 11]; left-padded.
  np.testing.assert_array_equal(tr["seq_x"][1], [0, 0, 0, 1, 2])
  np.testing.assert_array_equal(tr["target"][1], [0, 0, 0, 2, 11])
  np.testing.assert_array_equal(tr["seq_a"][1], [0, 0, 0, 1, 0])
  np.testing.assert_array_equal(tr["seq_b"][1], [0, 0, 0, 0, 0])  # starts with A: no earlier B
  np.testing.assert_array_equal(tr["hist"][1], [0, 0, 0, 1, 2, 11])
  np.testing.assert_array_equal(
    abxi.module.backward_positions(jnp.asarray(tr["seq_a"] > 0)), [[0, 0, 2, 1, 0], [0, 0, 0, 1, 0]]
  )

  test = abxi_windows.eval_windows(ds, splits.eval_split(ds, "test"), len_max, "compact")
  # User 0: the sequence is cut to its last 8 items [12, 1, 13, 2, 3, 14, 4, 15]; input = first 7.
  np.testing.assert_array_equal(test["seq_x"][0], [13, 2, 3, 14, 4])
  np.testing.assert_array_equal(test["time_x"][0], [2, 3, 4, 5, 6])
  np.testing.assert_array_equal(test["seq_a"][0], [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(test["time_a"][0], [-1, 1, 3, 4, 6])
  np.testing.assert_array_equal(test["qtime_a"][0], [-1, 1, 3, 4, 6])
  np.testing.assert_array_equal(test["seq_b"][0], [0, 0, 12, 13, 14])
  np.testing.assert_array_equal(test["time_b"][0], [-1, -1, 0, 2, 5])
  np.testing.assert_array_equal(test["qtime_b"][0], [-1, -1, 0, 2, 6])  # predicts after time 6
  assert test["target"][0] == 15 and test["domain"][0] == 1
  np.testing.assert_array_equal(test["hist"][0], [1, 2, 3, 4, 11, 12, 13, 14])  # whole prefix
  valid = abxi_windows.eval_windows(ds, splits.eval_split(ds, "valid"), len_max, "compact")
  np.testing.assert_array_equal(valid["seq_x"][1], [0, 0, 1, 2, 11])
  np.testing.assert_array_equal(valid["seq_a"][1], [0, 0, 0, 1, 2])
  np.testing.assert_array_equal(valid["seq_b"][1], [0, 0, 0, 0, 11])
  assert valid["target"][1] == 3 and valid["domain"][1] == 0

  # The original code's layout (the default): seq_x with the other domain zeroed, slot for slot.
  test = abxi_windows.eval_windows(ds, splits.eval_split(ds, "test"), len_max)
  np.testing.assert_array_equal(test["seq_x"][0], [13, 2, 3, 14, 4])
  np.testing.assert_array_equal(test["seq_a"][0], [0, 2, 3, 0, 4])
  np.testing.assert_array_equal(test["time_a"][0], [-1, 3, 4, -1, 6])
  np.testing.assert_array_equal(test["qtime_a"][0], [-1, 3, 4, -1, 6])
  np.testing.assert_array_equal(test["seq_b"][0], [13, 0, 0, 14, 0])
  np.testing.assert_array_equal(test["time_b"][0], [2, -1, -1, 5, -1])
  np.testing.assert_array_equal(test["qtime_b"][0], [2, -1, -1, 5, -1])  # last slot is padding
  valid = abxi_windows.eval_windows(ds, splits.eval_split(ds, "valid"), len_max)
  np.testing.assert_array_equal(valid["seq_a"][1], [0, 0, 1, 2, 0])
  np.testing.assert_array_equal(valid["seq_b"][1], [0, 0, 0, 0, 11])
  with pytest.raises(ValueError, match="model.eval_domain_seq='left'"):
    abxi_windows.eval_windows(ds, splits.eval_split(ds, "valid"), len_max, "left")


# ---------------------------------------------------------------------------------------------
# Loss and negatives


def test_loss_matches_numpy():
  cfg = small_config()
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  batch = _batch(task.train_data, np.arange(8))
  batch["row_valid"] = batch["row_valid"].at[5].set(False)  # a padded row does not count
  rng = jax.random.key(3)
  loss, metrics = task.model.loss(params, task.model.frozen, batch, rng)
  assert set(metrics) == {"loss", "loss_a", "loss_b"}
  # Recompute with the same randomness, by hand.
  r_drop, r_neg = jax.random.split(rng)
  module = module_for(ds, cfg)
  hp = abxi.loss.Hyper(module.config, ds.num_items_a, ds.num_items_b)
  neg = np.asarray(abxi.loss.sample_train_negatives(r_neg, batch, hp))
  h = np.asarray(
    module.apply({"params": params}, batch, train=True, rngs={"dropout": r_drop})["h"], np.float64
  )
  table = np.asarray(params["ei"], np.float64)
  target = np.asarray(batch["target"])
  na = ds.num_items_a
  per_dom = {0: [], 1: []}
  for i in range(8):
    if i == 5:
      continue
    losses = {0: [], 1: []}
    for t in range(target.shape[1]):
      if target[i, t] == 0:
        continue
      logits = np.concatenate([[h[i, t] @ table[target[i, t]]], table[neg[i, t]] @ h[i, t]]) / 0.75
      top = logits.max()
      losses[int(target[i, t] > na)].append(top + np.log(np.exp(logits - top).sum()) - logits[0])
    for dom in (0, 1):
      per_dom[dom].append(np.mean(losses[dom]) if losses[dom] else 0.0)
  np.testing.assert_allclose(float(metrics["loss_a"]), np.mean(per_dom[0]), rtol=1e-4)
  np.testing.assert_allclose(float(metrics["loss_b"]), np.mean(per_dom[1]), rtol=1e-4)
  np.testing.assert_allclose(float(loss), np.mean(per_dom[0]) + np.mean(per_dom[1]), rtol=1e-4)


@pytest.mark.parametrize("off_by_one", [True, False])
def test_negatives_avoid_history_and_respect_domains(off_by_one):
  cfg = small_config()
  ds, task = build(cfg)
  batch = _batch(task.train_data, np.arange(32))
  na, nb = ds.num_items_a, ds.num_items_b
  hp = abxi.loss.Hyper(abxi.Config(n_neg=16, neg_b_off_by_one=off_by_one), na, nb)
  neg = np.asarray(abxi.loss.sample_train_negatives(jax.random.key(1), batch, hp))
  assert neg.shape == batch["target"].shape + (32,)
  neg_a, neg_b = neg[..., :16], neg[..., 16:]
  # Without replacement within each position's A set and B set, as the original.
  for part in (neg_a, neg_b):
    assert (np.diff(np.sort(part, -1), axis=-1) > 0).all()
  assert neg_a.min() >= 1 and neg_a.max() <= na
  assert neg_b.max() <= na + nb and neg_b.min() >= (na if off_by_one else na + 1)
  assert (neg_b == na).any() == off_by_one  # v2's arange(n_item_a, n_item + 1)
  hist = np.asarray(batch["hist"])
  for i in range(32):
    assert not (set(hist[i]) - {0}) & set(neg[i].ravel().tolist())
  # Per position, not one set per sequence (as the original's get_neg).
  assert not np.array_equal(neg[:, -1], neg[:, -2])


# ---------------------------------------------------------------------------------------------
# Model


def test_shapes_and_eval_outputs():
  cfg = small_config()
  cfg.gca.positions = (0, 2)
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  assert task.cell_names == ("gca0_A", "gca0_B", "gca2_A", "gca2_B")
  loss, _ = task.model.loss(
    params, task.model.frozen, _batch(task.train_data, np.arange(4)), jax.random.key(0)
  )
  assert np.isfinite(float(loss))
  ev = task.eval_data["valid"]
  assert ev["cand"].shape == (len(ev["target"]), 11)
  np.testing.assert_array_equal(ev["cand"][:, 0], ev["target"])
  batch = {k: jnp.asarray(v[:5]) for k, v in ev.items()}
  out = task.model.score(
    params, task.model.frozen, task.model.tables(params, task.model.frozen), batch
  )
  assert out.sampled_scores.shape == (5, 11)
  assert out.full_scores.shape == (5, ds.num_items_a + ds.num_items_b + 1)
  np.testing.assert_allclose(
    out.sampled_scores[:, 0],
    np.take_along_axis(np.asarray(out.full_scores), ev["target"][:5, None], 1)[:, 0],
    rtol=1e-5,
    atol=1e-6,
  )
  assert set(out.cells) == set(task.cell_names)
  assert out.cells["gca0_A"]["x"].shape == (5, MAX_LEN, D)


def test_eval_slicing_matches_full_sequence_pass():
  """At evaluation the post-attention stages are position-wise: running them on the last slot only
  (plain ABXI) equals running them everywhere and taking the last slot (needed by GCA[2]). A closed
  GCA[2] cell is the identity also on in-place padding slots, which hold LayerNorm biases there
  (issue 11 fault 7: the cell used to zero them).
  """
  cfg = small_config()
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  # Trained-like weights: non-zero biases put LayerNorm biases into in-place padding slots.
  rng = iter(jax.random.split(jax.random.key(2), 256))
  params = jax.tree_util.tree_map(
    lambda x: x + 0.05 * jax.random.normal(next(rng), x.shape), params
  )
  batch = {k: jnp.asarray(v) for k, v in task.eval_data["test"].items()}
  assert batch["group/switch"].any()  # in-place: switch cases end their target stream in padding
  plain = module_for(ds, cfg).apply({"params": params}, batch, train=False)["h"]
  # GCA[2] with its gate closed: tanh(0) = 0 makes the cell the identity.
  gca_mod = module_for(ds, cfg)
  gca_mod = gca_mod.clone(gca_positions=(2,), gca=dict(GCA, act="tanh"))
  gca_params = gca_mod.init(
    {"params": jax.random.key(1), "dropout": jax.random.key(1)}, batch, train=False
  )["params"]
  gca_params = {**gca_params, **params}
  full = gca_mod.apply({"params": gca_params}, batch, train=False)["h"]
  np.testing.assert_allclose(plain, full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("position", abxi.config.GCA_POSITIONS)
def test_gca_cannot_reach_inplace_switch_cases(position):
  """Issue 11 fault 7. In ABXI's in-place evaluation layout a switch case (last input item from the
  other domain) ends its target-domain stream in a padding slot, which the original encoder fills
  with LayerNorm biases only; GCA cells leave padding queries as they are, so nothing a cell learns
  reaches such a case. With the compact layout the slot is the stream's last own item, which the
  cell updates. Stay cases are reached under both.
  """
  changed = {}
  for layout in ("inplace", "compact"):
    cfg = small_config(eval_domain_seq=layout)
    cfg.gca.positions = (position,)
    _, task = build(cfg)
    params = task.model.init(jax.random.key(0))
    rng = iter(jax.random.split(jax.random.key(1), 64))
    moved = {
      k: jax.tree_util.tree_map(lambda x: x + 0.5 * jax.random.normal(next(rng), x.shape), v)
      if k.startswith("gca")
      else v
      for k, v in params.items()
    }
    ev = task.eval_data["test"]
    batch = {k: jnp.asarray(v) for k, v in ev.items()}
    scores = [
      np.asarray(
        task.model.score(
          p, task.model.frozen, task.model.tables(p, task.model.frozen), batch
        ).sampled_scores
      )
      for p in (params, moved)
    ]
    changed[layout] = ~np.all(np.isclose(*scores, rtol=1e-6, atol=1e-6), axis=1)
    switch, stay = ev["group/switch"], ev["group/stay"]
  assert switch.sum() >= 10 and stay.sum() >= 10
  assert not changed["inplace"][switch].any()
  # Under the causal cross-mask a case is reached only where its stream has seen an other-domain
  # item (not, e.g., for a user with one domain): most cases, and the same stay cases in both
  # layouts.
  np.testing.assert_array_equal(changed["inplace"][stay], changed["compact"][stay])
  assert changed["inplace"][stay].mean() > 0.5 and changed["compact"][switch].mean() > 0.5


def _reference_forward(p, batch, na, heads, evaluation=False):
  """ABXI's forward (dropout off) written directly from models/ABXI.py, in numpy. evaluation=True:
  the FFN/LoRA stage multiplies by 1 instead of the stream's mask (the original's eval branch).
  """
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), p)

  def ln(x, q):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * q["scale"] + q["bias"]

  def swiglu(x, q):
    gate = x @ q["fc_2"]["kernel"]
    return (gate / (1 + np.exp(-gate)) * (x @ q["fc_1"]["kernel"])) @ q["fc_3"]["kernel"]

  def lora(x, q):
    return x @ (q["mat_A"] @ q["mat_B"]).T  # F.linear(h, A @ B)

  def mha(x):
    q = p["mha"]
    qkv = x @ q["in_proj_kernel"] + q["in_proj_bias"]
    b, l, d = x.shape
    dh = d // heads
    qs, ks, vs = (t.reshape(b, l, heads, dh) for t in np.split(qkv, 3, -1))
    logits = np.einsum("bqhd,bkhd->bhqk", qs, ks) / np.sqrt(dh)
    logits = np.where(np.tril(np.ones((l, l), bool)), logits, -np.inf)  # causal mask only
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    out = np.einsum("bhqk,bkhd->bqhd", w, vs).reshape(b, l, d)
    return out @ q["out_proj"]["kernel"] + q["out_proj"]["bias"]

  h = {}
  for s in ("x", "a", "b"):
    seq = np.asarray(batch[f"seq_{s}"])
    m = (seq > 0)[..., None]
    pos = np.flip(np.cumsum(np.flip(m[..., 0], 1), 1), 1) * m[..., 0]
    hs = (p["ei"][seq] + p["ep"][pos]) * m
    hs = ln(hs + mha(hs), p["norm_mha"]) * m
    m = np.ones_like(m) if evaluation else m
    h[s] = ln(hs + swiglu(hs, p["ffn"]) + lora(hs, p[f"dlora_{s}"]), p[f"norm_sa_{s}"]) * m
  gt = np.asarray(batch["target"])
  g = {"a": ((gt > 0) & (gt <= na))[..., None], "b": (gt > na)[..., None]}
  h_i = swiglu(h["x"], p["proj_i"])
  out = 0
  for s in ("a", "b"):
    h_s = ln((h["x"] + h_i + lora(h["x"], p[f"ilora_{s}"])) * g[s], p[f"norm_i2{s}"]) + ln(
      (h[s] + swiglu(h[s], p[f"proj_{s}"])) * g[s], p[f"norm_{s}2{s}"]
    )
    out = out + h_s * g[s]
  return out


def test_forward_matches_reference_equations():
  cfg = small_config()
  ds, task = build(cfg)
  params = task.model.init(jax.random.key(0))
  # Random values everywhere (LoRA B, LayerNorms, biases) so that every term shows.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree.unflatten(
    tree, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  )
  batch = _batch(task.train_data, np.arange(12))
  module = module_for(ds, cfg, dropout=0.0)
  got = module.apply({"params": params}, batch, train=True)["h"]
  want = _reference_forward(params, batch, ds.num_items_a, heads=2)
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)
  # Evaluation: last position after attention, FFN/LoRA stage with mask 1, branch of the target.
  ev = {k: jnp.asarray(v[:12]) for k, v in task.eval_data["valid"].items()}
  got = module.apply({"params": params}, ev, train=False)["h"]
  ref_batch = {k: ev[k] for k in ("seq_x", "seq_a", "seq_b")}
  ref_batch["target"] = jnp.zeros_like(ev["seq_x"]).at[:, -1].set(ev["target"])
  want = _reference_forward(params, ref_batch, ds.num_items_a, heads=2, evaluation=True)[:, -1]
  # In place (the default), the stream of the last input's other domain ends in padding: its
  # attention output is masked to 0 and the FFN/LoRA stage sees zeros. Both cases occur here.
  last_b = np.asarray(ev["seq_x"])[:, -1] > ds.num_items_a
  assert 0 < last_b.sum() < len(last_b)
  np.testing.assert_array_equal(np.asarray(ev["seq_a"])[:, -1] > 0, ~last_b)
  np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-5)


def test_self_attention_is_causal():
  cfg = small_config()
  ds, task = build(cfg)
  module = module_for(ds, cfg, dropout=0.0)
  params = task.model.init(jax.random.key(0))
  batch = _batch(task.train_data, np.arange(16))
  out = np.asarray(module.apply({"params": params}, batch, train=True)["h"])
  j = MAX_LEN - 3
  for stream in ("seq_x", "seq_a", "seq_b"):
    seq = np.asarray(batch[stream])
    rows = np.nonzero(seq[:, j] > 0)[0]
    assert len(rows) > 2
    changed = dict(batch)
    changed[stream] = batch[stream].at[rows, j].set(np.where(seq[rows, j] == 1, 2, 1))  # id only
    out2 = np.asarray(module.apply({"params": params}, changed, train=True)["h"])
    np.testing.assert_allclose(out[rows, :j], out2[rows, :j], atol=1e-5)
    assert not np.allclose(out[rows, j:], out2[rows, j:], atol=1e-5)


@pytest.mark.parametrize("kv", ["other", "mixed"])
def test_gca_cross_attention_is_causal_in_merged_time(kv):
  cfg = small_config()
  ds, task = build(cfg)
  module = module_for(ds, cfg, positions=(0, 1, 2), kv=kv, dropout=0.0)
  params = module.init(
    {"params": jax.random.key(0), "dropout": jax.random.key(0)},
    _batch(task.train_data, np.arange(1)),
    train=True,
  )["params"]
  # Open the gates (sigmoid(2)) so the cross paths matter.
  params = jax.tree_util.tree_map_with_path(
    lambda p, x: jnp.full_like(x, 2.0) if p[-1].key == "gate_logit" else x, params
  )
  batch = _batch(task.train_data, np.arange(32))
  out = module.apply({"params": params}, batch, train=True)
  assert set(out["cells"]) == {f"gca{p}_{q}" for p in (0, 1, 2) for q in "AB"}
  # Perturb the key/value stream's tokens after merged time t*; nothing at time <= t* may change.
  # (For kv="other" the A stream's own tokens are left alone and vice versa; x is untouched then.)
  t_star = 3
  streams = ("seq_b",) if kv == "other" else ("seq_x",)
  changed = dict(batch)
  for s in streams:
    late = (np.asarray(batch["time_x"]) > t_star) & (np.asarray(batch[s]) > 0)
    changed[s] = jnp.where(late, jnp.where(batch[s] == 1, 2, 1), batch[s])
  out2 = module.apply({"params": params}, changed, train=True)
  time = np.asarray(batch["time_x"])
  early = (time >= 0) & (time <= t_star) & (np.asarray(batch["target"]) > 0)
  later_a = (time > t_star) & (np.asarray(batch["seq_a"]) > 0)
  assert early.sum() > 20 and later_a.sum() > 10
  np.testing.assert_allclose(np.asarray(out["h"])[early], np.asarray(out2["h"])[early], atol=1e-5)
  # ... while the A stream after t* does see the change through its cells.
  cell_a = lambda o: np.asarray(o["cells"]["gca0_A"]["x_prime"])[later_a]
  assert not np.allclose(cell_a(out), cell_a(out2), atol=1e-5)


def test_initialisation_follows_the_original():
  cfg = small_config()
  _, task = build(cfg)
  p = task.model.init(jax.random.key(0))
  ei = np.asarray(p["ei"])
  assert np.abs(ei).max() <= 0.04 and np.abs(ei[0]).max() > 0  # pad row initialised too
  assert 0.015 < ei.std() < 0.019  # trunc-normal(0.02, +-2 std)
  assert np.all(np.asarray(p["mha"]["in_proj_bias"]) == 0)
  bound = np.sqrt(6 / (D + 3 * D))  # xavier_uniform on (3d, d)
  w_in = np.asarray(p["mha"]["in_proj_kernel"])
  assert np.abs(w_in).max() <= bound and np.abs(w_in).max() > 0.9 * bound
  assert np.all(np.asarray(p["mha"]["out_proj"]["bias"]) == 0)
  for name in ("ffn", "proj_i", "proj_a", "proj_b"):
    assert "bias" not in p[name]["fc_1"]
  big = np.concatenate(
    [
      np.asarray(p[n][f]["kernel"]).ravel()
      for n in ("ffn", "proj_i")
      for f in ("fc_1", "fc_2", "fc_3")
    ]
  )
  assert abs(big.std() - 0.02) < 0.002
  for name in ("norm_mha", "norm_sa_x", "norm_i2a", "norm_b2b"):
    assert np.all(np.asarray(p[name]["scale"]) == 1) and np.all(np.asarray(p[name]["bias"]) == 0)


def test_lora_zero_init():
  lora = abxi.module.LoRA(D, 4)
  h = jax.random.normal(jax.random.key(0), (3, 5, D))
  variables = lora.init(jax.random.key(1), h)
  assert np.all(np.asarray(variables["params"]["mat_B"]) == 0)
  np.testing.assert_array_equal(lora.apply(variables, h), np.zeros((3, 5, D)))
  # Once B moves, the branch is h @ (A B)^T, as torch's F.linear(h, A @ B).
  a = np.asarray(variables["params"]["mat_A"])
  b = np.asarray(jax.random.normal(jax.random.key(2), (4, D)))
  got = lora.apply({"params": {"mat_A": a, "mat_B": b}}, h)
  np.testing.assert_allclose(got, np.asarray(h) @ (a @ b).T, rtol=1e-5, atol=1e-6)
  # In the model every LoRA starts at zero.
  cfg = small_config()
  _, task = build(cfg)
  p = task.model.init(jax.random.key(0))
  for name in ("dlora_x", "dlora_a", "dlora_b", "ilora_a", "ilora_b"):
    assert np.all(np.asarray(p[name]["mat_B"]) == 0)
    assert 0.01 < np.asarray(p[name]["mat_A"]).std() < 0.03


def test_parameter_count_formula():
  cfg = small_config()
  ds, task = build(cfg)
  d, f, L = D, 24, MAX_LEN
  n = ds.num_items_a + ds.num_items_b
  expected = (
    (n + 1) * d
    + (L + 1) * d  # ei, ep
    + (3 * d * d + 3 * d)
    + (d * d + d)  # attention in/out projections
    + 4 * 3 * d * f  # ffn, proj_i, proj_a, proj_b (SwiGLU)
    + 3 * 2 * d * 2
    + 2 * 2 * d * 4  # dLoRA x, a, b (rank 2); iLoRA a, b (rank 4)
    + 8 * 2 * d
  )  # 8 LayerNorms
  assert state_lib.count_params(task.model.init(jax.random.key(0))) == expected
  cfg.gca.positions = (0, 1)
  _, task2 = build(cfg)
  extra = state_lib.count_params(task2.model.init(jax.random.key(0))) - expected
  assert extra == 2 * 2 * (4 * (d * d + d) + 1)  # two cells per position, scalar gates


def test_parameter_count_food_kitchen_matches_original():
  path = require_data("abxi-afk")
  ds = data_load.load_path("abxi", str(path))
  assert (ds.num_items_a, ds.num_items_b) == (11837, 16258)
  module = abxi.module.ABXI(ds.num_items_a, ds.num_items_b, abxi.Config())
  batch = {
    k: jnp.zeros((1, 47), jnp.int32)
    for k in ("seq_x", "seq_a", "seq_b", "target", "time_x", "time_a", "time_b")
  }
  shapes = jax.eval_shape(
    lambda r: module.init({"params": r, "dropout": r}, batch, train=True), jax.random.key(0)
  )
  assert state_lib.count_params(shapes["params"]) == 9_651_200  # the original's log


def test_config_validates_and_documents_its_command():
  cfg = abxi_config.get_config()
  validation.validate(cfg)
  assert "python -m orthoalign.main --config=configs/abxi.py" in abxi_config.__doc__
  assert (cfg.model.name, cfg.data.format, cfg.gca.kv, cfg.gca.positions) == (
    "abxi",
    "abxi",
    "other",
    (),
  )
  assert cfg.eval.batch_size % 4 == 0 and cfg.model.max_len == 47
  flag_checks.check_overrides(
    [
      "prog",
      "--config=configs/abxi.py",
      "--config.gca.kv=mixed",
      "--config.model.rd=64",
      "--config.sweep.seeds=(3407,0,1,2,3)",
    ]
  )


@pytest.mark.smoke
def test_trains_end_to_end_through_the_generic_loop(tmp_path):
  cfg = small_config()
  cfg.gca.positions = (0,)
  cfg.train.num_devices = 1
  cfg.train.max_epochs = 2
  cfg.train.learning_rate = 1e-3
  cfg.train.weight_decay = 0.0
  if "warmup_epochs" in cfg.train:
    cfg.train.warmup_epochs = 0
  rows = loop.train_and_evaluate(cfg, str(tmp_path))
  assert len(rows) == 1
  row = rows[0]
  assert row["model"] == "abxi" and row["epochs_trained"] == 2
  for key in (
    "train/loss",
    "train/loss_a",
    "train/loss_b",
    "test/sampled/A/mrr",
    "test/full/B/ndcg@10",
    "valid/sampled/B/mrr",
    "align/gca0_A/abs_mean_cos",
  ):
    assert key in row and np.isfinite(row[key]), key


@pytest.mark.parametrize("rows", [3, 40])
def test_catalog_scoring_equals_gather(rows):
  """Both ways of computing the InfoNCE logits give the same losses and gradients (40 rows: the
  gathered path runs in blocks of 20).
  """
  from orthoalign.models import abxi as abxi_lib

  r = np.random.default_rng(0)
  table = jnp.asarray(r.normal(size=(40, 8)), jnp.float32)
  h = jnp.asarray(r.normal(size=(rows, 5, 8)), jnp.float32)
  target = jnp.asarray(r.integers(1, 40, size=(rows, 5)))
  neg = jnp.asarray(r.integers(1, 40, size=(rows, 5, 6)))

  w = jnp.asarray(r.normal(size=(rows, 5)), jnp.float32)

  def run(catalog):
    f = lambda h, t: abxi_lib.loss.info_nce(h, t, target, neg, 0.75, catalog=catalog)
    return f(h, table), jax.grad(lambda h, t: jnp.sum(f(h, t) * w), (0, 1))(h, table)

  a, grads_a = run(False)
  b, grads_b = run(True)
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
  for ga, gb in zip(grads_a, grads_b):
    np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=1e-4, atol=1e-5)


def test_too_many_distinct_negatives_is_refused():
  cfg = small_config()
  cfg.model.n_neg = 64
  with pytest.raises(ValueError, match=r"model.n_neg=64: ABXI .* domain A .* of its 40 items"):
    build(cfg)
