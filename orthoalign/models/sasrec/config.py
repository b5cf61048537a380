"""SASRec's `model.*` keys, their defaults and checks."""

from __future__ import annotations

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import gca_checks

STREAMS = ("dual", "mixed")


POSITIONS = ("slot", "item")


REPLICA_HPARAMS = {}


def default_config() -> ml_collections.ConfigDict:
  """SASRec's `model.*` keys with pmixer/SASRec.pytorch's defaults at 72ba89d (`main.py`)."""
  m = ml_collections.ConfigDict()
  m.name = "sasrec"
  m.label = "pmixer/SASRec.pytorch at 72ba89d, per domain (dual) or on the merged timeline (mixed)"
  # "dual": one SASRec per domain, no shared parameters (GCA cells are the only cross-domain path);
  # "mixed": one SASRec over the merged timeline (no GCA cells).
  m.streams = "dual"
  m.hidden_size = 50
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.5
  m.max_len = 50
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size (pmixer's). Parameter-matched
  # comparisons grow it (models/param_count.py).
  m.ffn_size = 0
  # Position index: "slot" (0..L-1 of the padded window, pmixer 72ba89d) or "item" (1..n over the
  # valid items, 1 = the oldest kept, 0 on padding; orthoalign's own).
  m.positions = "slot"
  # Textbook pre-LN blocks (x + MHA(LN x), x + FFN(LN x)) instead of pmixer's Q = LN(x); Q + MHA.
  m.pre_ln = False
  # Weight of the item table's Frobenius norm in the loss (pmixer's l2_emb).
  m.l2_emb = 0.0
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k not in ("name", "label"))


def validate(config: ml_collections.ConfigDict) -> None:
  """SASRec's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, an unknown choice, GCA positions on "mixed" or outside
      0..num_blocks, heads that do not divide the width, a value out of
      range (naming the key, its value and what is allowed).
  """
  dicts.require(config, _KEYS, "SASRec")
  m = config.model
  for key, choices in (("streams", STREAMS), ("positions", POSITIONS)):
    if m[key] not in choices:
      raise errors.ConfigError(f"config key model.{key}={m[key]!r}; valid choices: {list(choices)}")
  for key in ("model.hidden_size", "model.num_blocks", "model.num_heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn_size", 0)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  if m.streams == "mixed" and config.gca.positions:
    raise errors.ConfigError(
      f"config key gca.positions={tuple(config.gca.positions)}: model.streams='mixed' has one "
      "stream and so no GCA cell; use model.streams='dual' or gca.positions=()"
    )
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"SASRec with model.num_blocks={m.num_blocks}"
  )
  if not isinstance(m.pre_ln, bool):
    raise errors.ConfigError(f"config key model.pre_ln={m.pre_ln!r} must be True or False")
  dicts.check_fraction(config, "model.dropout")
  if not dicts.is_finite_number(m.l2_emb) or m.l2_emb < 0:
    raise errors.ConfigError(f"config key model.l2_emb={m.l2_emb!r} must be a finite number >= 0")
