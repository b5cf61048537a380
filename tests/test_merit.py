"""MERIT's port: its inputs, each quirk flag's effect, its own cross-attention cells, its config.

The float64 comparison with the authors' code is tools/compare_merit_original.py (it needs torch
and their checkout; its output is docs/results/merit_port_check.md).
"""

import functools

from conftest import require_data
import contract
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import merit as merit_config
from orthoalign import errors
from orthoalign.config import validation
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load
from orthoalign.datasets import splits
from orthoalign.models import gca
from orthoalign.models import merit
from orthoalign.models import param_count


def _original_gt_spe(seq, seq_raw, na):
  """`get_gt_spe` of the original's dataloader, transcribed loop for loop (the reference)."""
  gt_raw_a = list(seq_raw[seq_raw <= na][1:]) + [0]
  gt_raw_b = list(seq_raw[seq_raw > na][1:]) + [0]
  out = []
  for x in seq:
    if x <= na:
      out.append(gt_raw_a.pop(0))
    else:
      out.append(gt_raw_b.pop(0))
  return np.asarray(out)


@pytest.mark.parametrize("seed", range(5))
def test_next_same_domain_matches_the_original_rule(seed):
  rng = np.random.default_rng(seed)
  na = 5
  part = rng.integers(1, 11, size=rng.integers(2, 15))
  np.testing.assert_array_equal(
    merit.inputs.next_same_domain(part[:-1], part, na), _original_gt_spe(part[:-1], part, na)
  )


def test_last_slots_follow_get_last_idx():
  na = 5
  # Window of 6, 4 items: A A B A -> last A at slot 5, last B at slot 4.
  assert merit.inputs.last_slots(np.array([0, 0, 1, 2, 7, 3]), na, 4) == (5, 4)
  # No B item: the window's first item slot (the original's loop ends at -min(L, len)).
  assert merit.inputs.last_slots(np.array([0, 0, 1, 2, 4, 3]), na, 4) == (5, 2)
  # A full window without A items: slot 0.
  assert merit.inputs.last_slots(np.array([6, 7, 8]), na, 3) == (0, 2)


def _dataset():
  return dataset_lib.CDSRDataset.from_sequences(
    "hand", 4, 3, [np.array([1, 5, 2, 6, 3, 7, 4]), np.array([5, 1, 6, 2, 1, 7])]
  )


def test_windows_hold_the_original_targets():
  ds = _dataset()
  tr = merit.inputs.train_windows(ds, len_max=8)  # windows of 5
  # User 0: train part [1 5 2 6 3] (the last two items are valid and test targets).
  np.testing.assert_array_equal(tr["seq"][0], [0, 1, 5, 2, 6])
  np.testing.assert_array_equal(tr["target"][0], [0, 5, 2, 6, 3])
  np.testing.assert_array_equal(tr["target_ab"][0], [0, 2, 6, 3, 0])
  ev = merit.inputs.eval_windows(ds, splits.eval_split(ds, "test"), len_max=8)
  # User 0's test input [1 5 2 6 3 7] cut to the window of 5: [5 2 6 3 7], target 4 (A).
  np.testing.assert_array_equal(ev["seq"][0], [5, 2, 6, 3, 7])
  first = {k: int(ev[k][0]) for k in ("idx_last_a", "idx_last_b", "target", "domain")}
  assert first == {"idx_last_a": 3, "idx_last_b": 4, "target": 4, "domain": 0}


@functools.cache
def _task(**model):
  config = contract.tiny_config("merit")
  config.model.update(dropout=0.0, **model)
  config.gca.positions = (0,)
  return contract.bind(config)


def _apply(task, params, batch, train=True):
  return task.model.module.apply({"params": params}, batch, train=train)


def _train_batch(task, rows=16):
  batch = {k: jnp.asarray(v[:rows]) for k, v in task.train_data.items()}
  batch["row_valid"] = jnp.ones(rows, bool)
  return batch


def test_top_left_mask_never_attends_the_other_domains_transfer():
  """The faithful ECAF mask: the A stream's output does not change when the B->A transfer does;
  with per_block it does, and the experts that feed it receive a gradient.
  """
  for mask, moves in (("top_left", False), ("per_block", True)):
    task = _task(ecaf_mask=mask)
    params = task.model.init(jax.random.key(0))
    batch = _train_batch(task)
    changed = jax.tree.map(lambda x: x, params)
    expert = changed["ffn_b"]["expert_a"]["fc_3"]
    # A random change (a constant shift would vanish in the LayerNorm that follows).
    kernel = expert["kernel"]
    expert["kernel"] = kernel + jax.random.normal(jax.random.key(9), kernel.shape)
    diff = jnp.abs(_apply(task, params, batch)["h_a"] - _apply(task, changed, batch)["h_a"]).max()
    assert (float(diff) > 1e-4) == moves, (mask, float(diff))
    grads = jax.grad(lambda p: task.model.loss(p, {}, batch, jax.random.key(1))[0])(params)
    reached = float(jnp.abs(grads["ffn_a"]["gate_b"]["kernel"]).max()) > 0
    assert reached == moves, mask


def test_rotated_positions_give_the_a_stream_only_the_padding_row():
  """The original's positions: the A stream's embedding (GCA[0]'s query input) ignores ep[1:];
  with own positions it does not. ep[0] gets no gradient (torch's padding_idx).
  """
  for positions, moves in (("rotated", False), ("own", True)):
    task = _task(positions=positions)
    params = task.model.init(jax.random.key(0))
    batch = _train_batch(task)
    changed = dict(params, ep=params["ep"].at[1:].add(0.3))
    x = lambda p: _apply(task, p, batch)["cells"]["gca0_A"]["x"]
    assert (float(jnp.abs(x(params) - x(changed)).max()) > 1e-4) == moves, positions
    grads = jax.grad(lambda p: task.model.loss(p, {}, batch, jax.random.key(1))[0])(params)
    assert float(jnp.abs(grads["ep"][0]).max()) == 0.0


def test_swapped_evaluation_scores_with_the_merged_stream_alone():
  """eval_stream="swapped": a target whose domain has an item in the window is scored by h_M
  alone (the stream read is masked to zero there); "own" adds the target domain's stream.
  """
  for stream in ("swapped", "own"):
    task = _task(eval_stream=stream)
    params = task.model.init(jax.random.key(0))
    ev = {k: jnp.asarray(v) for k, v in task.eval_data["valid"].items()}
    out = _apply(task, params, ev, train=False)
    seq, rows = np.asarray(ev["seq"]), np.arange(len(ev["seq"]))
    is_b = np.asarray(ev["domain"]) == 1
    slot = np.where(is_b, ev["idx_last_b"], ev["idx_last_a"])
    na = task.num_items_a
    has_own = np.where(is_b, seq[rows, slot] > na, (seq[rows, slot] > 0) & (seq[rows, slot] <= na))
    assert has_own.sum() > 10
    same = np.abs(np.asarray(out["h"]) - np.asarray(out["h_m"])).max(-1) < 1e-6
    assert same[has_own].all() == (stream == "swapped")


def test_own_cross_attentions_report_like_gca_cells_and_take_a_learned_gate():
  fixed = _task()
  assert set(merit.module.NATIVE_CELLS) <= set(fixed.cell_names)
  assert fixed.cell_labels["ecaf_A"] == "ecaf_A" and fixed.cell_labels["caf_M"] == "caf_M"
  params = fixed.model.init(jax.random.key(0))
  assert "gate_logit" not in params["ecaf_a"]
  cell = _apply(fixed, params, _train_batch(fixed))["cells"]["ecaf_B"]
  assert float(cell["alpha"]) == 1.0
  # The B stream's queries at B slots only; its keys [M->B ; A->B] are the first block's.
  assert cell["y"].shape[1] == 2 * cell["x"].shape[1]
  assert not bool(cell["y_mask"][:, cell["x"].shape[1] :].any())

  config = contract.tiny_config("merit")
  config.model.update(dropout=0.0, caf_gate="learned")
  config.gca.update(act="sigmoid", gate_init=-1.0)
  learned = contract.bind(config)
  params = learned.model.init(jax.random.key(0))
  for name in ("ecaf_a", "ecaf_b", "caf_m"):
    assert float(params[name]["gate_logit"]) == -1.0
  cell = _apply(learned, params, _train_batch(learned))["cells"]["caf_M"]
  assert float(cell["alpha"]) == pytest.approx(float(jax.nn.sigmoid(-1.0)))
  batch = _train_batch(learned)
  grads = jax.grad(lambda p: learned.model.loss(p, {}, batch, jax.random.key(1))[0])(params)
  assert float(jnp.abs(grads["caf_m"]["gate_logit"])) > 0


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("model.positions", "mine", "model.positions"),
    ("model.ecaf_mask", "causal", "model.ecaf_mask"),
    ("model.eval_stream", "b", "model.eval_stream"),
    ("model.caf_gate", "open", "model.caf_gate"),
    ("gca.positions", (2,), "gca.positions"),
  ],
)
def test_bad_settings_are_named(key, value, match):
  config = contract.tiny_config("merit")
  config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(config)


def test_config_validates_and_documents_its_command():
  cfg = merit_config.get_config()
  validation.validate(cfg)
  assert "python -m orthoalign.main --config=configs/merit.py" in merit_config.__doc__
  assert (cfg.model.width, cfg.model.heads, cfg.model.n_neg, cfg.model.max_len) == (256, 2, 128, 47)
  assert (cfg.train.weight_decay, cfg.train.plateau_factor) == (5.0, 0.4)


def test_parameter_count_food_kitchen_matches_original():
  path = require_data("abxi-afk")
  cfg = merit_config.get_config()
  cfg.data.path = str(path)
  # The original's count at demo.sh's settings, printed by tools/compare_merit_original.py
  # (docs/results/merit_port_check.md): sum(p.numel() for p in model.parameters()).
  assert param_count.count(cfg) == (16_631_296, 16_631_296)
  ds = data_load.load(cfg.data)
  assert (ds.num_items_a, ds.num_items_b) == (11837, 16258)


def test_orth_penalty_counts_gca_cells_only():
  """gca.orth_penalty penalises the GCA cells' cos^2(X, X'), not MERIT's own cross-attentions."""
  config = contract.tiny_config("merit")
  config.model.update(dropout=0.0)
  config.gca.update(positions=(0,), orth_penalty=1.0)
  task = contract.bind(config)
  params = task.model.init(jax.random.key(0))
  batch = _train_batch(task)
  _, metrics = task.model.loss(params, {}, batch, jax.random.key(1), dict(task.hparams))
  cells = _apply(task, params, batch)["cells"]
  gca_only = gca.mean_cos2({k: cells[k] for k in ("gca0_A", "gca0_B")})
  assert float(metrics["orth_cos2"]) == pytest.approx(float(gca_only), rel=1e-5)
  assert float(gca.mean_cos2(cells)) != pytest.approx(float(gca_only), rel=1e-3)


def test_gate_init_sweeps_need_a_learned_gate():
  """sweep.gate_inits without any learned gate trained identical replicas; now refused, and
  MERIT's learned cross-attention gates count as gates.
  """
  config = contract.tiny_config("merit")
  config.sweep.gate_inits = (0.0, 1.0)
  with pytest.raises(errors.ConfigError, match="sweep.gate_inits=.*no learned gate"):
    validation.validate(config)
  config.model.caf_gate = "learned"
  validation.validate(config)


def test_n_neg_must_leave_room_beside_every_history():
  """n_neg up to the catalog size was accepted; a user's history then left too few items and the
  sampler filled the rest with history ids, silently.
  """
  config = contract.tiny_config("merit")
  ds = data_load.load(config.data)
  config.model.n_neg = ds.num_items_b  # <= the catalog, more than some user leaves
  message = r"model.n_neg=30: MERIT draws .* of domain [AB] .* use at most \d+$"
  with pytest.raises(errors.ConfigError, match=message):
    contract.bind(config)
