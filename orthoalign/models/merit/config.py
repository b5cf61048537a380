"""MERIT's `model.*` keys, defaults and checks, its GCA positions and kv streams, its temp."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign.config import dicts
from orthoalign.models import gca_checks

# The three streams, named by the items they hold: the merged sequence (m) and the in-place A and B
# sequences (the original names the A-item stream `h_b` and the B-item stream `h_a`).
STREAMS = ("m", "a", "b")

GCA_POSITIONS = (0, 1)  # after the embedding, after the self-attention blocks

GCA_KV = ("other", "mixed")

POSITIONS = ("rotated", "own")
ECAF_MASKS = ("top_left", "per_block")
EVAL_STREAMS = ("swapped", "own")
CAF_GATES = ("fixed", "learned")

# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>).
REPLICA_HPARAMS = {"temp": dicts.POSITIVE}


@dataclasses.dataclass(frozen=True)
class Config:
  """MERIT's `model.*` keys, their defaults (`DiMarzioBian/MERIT` 932ebee, main.py and demo.sh)
  and the Flax module's arguments. Upstream names in brackets.

  Attributes:
    width: item embedding and model width [d_embed].
    heads: attention heads of every self- and cross-attention [n_head].
    ffn: hidden width of every SwiGLU expert and feed-forward block [d_ffn, fixed at 680 in
      models/ffn.py].
    dropout: the dropout rate of every branch [dropout].
    temp: InfoNCE temperature [temp]; a replica hyperparameter.
    n_neg: training negatives per position and domain [n_neg]: the merged loss draws n_neg A and
      n_neg B items, the domain loss n_neg items of the target's domain.
    max_len: window length [len_trim = len_max - 3]; 47 is upstream's len_max 50.
    positions: "rotated" = the original's position embeddings (the merged stream is indexed by the
      A-item positions, the A stream by the B-item positions, which are 0 there, so every A token
      gets the untrained padding row ep[0], and the B stream by the merged positions); "own" = each
      stream its own backward positions.
    ecaf_mask: the extended cross-attention's mask over its two key/value blocks: "top_left" = what
      the original computes (its [L, 3L] mask is dropped by torch's `is_causal` hint and the
      top-left causal mask of an L x 2L attention lets query t see only the first block's slots
      0..t: the other domain's transfer stream is never attended); "per_block" = query t sees
      slots 0..t of both blocks.
    eval_stream: which domain stream scores a target at evaluation: "swapped" = the original's
      (an A target reads the B-item stream at the slot of the last A item, where that stream is
      masked to zero, so the score is the merged stream's alone unless the window holds no A
      item); "own" = the target domain's stream at its last item.
    caf_gate: the residual gate of MERIT's own cross-attentions: "fixed" = 1 (the original,
      LN(X + Dropout(MHA))); "learned" = LN(X + alpha * Dropout(MHA)) with alpha from gca.gate,
      gca.act and gca.gate_init.
    neg_b_off_by_one: quirk of the original's sampler (default = original): `idx_all_b =
      arange(n_item_a, n_item + 1)` lets the last A item (id nA) be drawn as a B negative.
    neg_scoring: how negative logits are computed (same numbers): "gather", "catalog" or "auto"
      (models/infonce.py).
  """

  width: int = 256
  heads: int = 2
  ffn: int = 680
  dropout: float = 0.5
  temp: float = 0.75
  n_neg: int = 128
  max_len: int = 47
  positions: str = "rotated"
  ecaf_mask: str = "top_left"
  eval_stream: str = "swapped"
  caf_gate: str = "fixed"
  neg_b_off_by_one: bool = True
  neg_scoring: str = "auto"

  @property
  def len_max(self) -> int:
    """Upstream's `len_max`: the user's last items kept, the two evaluation targets included."""
    return self.max_len + 3


def validate(config: ml_collections.ConfigDict) -> None:
  """MERIT's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: GCA positions other than 0/1, heads that do not divide the width, an unknown
      choice, or a window shorter than 2.
  """
  m = config.model
  for key in ("model.width", "model.heads", "model.ffn", "model.n_neg"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.max_len", 2)
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, GCA_POSITIONS, "MERIT")
  dicts.choice("model.positions", m.positions, POSITIONS)
  dicts.choice("model.ecaf_mask", m.ecaf_mask, ECAF_MASKS)
  dicts.choice("model.eval_stream", m.eval_stream, EVAL_STREAMS)
  dicts.choice("model.caf_gate", m.caf_gate, CAF_GATES)
  dicts.choice("model.neg_scoring", m.neg_scoring, ("auto", "gather", "catalog"))
  dicts.check_fraction(config, "model.dropout")
