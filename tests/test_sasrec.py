"""SASRec (pmixer/SASRec.pytorch at 72ba89d) per domain or on the merged timeline.

The float64 comparison with the original code is tools/compare_sasrec_original.py
(docs/results/sasrec_port_check.md); the model contract is tests/test_model_contract.py.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny_sasrec
from orthoalign import errors
from orthoalign.config import validation
from orthoalign.datasets import load as data_load
from orthoalign.models import sasrec
from orthoalign.train import task as task_lib


def _task(**model):
  config = tiny_sasrec.get_config()
  config.model.update(dropout=0.0, **model.pop("model", {}))
  config.gca.positions = model.pop("positions", ())
  validation.validate(config)
  return task_lib.bind(data_load.load(config.data), config)


def test_dual_streams_share_nothing_without_a_cell_and_meet_through_one():
  rows = 8
  for positions, crosses in (((), False), ((0,), True)):
    task = _task(positions=positions)
    params = task.model.init(jax.random.key(0))
    batch = {k: jnp.asarray(v[:rows]) for k, v in task.train_data.items()}
    both = (np.asarray(batch["seq_a"]) > 0).any(1) & (np.asarray(batch["seq_b"]) > 0).any(1)
    assert both.any()
    other = batch["seq_b"].at[:].set(jnp.where(batch["seq_b"] > 0, 1 + batch["seq_b"] % 5, 0))
    apply = lambda b: task.model.module.apply({"params": params}, b, train=False)
    before, after = apply(batch), apply({**batch, "seq_b": other})
    moved = np.abs(np.asarray(before["f_a"]) - np.asarray(after["f_a"])).max(axis=(1, 2))
    assert (moved[both] > 1e-4).all() if crosses else moved.max() == 0.0, positions
    if not positions:
      assert not any(k.startswith("gca") for k in params)


def test_negatives_stay_in_the_stream_and_outside_the_users_items():
  task = _task()
  batch = {k: jnp.asarray(v) for k, v in task.train_data.items()}
  hp = sasrec.loss.Hyper(task.model.module.config, task.num_items_a, task.num_items_b)
  negs = jax.device_get(sasrec.loss.train_negatives(jax.random.key(1), batch, hp))
  hist = np.asarray(batch["hist"])
  for s, offset, n in (("a", 0, task.num_items_a), ("b", task.num_items_a, task.num_items_b)):
    neg = negs[s]
    assert neg.shape == batch[f"pos_{s}"].shape and neg.min() >= 1 and neg.max() <= n
    for r in range(len(neg)):
      assert not set((neg[r] + offset).tolist()) & set(hist[r][hist[r] > 0].tolist())


def test_bce_pair_is_pmixers_two_means():
  pos = jnp.asarray([[0.5, -1.0, 2.0]])
  neg = jnp.asarray([[0.1, 0.3, -0.7]])
  weight = jnp.asarray([[True, False, True]])
  sig = lambda x: 1 / (1 + np.exp(-x))
  want = (-np.log(sig(0.5)) - np.log(sig(2.0))) / 2 + (
    -np.log(1 - sig(0.1)) - np.log(1 - sig(-0.7))
  ) / 2
  assert float(sasrec.loss.bce_pair(pos, neg, weight)) == pytest.approx(want, rel=1e-6)


def test_mixed_stream_trains_on_the_merged_catalogue():
  task = _task(model={"streams": "mixed"})
  params = task.model.init(jax.random.key(0))
  assert params["item_emb_m"].shape[0] == task.num_items_a + task.num_items_b + 1
  batch = {k: jnp.asarray(v[:16]) for k, v in task.train_data.items()}
  batch["row_valid"] = jnp.ones(16, bool)
  loss, metrics = task.model.loss(params, task.model.frozen, batch, jax.random.key(2))
  assert np.isfinite(float(loss)) and set(metrics) == {"loss", "loss_m"}


def test_flags_change_the_computation():
  outs = []
  for model in ({}, {"pre_ln": True}, {"positions": "item"}):
    task = _task(model=model)
    params = task.model.init(jax.random.key(0))
    batch = {k: jnp.asarray(v[:8]) for k, v in task.train_data.items()}
    outs.append(np.asarray(task.model.module.apply({"params": params}, batch, train=False)["f_a"]))
  assert np.abs(outs[0] - outs[1]).max() > 1e-3 and np.abs(outs[0] - outs[2]).max() > 1e-3


@pytest.mark.parametrize(
  "overrides, match",
  [
    ({"model.streams": "mixed", "gca.positions": (0,)}, "model.streams='mixed' has one stream"),
    ({"model.streams": "both"}, "model.streams='both'; valid choices: \\['dual', 'mixed'\\]"),
    ({"model.positions": "time"}, "model.positions='time'; valid choices"),
    ({"gca.positions": (3,)}, "SASRec with model.blocks=1 has GCA positions \\[0, 1\\]"),
    ({"gca.kv": "mixed"}, r"gca.kv='mixed': model.name='sasrec' supports \['other'\]"),
    ({"model.l2_emb": -1.0}, "model.l2_emb=-1.0 must be a finite number >= 0"),
    ({"model.l2_emb": float("nan")}, "model.l2_emb=nan must be a finite number >= 0"),
  ],
)
def test_config_errors_name_the_key(overrides, match):
  config = tiny_sasrec.get_config()
  config.update_from_flattened_dict(overrides)
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(config)


def test_mixed_refuses_data_without_a_merged_timeline():
  config = tiny_sasrec.get_config()
  config.model.streams = "mixed"
  config.gca.positions = ()
  ds = dataclasses.replace(data_load.load(config.data), merged_timeline=False)
  with pytest.raises(errors.ConfigError, match="needs a merged timeline"):
    task_lib.bind(ds, config)
  config.model.streams = "dual"
  assert task_lib.bind(ds, config).num_items_a == ds.num_items_a  # per-domain windows need none
