"""A baseline defined and registered inside this file alone passes the contract suite and trains.

Adding a baseline touches its own code, one registry line and its config file; nothing in
orthoalign/config/, train/, experiments/ or analysis/. The toy here is the smallest model the
trainer accepts: per-domain item tables, a per-token MLP, an optional GCA cell after the
embeddings, a softmax over the domain's items, and one replica hyperparameter (a temperature).
"""

import dataclasses
from typing import Any

import contract
import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from configs import base
from orthoalign import errors
from orthoalign import models
from orthoalign.config import dicts
from orthoalign.config import validation
from orthoalign.datasets import load as data_load
from orthoalign.inputs import domain_windows
from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import gca_checks
from orthoalign.train import build
from orthoalign.train import loop


@dataclasses.dataclass(frozen=True)
class ToyConfig:
  """The toy's `model.*` keys.

  Attributes:
    width: item embedding width.
    max_len: window length.
    dropout: dropout after the MLP.
    temp: softmax temperature (a replica hyperparameter).
  """

  width: int = 8
  max_len: int = 8
  dropout: float = 0.0
  temp: float = 1.0


class ToyModule(nn.Module):
  """Per domain: tanh(W E[item]) per token; GCA cells after it (position 0)."""

  num_items_a: int
  num_items_b: int
  config: ToyConfig
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    d, sizes = self.config.width, {"a": self.num_items_a, "b": self.num_items_b}
    self.tables = {
      s: self.param(f"item_emb_{s}", nn.initializers.normal(0.1), (n + 1, d))
      for s, n in sizes.items()
    }
    self.mlp = {s: nn.Dense(d, name=f"mlp_{s}") for s in sizes}
    self.drop = nn.Dropout(self.config.dropout)
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def __call__(self, rows, *, train):
    h = {}
    for s in ("a", "b"):
      ids = rows[f"seq_{s}"]
      x = jnp.tanh(self.mlp[s](self.tables[s][ids]))
      h[s] = self.drop(x, deterministic=not train) * (ids > 0)[..., None]
    cells = {}
    if 0 in self.gca_positions:
      h.update(gca_lib.exchange(self.cells, 0, h, rows, train=train, out=cells))
    return {"h_a": h["a"], "h_b": h["b"], "cells": cells}


class Toy(baseline.Baseline):
  """The toy bound to a dataset."""

  TITLE = "Toy"
  Config = ToyConfig
  REPLICA_HPARAMS = {"temp": dicts.POSITIVE}

  @staticmethod
  def check(config):
    for key in ("model.width", "model.max_len"):
      dicts.check_int(config, key, 1)
    dicts.check_fraction(config, "model.dropout")
    dicts.check_divides(config, "gca.heads", "model.width")
    gca_checks.check_positions(config, (0,), "Toy")

  def __init__(self, ds, config):
    super().__init__(ds, config)
    gca = baseline.gca_settings(config)
    self.module = ToyModule(ds.num_items_a, ds.num_items_b, self.settings, gca.positions, gca.cell)

  def train_windows(self):
    return domain_windows.train_windows(self.ds, self.settings.max_len)

  def eval_windows(self, split):
    return domain_windows.eval_windows(self.ds, split, self.settings.max_len)

  def loss(self, params, frozen, batch, rng, hparams=None):
    temp = (hparams or self.hparams)["temp"]
    out = self.module.apply({"params": params}, batch, train=True, rngs={"dropout": rng})
    loss = 0.0
    for s in ("a", "b"):
      logits = out[f"h_{s}"] @ params[f"item_emb_{s}"].T / temp
      target = batch[f"pos_{s}"]
      weight = (target > 0) & batch["row_valid"][:, None]
      nll = -jnp.take_along_axis(jax.nn.log_softmax(logits[..., 1:]), target[..., None] - 1, -1)
      loss = loss + jnp.sum(nll[..., 0] * weight) / jnp.maximum(jnp.sum(weight), 1)
    return gca_lib.orth_penalty_loss(loss, {"loss": loss}, out["cells"], hparams)

  def tables(self, params, frozen):
    return jnp.concatenate([params["item_emb_a"], params["item_emb_b"][1:]])

  def score(self, params, frozen, tables, batch):
    out = self.module.apply({"params": params}, batch, train=False)
    v = jnp.where((batch["domain"] == 1)[:, None], out["h_b"][:, -1], out["h_a"][:, -1])
    sampled = jnp.einsum("bd,bcd->bc", v, tables[batch["cand"]])
    return baseline.EvalOutputs(
      sampled_scores=sampled, full_scores=v @ tables.T, cells=out["cells"]
    )


def _config():
  config = base.get_config("toy")
  config.data.synthetic.update(
    num_users=80, num_items_a=30, num_items_b=20, mean_length=8.0, max_length=14, seed=3
  )
  config.gca.positions = (0,)
  config.train.update(batch_size=16, max_epochs=2, num_devices=1)
  config.eval.update(num_negatives=5, batch_size=16)
  return config


@pytest.fixture(autouse=True, scope="module")
def toy_registered():
  models.register("toy", Toy)
  yield
  models.unregister("toy")


def test_the_config_layer_knows_it_from_its_class():
  config = _config()
  validation.validate(config)
  assert config.model.to_dict() == {
    "name": "toy",
    "width": 8,
    "max_len": 8,
    "dropout": 0.0,
    "temp": 1.0,
  }
  config.gca.positions = (1,)
  with pytest.raises(errors.ConfigError, match=r"gca.positions=\(1,\): Toy has GCA"):
    validation.validate(config)
  config = _config()
  config.model.hidden_size = 8
  with pytest.raises(errors.ConfigError, match=r"model.hidden_size is now model.width"):
    validation.validate(config)


def test_it_passes_the_contract(capsys, monkeypatch):
  config = _config()
  task = contract.bind(config)
  contract.building_prints_nothing(config, capsys)
  contract.init_is_finite_and_counted(config, task)
  contract.finite_loss_and_a_gradient_for_every_trainable_leaf(task)
  contract.hparams_enter_the_loss(task)
  contract.evaluation_outputs(task)
  contract.no_future_leakage(config, {"h_a": [("seq_a", "time_a", "a")]})
  contract.one_trace_per_epoch_program("toy", _config(), monkeypatch)


def test_it_trains_in_replicas_and_writes_results(tmp_path):
  contract.replica_equals_standalone_run(_config)
  config = _config()
  config.sweep.model.temp = (0.5, 2.0)
  rows = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert [r["model.temp"] for r in rows] == [0.5, 2.0]
  assert {"test/sampled/A/ndcg@10", "align/gca0_B/mean_abs_cos"} <= set(rows[0])


def test_metric_keys_name_the_datasets_domains(monkeypatch, tmp_path):
  """A dataset whose domains have other names than A and B reports its metrics under them."""
  config = _config()
  ds = data_load.load(config.data)
  renamed = dataclasses.replace(ds, domain_names=("Food", "Kitchen"))
  monkeypatch.setattr(data_load, "load", lambda data_config: renamed)
  run = build.setup(config)
  sums = run.eval_fn(run.state.params, run.frozen, run.eval_data["valid"])
  assert {"sampled/Food/ndcg@10", "full/Kitchen/auc", "sampled/all/count"} <= set(sums)
  assert not any("/A/" in f"/{k}/" for k in sums)
  assert "align/gca0_Kitchen/mean_abs_cos" in loop.train_and_evaluate(config, str(tmp_path))[0]
  with pytest.raises(errors.DataError, match="two distinct non-empty names"):
    dataclasses.replace(ds, domain_names=("Food", "Food"))


def test_a_model_refuses_data_with_another_number_of_domains():
  class ThreeDomains(Toy):
    DOMAINS = 3

  config = _config()
  with pytest.raises(errors.ConfigError, match=r"models 3 domains, but dataset .* has 2 \(A, B\)"):
    ThreeDomains(data_load.load(config.data), config)
