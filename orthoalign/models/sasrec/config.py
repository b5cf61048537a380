"""SASRec's `model.*` keys (its Config), their defaults and checks."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import gca_checks

STREAMS = ("dual", "mixed")


POSITIONS = ("slot", "item")


REPLICA_HPARAMS = {}


@dataclasses.dataclass(frozen=True)
class Config:
  """SASRec's `model.*` keys, their defaults (pmixer/SASRec.pytorch's at 72ba89d, `main.py`) and
  the Flax module's arguments. pmixer's names in brackets.

  Attributes:
    streams: "dual" = one SASRec per domain, no shared parameters (GCA cells are the only
      cross-domain path); "mixed" = one SASRec over the merged timeline (no GCA cells).
    width: item embedding and hidden width [hidden_units].
    blocks: attention blocks [num_blocks].
    heads: attention heads [num_heads].
    dropout: dropout rate [dropout_rate].
    max_len: window length [maxlen].
    ffn: inner width of the blocks' feed-forward layers; 0 = width (pmixer's). Parameter-matched
      comparisons grow it (models/param_count.py).
    positions: position index: "slot" (0..L-1 of the padded window, pmixer 72ba89d) or "item"
      (1..n over the valid items, 1 = the oldest kept, 0 on padding; orthoalign's own).
    pre_ln: textbook pre-LN blocks (x + MHA(LN x), x + FFN(LN x)) instead of pmixer's Q = LN(x);
      Q + MHA [norm_first, in pmixer's later code].
    l2_emb: weight of the item table's Frobenius norm in the loss [l2_emb].
  """

  streams: str = "dual"
  width: int = 50
  blocks: int = 2
  heads: int = 1
  dropout: float = 0.5
  max_len: int = 50
  ffn: int = 0
  positions: str = "slot"
  pre_ln: bool = False
  l2_emb: float = 0.0


LABEL = "pmixer/SASRec.pytorch at 72ba89d, per domain (dual) or on the merged timeline (mixed)"


def validate(config: ml_collections.ConfigDict) -> None:
  """SASRec's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: an unknown choice, GCA positions on "mixed" or outside
      0..blocks, heads that do not divide the width, a value out of
      range (naming the key, its value and what is allowed).
  """
  m = config.model
  for key, choices in (("streams", STREAMS), ("positions", POSITIONS)):
    if m[key] not in choices:
      raise errors.ConfigError(f"config key model.{key}={m[key]!r}; valid choices: {list(choices)}")
  for key in ("model.width", "model.blocks", "model.heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn", 0)
  dicts.check_divides(config, "model.heads", "model.width")
  if m.streams == "mixed" and config.gca.positions:
    raise errors.ConfigError(
      f"config key gca.positions={tuple(config.gca.positions)}: model.streams='mixed' has one "
      "stream and so no GCA cell; use model.streams='dual' or gca.positions=()"
    )
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, range(m.blocks + 1), f"SASRec with model.blocks={m.blocks}")
  if not isinstance(m.pre_ln, bool):
    raise errors.ConfigError(f"config key model.pre_ln={m.pre_ln!r} must be True or False")
  dicts.check_fraction(config, "model.dropout")
  if not dicts.is_finite_number(m.l2_emb) or m.l2_emb < 0:
    raise errors.ConfigError(f"config key model.l2_emb={m.l2_emb!r} must be a finite number >= 0")
