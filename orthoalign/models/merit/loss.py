"""MERIT's training objective (two InfoNCE losses over sampled negatives) and its scoring."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.infonce import Hyper
from orthoalign.models.infonce import domain_loss
from orthoalign.models.infonce import info_nce
from orthoalign.models.infonce import inner_product_scores
from orthoalign.models.merit.module import MERIT

Array = jax.Array


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> tuple[Array, Array]:
  """The original's training negatives (models/data/dataloader.py `get_m_neg`, `get_ab_neg`).

  Returns:
    (neg_m int [B, L, 2 n_neg]: n_neg distinct A items then n_neg distinct B items per position,
    for the merged loss; neg_ab int [B, L, n_neg]: n_neg distinct items of the domain of
    target_ab, for the domain loss), global ids, none in `hist`, drawn independently.
  """
  n, shape, hist = hp.config.n_neg, batch["target"].shape, batch["hist"]
  # The original's B pool arange(n_item_a, n_item + 1) with neg_b_off_by_one (Hyper.pools).
  (low_a, high_a), (low_b, high_b) = hp.pools().values()
  r = jax.random.split(rng, 4)
  draw_a = lambda key: negatives.sample_distinct_excluding(key, shape, low_a, high_a, hist, n)
  draw_b = lambda key: negatives.sample_distinct_excluding(key, shape, low_b, high_b, hist, n)
  neg_m = jnp.concatenate([draw_a(r[0]), draw_b(r[1])], axis=-1)
  in_a = (batch["target_ab"] <= hp.num_items_a)[..., None]
  neg_ab = jnp.where(in_a, draw_a(r[2]), draw_b(r[3]))
  return neg_m, neg_ab


def domain_losses(per_pos: Array, target: Array, na: int, row_valid: Array) -> Array:
  """The original's `cal_rec_loss` reduction: loss over A targets + loss over B targets."""
  loss_a = domain_loss(per_pos, (target > 0) & (target <= na), row_valid)
  return loss_a + domain_loss(per_pos, target > na, row_valid)


def losses(
  out: dict[str, Array],
  table: Array,
  batch: dict[str, Array],
  neg_m: Array,
  neg_ab: Array,
  hp: Hyper,
  temp: Any,
) -> tuple[Array, Array]:
  """(loss_f, loss_m) of `trainer.train_batch`: the domain loss of h_a + h_b + stop_gradient(h_m)
  against the next same-domain item, and the merged loss of h_m against the next item.
  """
  na, rows = hp.num_items_a, batch["row_valid"]
  h_f = out["h_a"] + out["h_b"] + jax.lax.stop_gradient(out["h_m"])
  per_f = info_nce(h_f, table, batch["target_ab"], neg_ab, temp, hp.catalog_scoring)
  per_m = info_nce(out["h_m"], table, batch["target"], neg_m, temp, hp.catalog_scoring)
  return (
    domain_losses(per_f, batch["target_ab"], na, rows),
    domain_losses(per_m, batch["target"], na, rows),
  )


def loss_fn(
  module: MERIT,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """MERIT's objective loss_f + loss_m on one batch; batch["row_valid"] masks padded rows.

  `hparams` {"temp"}: this replica's InfoNCE temperature (a scalar); None = hp.config.temp.
  """
  temp = (hparams or {}).get("temp", hp.config.temp)
  r_drop, r_neg = jax.random.split(rng)
  out = module.apply({"params": params, **frozen}, batch, train=True, rngs={"dropout": r_drop})
  neg_m, neg_ab = sample_train_negatives(r_neg, batch, hp)
  loss_f, loss_m = losses(out, params["ei"], batch, neg_m, neg_ab, hp, temp)
  loss = loss_f + loss_m
  return gca_lib.orth_penalty_loss(
    loss, {"loss": loss, "loss_f": loss_f, "loss_m": loss_m}, out["cells"], hparams
  )


def eval_fn(
  module: MERIT, params: Any, frozen: Any, table: Array, batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores <h, ei(item)> of the frozen candidates and of every item (by global id)."""
  out = module.apply({"params": params, **frozen}, batch, train=False)
  return inner_product_scores(out["h"], table, batch, out["cells"])
