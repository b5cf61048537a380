"""CDSRNP's `model.*` keys, their defaults and checks, and its replica hyperparameter (beta)."""

from __future__ import annotations

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


def default_config() -> ml_collections.ConfigDict:
  """CDSRNP's `model.*` keys with their defaults (every choice the specification leaves open).

  Defaults follow C2DSR's lineage where it has one (2 causal blocks, 1 head, dropout 0.2,
  full-softmax cross-entropy) and the specification otherwise (beta = 1, 32 support users).
  """
  m = ml_collections.ConfigDict()
  m.name = "cdsrnp"
  m.label = "specification-level reimplementation (reference/cdsrnp.md); no paper code exists"
  # Per-domain causal SASRec encoders (C2DSR: d = 256, maxlen 15).
  m.hidden_size = 64
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.2
  m.max_len = 20
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size.
  m.ffn_size = 0
  # Mixed-sequence encoder whose state before each target is added to the user vector (C2DSR's
  # h_mix); needs a merged timeline. Off by default: the open-world data has none.
  m.mixed_encoder = False
  # Latent z: width; "shared" (one z from both directions' pairs) or "directional" (z_{A->B} for
  # the A stream, z_{B->A} for the B stream).
  m.latent_dim = 64
  m.latent = "shared"
  # Permutation-invariant pooling of pair encodings: "mean" or "attention".
  m.pooling = "mean"
  # y of a context pair: "sequence" (the other domain's encoder state) or "next_item" (the
  # embedding of the user's last item in the other domain).
  m.pair_y = "sequence"
  # Single-domain query users join the posterior Q+ with y = their own-domain last item (the
  # spec's "or"); never in their own z (the posterior is leave-one-out).
  m.posterior_single_domain = False
  # Fine-grained interest adaptive layer: "attention" (each token attends over the support set) or
  # "film" (TaNP FiLM from the support set's task vector); FiLM's memory unit: slots (0 = none)
  # and Student-t temperature.
  m.adapt = "attention"
  m.memory_slots = 0
  m.memory_tau = 1.0
  # Item scores: "dot" (tied to the input item table) or "linear" (output table + bias, C2DSR).
  m.scoring = "dot"
  # Episode: support users per step (overlapped training users; spec: 32-128), the pool they are
  # drawn from (0 = every overlapped training user), and the numpy seed of the frozen evaluation
  # support set (and of the pool when capped).
  m.support_size = 32
  m.support_pool = 0
  m.eval_support_seed = 0
  # Next-item loss: "full" (softmax over the domain's items) or "sampled" (the target and n_neg
  # negatives of its domain); beta weighs KL(posterior || prior) (a replica hyperparameter).
  m.loss = "full"
  m.n_neg = 100
  m.beta = 1.0
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k not in ("name", "label"))


def validate(config: ml_collections.ConfigDict) -> None:
  """CDSRNP's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions outside 0..num_blocks, heads that do not divide
      the width, an unknown choice or an out-of-range value (naming the
      key, its value and what is allowed).
  """
  dicts.require(config, _KEYS, "CDSRNP")
  m = config.model
  for key in (
    "model.hidden_size",
    "model.num_blocks",
    "model.num_heads",
    "model.max_len",
    "model.latent_dim",
    "model.support_size",
    "model.n_neg",
  ):
    dicts.check_int(config, key, 1)
  for key in (
    "model.ffn_size",
    "model.memory_slots",
    "model.support_pool",
    "model.eval_support_seed",
  ):
    dicts.check_int(config, key, 0)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"CDSRNP with model.num_blocks={m.num_blocks}"
  )
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
