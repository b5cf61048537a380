"""CDSRNP's `model.*` keys, their defaults and checks, and its replica hyperparameter (beta)."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import gca_checks

ADAPTS = ("attention", "film")


LATENTS = ("shared", "directional")


POOLINGS = ("mean", "attention")


PAIR_YS = ("sequence", "next_item")


LOSSES = ("full", "sampled")


SCORINGS = ("dot", "linear")


DIRECTIONS = ("ab", "ba")  # A->B: x = h^A, y = B side (read by the A stream); B->A likewise


# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>),
# with the values they may take: beta weighs a loss term.
REPLICA_HPARAMS = {"beta": dicts.NON_NEGATIVE}


@dataclasses.dataclass(frozen=True)
class Config:
  """CDSRNP's `model.*` keys, their defaults and the Flax module's arguments.

  No paper code exists (reference/cdsrnp.md), so there are no upstream names. Defaults follow
  C2DSR's lineage where it has one (2 causal blocks, 1 head, dropout 0.2, full-softmax
  cross-entropy; C2DSR itself: width 256, maxlen 15) and the specification otherwise (beta = 1,
  32 support users).

  Attributes:
    width, blocks, heads, dropout, max_len: the per-domain causal SASRec encoders.
    ffn: inner width of the blocks' feed-forward layers; 0 = width.
    mixed_encoder: a mixed-sequence encoder whose state before each target is added to the user
      vector (C2DSR's h_mix); needs a merged timeline. Off by default: the open-world data has none.
    latent_dim: width of the latent z.
    latent: "shared" (one z from both directions' pairs) or "directional" (z_{A->B} for the A
      stream, z_{B->A} for the B stream).
    pooling: permutation-invariant pooling of pair encodings: "mean" or "attention".
    pair_y: y of a context pair: "sequence" (the other domain's encoder state) or "next_item" (the
      embedding of the user's last item in the other domain).
    posterior_single_domain: single-domain query users join the posterior Q+ with y = their
      own-domain last item (the spec's "or"); never in their own z (the posterior is
      leave-one-out).
    adapt: fine-grained interest adaptive layer: "attention" (each token attends over the support
      set) or "film" (TaNP FiLM from the support set's task vector).
    memory_slots, memory_tau: FiLM's memory unit: slots (0 = none) and Student-t temperature.
    scoring: item scores: "dot" (tied to the input item table) or "linear" (output table + bias,
      C2DSR).
    support_size: support users per step (overlapped training users; spec: 32-128).
    support_pool: the pool they are drawn from (0 = every overlapped training user).
    eval_support_seed: numpy seed of the frozen evaluation support set (and of the pool when
      capped).
    loss: next-item loss: "full" (softmax over the domain's items) or "sampled" (the target and
      n_neg negatives of its domain).
    n_neg: negatives of the sampled loss.
    beta: weight of KL(posterior || prior) (a replica hyperparameter).
  """

  width: int = 64
  blocks: int = 2
  heads: int = 1
  dropout: float = 0.2
  max_len: int = 20
  ffn: int = 0
  mixed_encoder: bool = False
  latent_dim: int = 64
  latent: str = "shared"
  pooling: str = "mean"
  pair_y: str = "sequence"
  posterior_single_domain: bool = False
  adapt: str = "attention"
  memory_slots: int = 0
  memory_tau: float = 1.0
  scoring: str = "dot"
  support_size: int = 32
  support_pool: int = 0
  eval_support_seed: int = 0
  loss: str = "full"
  n_neg: int = 100
  beta: float = 1.0


LABEL = "specification-level reimplementation (reference/cdsrnp.md); no paper code exists"


def validate(config: ml_collections.ConfigDict) -> None:
  """CDSRNP's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: GCA positions outside 0..blocks, heads that do not divide
      the width, an unknown choice or an out-of-range value (naming the
      key, its value and what is allowed).
  """
  m = config.model
  for key in (
    "model.width",
    "model.blocks",
    "model.heads",
    "model.max_len",
    "model.latent_dim",
    "model.support_size",
    "model.n_neg",
  ):
    dicts.check_int(config, key, 1)
  for key in (
    "model.ffn",
    "model.memory_slots",
    "model.support_pool",
    "model.eval_support_seed",
  ):
    dicts.check_int(config, key, 0)
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, range(m.blocks + 1), f"CDSRNP with model.blocks={m.blocks}")
  for key, choices in (
    ("latent", LATENTS),
    ("pooling", POOLINGS),
    ("pair_y", PAIR_YS),
    ("adapt", ADAPTS),
    ("scoring", SCORINGS),
    ("loss", LOSSES),
  ):
    if m[key] not in choices:
      raise errors.ConfigError(f"config key model.{key}={m[key]!r}; valid choices: {list(choices)}")
  for key in ("mixed_encoder", "posterior_single_domain"):
    if not isinstance(m[key], bool):
      raise errors.ConfigError(f"config key model.{key}={m[key]!r} must be True or False")
  dicts.check_fraction(config, "model.dropout")
  dicts.check_number(config, "model.memory_tau", dicts.POSITIVE)
