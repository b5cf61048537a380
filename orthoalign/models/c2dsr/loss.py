"""C2DSR's training objective (`CDSRTrainer.train_batch`) and its scoring (`test_batch`)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models.c2dsr.module import C2DSR

Array = jax.Array


def corrupt(rng: Array, batch: dict[str, Array], num_items_a: int, num_items_b: int) -> dict:
  """`model.corruption="per_step"`: the batch with fresh corrupted sequences (the loader's rule:
  corrupt_a keeps the A items and draws a uniform B item at each B slot, corrupt_b the reverse).
  """
  seq, ka, kb = batch["seq"], *jax.random.split(rng)
  in_a = (seq > 0) & (seq <= num_items_a)
  in_b = seq > num_items_a
  rand_b = jax.random.randint(ka, seq.shape, num_items_a + 1, num_items_a + num_items_b + 1)
  rand_a = jax.random.randint(kb, seq.shape, 1, num_items_a + 1)
  return {
    **batch,
    "corrupt_a": jnp.where(in_b, rand_b, seq),
    "corrupt_b": jnp.where(in_a, rand_a, seq),
  }


def classes(target: Array, low: int, n: int) -> Array:
  """Class labels of a domain's classifier: the local id (target - low) where `target` is an item
  of the domain (ids low + 1 .. low + n), else n (the lin_PAD class, masked out anyway).
  """
  inside = (target > low) & (target <= low + n)
  return jnp.where(inside, target - low - 1, n), inside


def masked_ce(logits: Array, target: Array, low: int, n: int, rows: Array) -> Array:
  """`(CS_criterion(logits, ground) * mask).mean()`: cross-entropy at the slots with a target of
  the domain, averaged over every slot of the valid rows (masked slots count as 0).
  """
  label, mask = classes(target, low, n)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, label)
  w = mask & rows[:, None]
  return jnp.sum(jnp.where(w, ce, 0.0)) / jnp.maximum(jnp.sum(rows) * target.shape[1], 1)


def masked_bce(score: Array, label: float, rows: Array) -> Array:
  """`BCEWithLogitsLoss` (mean) of [B, 1] scores against a constant label, over the valid rows."""
  loss = optax.sigmoid_binary_cross_entropy(score[:, 0], jnp.full(score.shape[:1], label))
  return jnp.sum(jnp.where(rows, loss, 0.0)) / jnp.maximum(jnp.sum(rows), 1)


def losses(out: dict[str, Array], batch: dict[str, Array], na: int, nb: int, used: int) -> dict:
  """The six terms of `train_batch` from the module's outputs."""
  rows = batch["row_valid"]
  tail = lambda k: batch[k][:, -used:]
  domain = {"a": (0, na), "b": (na, nb)}
  terms = {}
  for s, (low, n) in domain.items():
    terms[f"share_{s}"] = masked_ce(out[f"share_{s}"], tail("target"), low, n, rows)
    terms[f"own_{s}"] = masked_ce(out[f"own_{s}"], tail(f"target_{s}"), low, n, rows)
    terms[f"mi_{s}"] = masked_bce(out[f"real_{s}"], 1.0, rows) + masked_bce(
      out[f"false_{s}"], 0.0, rows
    )
  return terms


def loss_fn(
  module: C2DSR,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """loss = lam (share_a + share_b + own_a + own_b) + (1 - lam) (mi_a + mi_b) on one batch.

  `hparams` {"lam"}: this replica's weight (a scalar); None = module.config.lam.
  """
  c = module.config
  lam = (hparams or {}).get("lam", c.lam)
  r_drop, r_corrupt = jax.random.split(rng)
  if c.corruption == "per_step":
    batch = corrupt(r_corrupt, batch, module.num_items_a, module.num_items_b)
  out = module.apply({"params": params, **frozen}, batch, train=True, rngs={"dropout": r_drop})
  terms = losses(out, batch, module.num_items_a, module.num_items_b, c.ce_positions)
  rec = terms["share_a"] + terms["share_b"] + terms["own_a"] + terms["own_b"]
  mi = terms["mi_a"] + terms["mi_b"]
  loss = lam * rec + (1.0 - lam) * mi
  return gca_lib.orth_penalty_loss(
    loss, {"loss": loss, "loss_rec": rec, "loss_mi": mi}, out["cells"], hparams
  )


def tables(module: C2DSR, params: Any, frozen: Any) -> dict[str, Array]:
  """The convolved item tables, computed once per evaluation (`graph_convolution` in eval mode)."""
  return module.apply({"params": params, **frozen}, train=False, method=C2DSR.convolve)


def eval_fn(
  module: C2DSR, params: Any, frozen: Any, conv: dict[str, Array], batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores of every item by global id (A from lin_X, B from lin_Y, the padding id the lowest
  float) and of the frozen candidates.
  """
  s_a, s_b, cells = module.apply({"params": params, **frozen}, batch, conv, method=C2DSR.score)
  pad = jnp.full((s_a.shape[0], 1), jnp.finfo(s_a.dtype).min, s_a.dtype)  # padding is no item
  full = jnp.concatenate([pad, s_a, s_b], -1)
  sampled = jnp.take_along_axis(full, batch["cand"], -1)
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=full, cells=cells)
