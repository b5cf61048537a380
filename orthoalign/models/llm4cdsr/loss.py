"""LLM4CDSR's training loss (BCE + alpha / beta soft-CLIP terms), negatives and scoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.llm4cdsr.config import Config
from orthoalign.models.llm4cdsr.module import LLM4CDSR

Array = jax.Array


def soft_clip_loss(x: Array, y: Array, valid: Array, tau: float) -> Array:
  """LLM4CDSR's `Contrastive_Loss2` restricted to valid rows.

  logits = X Y^T / tau; targets = softmax((X X^T + Y Y^T) / 2 * tau) (the original multiplies by
  tau);
  symmetric soft cross-entropy, averaged over valid rows.
  """
  neg = jnp.finfo(x.dtype).min
  pair = valid[:, None] & valid[None, :]
  logits = jnp.where(pair, x @ y.T / tau, neg)
  targets = jax.nn.softmax(jnp.where(pair, (y @ y.T + x @ x.T) / 2 * tau, neg), axis=-1)
  targets = jnp.where(pair, targets, 0.0)
  x_loss = -jnp.sum(targets * jnp.where(pair, jax.nn.log_softmax(logits, -1), 0.0), -1)
  y_loss = -jnp.sum(targets.T * jnp.where(pair.T, jax.nn.log_softmax(logits.T, -1), 0.0), -1)
  w = valid.astype(x.dtype)
  return jnp.sum((x_loss + y_loss) / 2 * w) / jnp.maximum(jnp.sum(w), 1.0)


def _bce_pair(pos_logit: Array, neg_logit: Array, mask: Array) -> Array:
  """mean over masked tokens of BCE(pos, 1) + BCE(neg, 0)."""
  w = mask.astype(pos_logit.dtype)
  per = jax.nn.softplus(-pos_logit) + jax.nn.softplus(neg_logit)
  return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


@dataclasses.dataclass(frozen=True)
class Hyper:
  """What the loss and scoring read besides the params (static; not vmapped).

  Attributes:
    config: the `model.*` settings; its weights and temperatures are the config's values (the
      default hparams), the ones used are the replica's hparams.
    num_items_a, num_items_b: catalogue sizes.
    reg_term, user_term: whether the item-regularisation / user-guidance terms exist in the
      program: their weight is non-zero in the config or in any replica (the original's
      `if hp.alpha:` skip, kept when every replica has 0).
  """

  config: Config
  num_items_a: int
  num_items_b: int
  reg_term: bool = True
  user_term: bool = True


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> dict[str, Array]:
  """One negative per position for the mixed stream (global ids) and each domain stream (local)."""
  na, nb = hp.num_items_a, hp.num_items_b
  top = 0 if hp.config.neg_exclusive_upper else 1  # random_neq(1, n) vs the intended [1, n]
  r_m, r_a, r_b = jax.random.split(rng, 3)
  hist = batch["hist"]
  ones = lambda name: jnp.ones_like(batch[name])
  neg_a = negatives.sample_excluding(r_a, ones("pos_a"), ones("pos_a") * (na + top), hist)
  neg_b = negatives.sample_excluding(
    r_b, ones("pos_b"), ones("pos_b") * (nb + top), hist, offset=na
  )
  dom = (
    batch["in_dom"] if hp.config.mixed_neg_domain == "input" else _target_domain(batch["pos"], na)
  )
  low = jnp.where(dom == 1, na + 1, 1)
  high = jnp.where(dom == 1, na + nb + top, na + top)
  neg_m = negatives.sample_excluding(r_m, low, high, hist)
  if not hp.config.independent_negatives:
    # Shared negatives: the mixed position scored with a domain position uses the same item.
    for name, local, offset in (("a", neg_a, 0), ("b", neg_b, na)):
      idx = batch[f"mix_idx_{name}"]
      valid = idx >= 0
      rows = jnp.arange(idx.shape[0])[:, None]
      neg_m = neg_m.at[rows, jnp.where(valid, idx, idx.shape[1])].set(local + offset, mode="drop")
  return dict(neg=neg_m, neg_a=neg_a, neg_b=neg_b)


def _target_domain(pos: Array, na: int) -> Array:
  return jnp.where(pos > na, 1, 0)


def reg_pool_mask(batch: dict[str, Array], pool: str) -> Array:
  """bool [B, H]: the entries of batch["hist"] the alpha loss may draw its items from.

  "history": every item of the training prefix. "inputs" (upstream): the prefix without its last
  item, which is the last mixed target `pos[:, -1]` (windows are right-aligned); one occurrence is
  left out, so an item the user also bought earlier stays in the pool, as upstream's `[:-1]`.
  """
  hist = batch["hist"]
  valid = hist > 0
  if pool == "history":
    return valid
  hit = valid & (hist == batch["pos"][:, -1:])
  first = jnp.argmax(hit, axis=-1)
  drop = hit & (jnp.arange(hist.shape[1])[None, :] == first[:, None])
  return valid & ~drop


def loss_fn(
  module: LLM4CDSR,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """LLM4CDSR's training loss on one batch. batch['row_valid'] masks padded rows.

  `hparams` {alpha, beta, tau, tau_reg}: this replica's loss weights and temperatures (scalars);
  None = the config's values in `hp`.
  """
  c = hp.config
  h = {"alpha": c.alpha, "beta": c.beta, "tau": c.tau, "tau_reg": c.tau_reg, **(hparams or {})}
  r_drop, r_neg, r_reg = jax.random.split(rng, 3)
  negs = sample_train_negatives(r_neg, batch, hp)
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=True, rngs={"dropout": r_drop})
  row = batch["row_valid"][:, None]
  f_m = out["f_m"]
  mix = lambda ids: module.apply(variables, ids, method=LLM4CDSR.mix_items)
  mix_pos = jnp.sum(f_m * mix(batch["pos"]), -1)
  mix_neg = jnp.sum(f_m * mix(negs["neg"]), -1)
  rec = 0.0
  for name in ("a", "b"):
    f = out[f"f_{name}"]
    items = lambda ids: module.apply(variables, ids, name, method=LLM4CDSR.domain_items)
    pos_ids, idx = batch[f"pos_{name}"], batch[f"mix_idx_{name}"]
    valid = (pos_ids > 0) & row
    safe = jnp.maximum(idx, 0)
    pos_l = jnp.sum(f * items(pos_ids), -1) + jnp.take_along_axis(mix_pos, safe, 1)
    neg_l = jnp.sum(f * items(negs[f"neg_{name}"]), -1) + jnp.take_along_axis(mix_neg, safe, 1)
    rec = rec + _bce_pair(pos_l, neg_l, valid)
  loss = rec
  metrics = {"rec_loss": rec}
  if hp.reg_term:
    hist = batch["hist"]
    pool = reg_pool_mask(batch, hp.config.reg_pool)
    is_a = pool & (hist <= hp.num_items_a)
    is_b = pool & (hist > hp.num_items_a)
    ka, kb = jax.random.split(r_reg)
    reg_a, found_a = negatives.sample_from_rows(ka, hist, is_a)
    reg_b, found_b = negatives.sample_from_rows(kb, hist, is_b)
    reg = soft_clip_loss(
      mix(reg_a), mix(reg_b), found_a & found_b & batch["row_valid"], h["tau_reg"]
    )
    loss = loss + h["alpha"] * reg
    metrics["reg_loss"] = reg
  if hp.user_term and "user_profile" in batch:
    user = module.apply(variables, batch["user_profile"], method=LLM4CDSR.user_vectors)
    guide = soft_clip_loss(user, f_m[:, -1], batch["row_valid"], h["tau"])
    loss = loss + h["beta"] * guide
    metrics["user_loss"] = guide
  metrics["loss"] = loss
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_tables(module: LLM4CDSR, params: Any, frozen: Any) -> tuple[Array, Array, Array, Array]:
  """Once per evaluation: the mixed, A and B item tables, and the domain-path table by global id.

  Returns (mix [nA+nB+1, d], A [nA+1, d], B [nB+1, d], domain [nA+nB+1, d]); domain row j is A's
  row j for j <= nA and B's row j - nA above. Concatenating the tables once here, rather than the
  [cases, items] scores of every batch, keeps the scores' item axis in place when it is split
  over devices (train.item_shards).
  """
  mix_t, a_t, b_t = module.apply({"params": params, **frozen}, method=LLM4CDSR.item_tables)
  return mix_t, a_t, b_t, jnp.concatenate([a_t, b_t[1:]])


def eval_fn(
  module: LLM4CDSR, hp: Hyper, params: Any, frozen: Any, tables: Any, batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores of the sampled candidates and of the full target-domain catalog for one eval batch."""
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=False)
  mix_t, a_t, b_t, dom_t = tables
  is_b = batch["domain"] == 1
  f_m = out["f_m"][:, -1]
  f_dom = jnp.where(is_b[:, None], out["f_b"][:, -1], out["f_a"][:, -1])
  # Sampled protocol: mixed score of the global candidates + domain score of (independent) local
  # ones.
  cand, cand_dom = batch["cand"], batch["cand_dom"]
  dom_vecs = jnp.where(
    is_b[:, None, None],
    b_t[jnp.clip(cand_dom, 0, b_t.shape[0] - 1)],
    a_t[jnp.clip(cand_dom, 0, a_t.shape[0] - 1)],
  )
  sampled = jnp.einsum("bd,bcd->bc", f_m, mix_t[cand]) + jnp.einsum("bd,bcd->bc", f_dom, dom_vecs)
  # Full ranking over the target's domain: mixed + domain score of each item by global id (A local
  # j = global j; B local j = global nA + j). The domain part scores every item against the
  # global-layout table of both domains' rows (`tables_fn`); the trainer masks the other domain
  # out, so only the target domain's columns are ever read.
  full = f_m @ mix_t.T + f_dom @ dom_t.T
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=full, cells=out["cells"])
