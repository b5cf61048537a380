"""ABXI's InfoNCE loss over sampled negatives, and its scoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.abxi.config import Config
from orthoalign.models.abxi.module import ABXI
from orthoalign.models.infonce import domain_loss
from orthoalign.models.infonce import info_nce

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Loss and sampling settings of one ABXI run (static; not vmapped).

  Attributes:
    config: the `model.*` settings (its temp is the replica hyperparameter's default).
    num_items_a, num_items_b: catalog sizes.
    catalog_scoring: model.neg_scoring resolved for this backend (inputs.catalog_scoring).
  """

  config: Config
  num_items_a: int
  num_items_b: int
  catalog_scoring: bool = False


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> Array:
  """[B, L, 2 * n_neg] global ids: per position n_neg distinct A items then n_neg distinct B items
  (without replacement, as the original), none in `hist`.
  """
  na, nb = hp.num_items_a, hp.num_items_b
  shape, hist = batch["target"].shape, batch["hist"]
  r_a, r_b = jax.random.split(rng)
  neg_a = negatives.sample_distinct_excluding(r_a, shape, 1, na + 1, hist, hp.config.n_neg)
  low_b = na if hp.config.neg_b_off_by_one else na + 1  # v2's arange(n_item_a, n_item + 1)
  neg_b = negatives.sample_distinct_excluding(r_b, shape, low_b, na + nb + 1, hist, hp.config.n_neg)
  return jnp.concatenate([neg_a, neg_b], axis=-1)


def loss_fn(
  module: ABXI,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """ABXI's training objective loss_A + loss_B on one batch; batch["row_valid"] masks padded rows.

  `hparams` {"temp"}: this replica's InfoNCE temperature (a scalar); None = hp.config.temp.
  """
  temp = (hparams or {}).get("temp", hp.config.temp)
  r_drop, r_neg = jax.random.split(rng)
  out = module.apply({"params": params, **frozen}, batch, train=True, rngs={"dropout": r_drop})
  neg = sample_train_negatives(r_neg, batch, hp)
  target = batch["target"]
  per_pos = info_nce(out["h"], params["ei"], target, neg, temp, hp.catalog_scoring)
  na = hp.num_items_a
  loss_a = domain_loss(per_pos, (target > 0) & (target <= na), batch["row_valid"])
  loss_b = domain_loss(per_pos, target > na, batch["row_valid"])
  loss = loss_a + loss_b
  return gca_lib.orth_penalty_loss(
    loss, {"loss": loss, "loss_a": loss_a, "loss_b": loss_b}, out["cells"], hparams
  )


def eval_fn(
  module: ABXI, params: Any, frozen: Any, table: Array, batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores <h, ei(item)> of the frozen candidates and of every item (by global id)."""
  out = module.apply({"params": params, **frozen}, batch, train=False)
  h = out["h"]
  sampled = jnp.einsum("bd,bcd->bc", h, table[batch["cand"]])
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=h @ table.T, cells=out["cells"])
