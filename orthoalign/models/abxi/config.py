"""ABXI's `model.*` keys, defaults and checks, its GCA positions and kv streams, its temp."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign.config import dicts
from orthoalign.models import gca_checks

STREAMS = ("x", "a", "b")


GCA_POSITIONS = (0, 1, 2)  # after the embedding, after the attention block, after FFN/LoRA


GCA_KV = ("other", "mixed")


# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>),
# with the values they may take: the InfoNCE temperature divides the logits.
REPLICA_HPARAMS = {"temp": dicts.POSITIVE}


@dataclasses.dataclass(frozen=True)
class Config:
  """ABXI's `model.*` keys, their defaults (v2.1's for Food-Kitchen, reference/baselines.md §1.3)
  and the Flax module's arguments. Upstream names (`DiMarzioBian/ABXI`, main.py) in brackets.

  Attributes:
    width: item embedding and model width [d_embed].
    heads: attention heads [n_head].
    ffn: hidden width of the SwiGLU FFN and of the three projectors [d_ffn]; >= 1.
    dropout: the shared dropout rate [dropout].
    temp: InfoNCE temperature [temp]; a replica hyperparameter.
    n_neg: negatives per domain at every position [n_neg].
    max_len: window length, as for every model: the positions the encoder reads. Upstream's
      `len_max` (50) is the user's last items kept including the validation and test targets,
      and its windows are `len_max - 3` long [len_trim], so max_len = 47 is upstream's setting.
    rd, ri: ranks of the domain LoRAs (x, a, b) and of the invariant LoRAs (a, b) [rd, ri]; they
      depend on the dataset (demo.sh): afk 16/64, abe 64/64, amb 4/4.
    neg_b_off_by_one: quirk of v2 (default = original behaviour; see the package docstring): id nA
      may be drawn as a B negative.
    eval_domain_seq: evaluation domain sequences: "inplace" = the original trainer (seq_x with the
      other domain's items zeroed), "compact" = the own-domain history left-padded
      (inputs/abxi_windows.py).
    neg_scoring: how negative logits are computed (same numbers): "gather" their embeddings (less
      compute, CPU), "catalog" = score all items then pick (less memory, GPU/TPU), "auto" = by
      backend.
    mask_padding_keys: padding out of the self-attention keys (a deviation, off by default: the
      original's attention has no key-padding mask, so padding slots, zero vectors whose keys and
      values are the in-projection bias, take part in every softmax). Needed by
      train.length_buckets: only then does cutting padding off a batch leave its outputs as they
      are.
  """

  width: int = 256
  heads: int = 2
  ffn: int = 680
  dropout: float = 0.5
  temp: float = 0.75
  n_neg: int = 128
  max_len: int = 47
  rd: int = 16
  ri: int = 64
  neg_b_off_by_one: bool = True
  eval_domain_seq: str = "inplace"
  neg_scoring: str = "auto"
  mask_padding_keys: bool = False

  @property
  def len_max(self) -> int:
    """Upstream's `len_max`: the user's last items kept, the two evaluation targets included."""
    return self.max_len + 3


def validate(config: ml_collections.ConfigDict) -> None:
  """ABXI's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: GCA positions other than 0/1/2, heads that do not divide
      the width, an unknown neg_scoring / eval_domain_seq, or a window shorter than 2 (gca.kv is
      checked against GCA_KV with the other gca.* keys).
  """
  m = config.model
  for key in ("model.width", "model.heads", "model.ffn", "model.n_neg", "model.rd", "model.ri"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.max_len", 2)
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, GCA_POSITIONS, "ABXI")
  dicts.choice("model.neg_scoring", m.neg_scoring, ("auto", "gather", "catalog"))
  dicts.choice("model.eval_domain_seq", m.eval_domain_seq, ("inplace", "compact"))
  dicts.check_fraction(config, "model.dropout")
