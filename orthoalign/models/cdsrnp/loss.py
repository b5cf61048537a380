"""CDSRNP's episode loss (next-item loss + beta * KL), support draws and scoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.cdsrnp.config import Config
from orthoalign.models.cdsrnp.module import CDSRNP

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Static settings of one CDSRNP run (not vmapped).

  Attributes:
    config: the `model.*` settings; its beta is the config's value (the default of the replica
      hyperparameter).
    num_items_a, num_items_b: catalog sizes.
    support_drawn: support users drawn per step (model.support_size, at most the pool's size).
  """

  config: Config
  num_items_a: int
  num_items_b: int
  support_drawn: int


def next_item_loss(
  v: Array,
  table: Array,
  bias: Array,
  target: Array,
  weight: Array,
  hp: Hyper,
  rng: Array,
  hist: Array,
  offset: int,
) -> Array:
  """Mean over weighted tokens of the next-item softmax loss of one domain.

  Args:
    v: user vectors [B, L, d]; table/bias: the domain's output vectors [n+1, d] and biases [n+1].
    target: local ids [B, L] (0 = none); weight: bool [B, L].
    hp: its config's loss: "full" (softmax over items 1..n) or "sampled" (target + n_neg distinct
      negatives of the domain outside `hist`).
    rng: negatives' key; hist: [B, H] sorted global ids; offset: the domain's global offset.
  """
  if hp.config.loss == "full":
    logits = v @ table.T + bias
    logits = logits.at[..., 0].set(jnp.finfo(logits.dtype).min)  # padding is no item
    per = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), target[..., None], -1)[..., 0]
  else:
    n = table.shape[0] - 1
    neg = (
      negatives.sample_distinct_excluding(
        rng, target.shape, offset + 1, offset + n + 1, hist, hp.config.n_neg
      )
      - offset
    )
    ids = jnp.concatenate([target[..., None], neg], -1)  # [B, L, 1+N]
    logits = jnp.einsum("bld,blnd->bln", v, table[ids]) + bias[ids]
    per = -jax.nn.log_softmax(logits, -1)[..., 0]
  per = jnp.where(weight, per, 0.0)  # positions without a target score the padding id
  return jnp.sum(per) / jnp.maximum(jnp.sum(weight.astype(per.dtype)), 1.0)


def draw_support(
  rng: Array, pool: dict[str, np.ndarray], size: int, batch: dict[str, Array]
) -> tuple[dict[str, Array], Array]:
  """An episode's support set: `size` pool rows without replacement; a row whose person (user) is
  in the batch (a valid row) is dropped (support_ok False).
  """
  n_pool = len(pool["person"])
  idx = jax.random.choice(rng, n_pool, (size,), replace=False)
  support = {k: jnp.asarray(v)[idx] for k, v in pool.items()}
  clash = (support["person"][:, None] == batch["person"][None, :]) & batch["row_valid"][None, :]
  return support, ~jnp.any(clash, -1)


def loss_fn(
  module: CDSRNP,
  hp: Hyper,
  pool: dict[str, np.ndarray],
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """CDSRNP's training loss on one batch (the query set); batch["row_valid"] masks padded rows.

  `hparams` {"beta"}: this replica's KL weight (a scalar); None = hp.config.beta.
  """
  beta = (hparams or {}).get("beta", hp.config.beta)
  r_sup, r_drop, r_z, r_neg = jax.random.split(rng, 4)
  support, support_ok = draw_support(r_sup, pool, hp.support_drawn, batch)
  variables = {"params": params, **frozen}
  out = module.apply(
    variables,
    batch,
    support,
    support_ok,
    batch["row_valid"],
    hp.config.posterior_single_domain,
    batch["person"],
    train=True,
    rngs={"dropout": r_drop, "latent": r_z},
    method=CDSRNP.episode,
  )
  tables = module.apply(variables, method=CDSRNP.tables)
  row = batch["row_valid"][:, None]
  metrics = {}
  rec = 0.0
  for x, key, offset in (("a", "A", 0), ("b", "B", hp.num_items_a)):
    target = batch[f"pos_{x}"]
    part = next_item_loss(
      out[f"v_{x}"],
      *tables[x],
      target,
      (target > 0) & row,
      hp,
      jax.random.fold_in(r_neg, offset),
      batch["hist"],
      offset,
    )
    metrics[f"loss_{key}"] = part
    rec = rec + part
  w = batch["row_valid"].astype(rec.dtype)
  kl = jnp.sum(out["kl"] * w) / jnp.maximum(jnp.sum(w), 1.0)
  loss = rec + beta * kl
  metrics.update(
    rec_loss=rec, kl=kl, loss=loss, support_used=jnp.sum(support_ok.astype(jnp.float32))
  )
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_fn(
  module: CDSRNP, hp: Hyper, params: Any, frozen: Any, tables: Any, batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores of the frozen candidates and of every item (by global id); reads no rng."""
  summary, out_tables = tables
  out = module.apply({"params": params, **frozen}, batch, summary, method=CDSRNP.eval_vectors)
  na = hp.num_items_a
  (w_a, b_a), (w_b, b_b) = out_tables["a"], out_tables["b"]
  is_b = batch["domain"] == 1
  v = jnp.where(is_b[:, None], out["v_b"], out["v_a"])
  cand = batch["cand"]
  local_a = jnp.clip(cand, 0, na)
  local_b = jnp.clip(cand - na, 0, w_b.shape[0] - 1)
  score_a = jnp.einsum("bd,bcd->bc", v, w_a[local_a]) + b_a[local_a]
  score_b = jnp.einsum("bd,bcd->bc", v, w_b[local_b]) + b_b[local_b]
  sampled = jnp.where(is_b[:, None], score_b, score_a)
  # By global id (A local j = global j, B local j >= 1 = global nA + j): the both-domain table that
  # `tables_fn` concatenates once per evaluation; the trainer masks the other domain's columns out.
  w_all, b_all = out_tables["all"]
  full = v @ w_all.T + b_all
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=full, cells=out["cells"])
