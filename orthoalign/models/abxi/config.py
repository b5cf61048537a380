"""ABXI's `model.*` keys, defaults and checks, its GCA positions and kv streams, its temp."""

from __future__ import annotations

import ml_collections

from orthoalign.config import dicts
from orthoalign.models import gca_checks

STREAMS = ("x", "a", "b")


GCA_POSITIONS = (0, 1, 2)  # after the embedding, after the attention block, after FFN/LoRA


GCA_KV = ("other", "mixed")


# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>),
# with the values they may take: the InfoNCE temperature divides the logits.
REPLICA_HPARAMS = {"temp": dicts.POSITIVE}


def default_config() -> ml_collections.ConfigDict:
  """ABXI's `model.*` keys with the v2.1 defaults for Food-Kitchen (reference/baselines.md §1.3)."""
  m = ml_collections.ConfigDict()
  m.name = "abxi"
  m.d_embed = 256
  m.n_head = 2
  m.d_ffn = 680
  m.dropout = 0.5
  m.temp = 0.75
  m.n_neg = 128
  m.max_len = 50
  # Dataset-dependent LoRA ranks (demo.sh): afk 16/64, abe 64/64, amb 4/4.
  m.rd = 16
  m.ri = 64
  # Quirk of v2 (default = original behaviour; see the module docstring): id nA may be a B negative.
  m.neg_b_off_by_one = True
  # Evaluation domain sequences: "inplace" = the original trainer (seq_x with the other domain's
  # items zeroed), "compact" = the own-domain history left-padded (see data/abxi_windows.py).
  m.eval_domain_seq = "inplace"
  # How negative logits are computed (same numbers): "gather" their embeddings (less compute, CPU),
  # "catalog" = score all items then pick (less memory, GPU/TPU), "auto" = by backend.
  m.neg_scoring = "auto"
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k != "name")


def validate(config: ml_collections.ConfigDict) -> None:
  """ABXI's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions other than 0/1/2, heads that do not divide
      d_embed, an unknown neg_scoring / eval_domain_seq, or a window shorter than 5 (gca.kv is
      checked against GCA_KV with the other gca.* keys).
  """
  dicts.require(config, _KEYS, "ABXI")
  m = config.model
  for key in (
    "model.d_embed",
    "model.n_head",
    "model.d_ffn",
    "model.n_neg",
    "model.rd",
    "model.ri",
  ):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.max_len", 5)  # windows are max_len - 3 long
  dicts.check_divides(config, "model.n_head", "model.d_embed")
  dicts.check_divides(config, "gca.heads", "model.d_embed")
  gca_checks.check_positions(config, GCA_POSITIONS, "ABXI")
  dicts.choice("model.neg_scoring", m.neg_scoring, ("auto", "gather", "catalog"))
  dicts.choice("model.eval_domain_seq", m.eval_domain_seq, ("inplace", "compact"))
  dicts.check_fraction(config, "model.dropout")
