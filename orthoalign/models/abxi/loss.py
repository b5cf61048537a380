"""ABXI's InfoNCE loss over sampled negatives, and its scoring."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.abxi.module import ABXI
from orthoalign.models.infonce import Hyper
from orthoalign.models.infonce import domain_loss
from orthoalign.models.infonce import info_nce
from orthoalign.models.infonce import inner_product_scores

Array = jax.Array


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> Array:
  """[B, L, 2 * n_neg] global ids: per position n_neg distinct A items then n_neg distinct B items
  (without replacement, as the original), none in `hist`.
  """
  shape, hist = batch["target"].shape, batch["hist"]
  r_a, r_b = jax.random.split(rng)
  # v2's B pool arange(n_item_a, n_item + 1) with neg_b_off_by_one (Hyper.pools).
  (low_a, high_a), (low_b, high_b) = hp.pools().values()
  neg_a = negatives.sample_distinct_excluding(r_a, shape, low_a, high_a, hist, hp.config.n_neg)
  neg_b = negatives.sample_distinct_excluding(r_b, shape, low_b, high_b, hist, hp.config.n_neg)
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
  return inner_product_scores(out["h"], table, batch, out["cells"])
