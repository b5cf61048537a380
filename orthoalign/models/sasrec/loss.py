"""SASRec's BCE loss with one sampled negative per position, and its scoring."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.models import baseline
from orthoalign.models import gca as gca_lib
from orthoalign.models import negatives
from orthoalign.models.sasrec.config import Config
from orthoalign.models.sasrec.module import SASRec

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Hyper:
  """What the loss and scoring read besides the params: the settings and the catalogue sizes."""

  config: Config
  num_items_a: int
  num_items_b: int


def bce_pair(pos: Array, neg: Array, weight: Array) -> Array:
  """pmixer's loss: BCEWithLogits(pos, 1) + BCEWithLogits(neg, 0), each a mean over weighted tokens.

  Args:
    pos, neg: logits [B, L]; weight: bool [B, L] (positions with a next item).
  """
  w = weight.astype(pos.dtype)
  count = jnp.maximum(jnp.sum(w), 1.0)
  return (jnp.sum(jax.nn.softplus(-pos) * w) + jnp.sum(jax.nn.softplus(neg) * w)) / count


def _stream_ranges(hp: Hyper) -> dict[str, tuple[int, int, str]]:
  """Per stream: (global offset of its local ids, catalogue size, suffix of its window keys)."""
  na, nb = hp.num_items_a, hp.num_items_b
  if hp.config.streams == "dual":
    return {"a": (0, na, "_a"), "b": (na, nb, "_b")}
  return {"m": (0, na + nb, "")}


def train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> dict[str, Array]:
  """pmixer's `random_neq`: per stream, one negative per position [B, L] (local ids), uniform over
  the stream's catalogue minus the user's training items (batch["hist"]).
  """
  out = {}
  for s, (offset, n, key) in _stream_ranges(hp).items():
    pos = batch[f"pos{key}"]
    neg = negatives.sample_distinct_excluding(
      jax.random.fold_in(rng, offset), pos.shape, offset + 1, offset + n + 1, batch["hist"], 1
    )
    out[s] = neg[..., 0] - offset
  return out


def loss_fn(
  module: SASRec,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
  negs: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """SASRec's training loss on one batch (sum over streams); batch["row_valid"] masks padded rows.

  `negs` replaces the drawn negatives (`train_negatives`), for the port check.

  Returns:
    (loss, metrics) with metrics "loss" and "loss_<stream>" (and the GCA penalty's, where set).
  """
  r_drop, r_neg = jax.random.split(rng)
  negs = train_negatives(r_neg, batch, hp) if negs is None else negs
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=True, rngs={"dropout": r_drop})
  row = batch["row_valid"][:, None]
  loss, metrics = 0.0, {}
  for s, (_, _, key) in _stream_ranges(hp).items():
    table = params[f"item_emb_{s}"]
    pos, neg, f = batch[f"pos{key}"], negs[s], out[f"f_{s}"]
    part = bce_pair(jnp.sum(f * table[pos], -1), jnp.sum(f * table[neg], -1), (pos > 0) & row)
    if hp.config.l2_emb:
      part = part + hp.config.l2_emb * jnp.sqrt(jnp.sum(jnp.square(table)))
    metrics[f"loss_{s}"] = part
    loss = loss + part
  metrics["loss"] = loss
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_fn(
  module: SASRec, hp: Hyper, params: Any, frozen: Any, tables: Array, batch: dict[str, Array]
) -> baseline.EvalOutputs:
  """Scores of the frozen candidates and of every item by global id, from the last position.

  `tables` is the [nA+nB+1, d] table by global id (`tables_fn`); "dual" scores a case of domain D
  with D's stream, whose local ids are the global ones minus D's offset.
  """
  out = module.apply({"params": params, **frozen}, batch, train=False)
  cand = batch["cand"]
  if hp.config.streams == "mixed":
    v = out["f_m"][:, -1]
    sampled = jnp.einsum("bd,bcd->bc", v, tables[cand])
  else:
    is_b = batch["domain"] == 1
    v = jnp.where(is_b[:, None], out["f_b"][:, -1], out["f_a"][:, -1])
    # By global id: the both-domain table (A local j = global j, B local j = global nA + j).
    sampled = jnp.einsum("bd,bcd->bc", v, tables[jnp.clip(cand, 0, tables.shape[0] - 1)])
  return baseline.EvalOutputs(sampled_scores=sampled, full_scores=v @ tables.T, cells=out["cells"])
