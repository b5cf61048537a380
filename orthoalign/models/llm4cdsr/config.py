"""LLM4CDSR's `model.*` keys, their defaults and checks, and its replica hyperparameters."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import gca_checks

# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>): the
# loss reads them as arrays from the replica's state, not from Hyper. Loss weights are >= 0, the
# temperatures divide logits (> 0).
REPLICA_HPARAMS = {
  "alpha": dicts.NON_NEGATIVE,
  "beta": dicts.NON_NEGATIVE,
  "tau": dicts.POSITIVE,
  "tau_reg": dicts.POSITIVE,
}


@dataclasses.dataclass(frozen=True)
class Config:
  """LLM4CDSR's `model.*` keys, their defaults (upstream's, reference/baselines.md §2.4) and the
  Flax module's arguments. Upstream names (`liuqidong07/LLM4CDSR-pytorch`) in brackets.

  Attributes:
    width: hidden width of the three SASRec encoders [hidden_size].
    blocks: attention blocks per encoder [trm_num].
    heads: attention heads [num_heads].
    dropout: dropout rate [dropout_rate].
    ffn: inner width of the blocks' feed-forward layers; 0 = width (the original). Grown by
      parameter matching (orthoalign/models/param_count.py) for the scaling experiment.
    max_len: window length, the position table's rows minus one [max_len].
    global_emb: the mixed path reads the frozen text table through a joint PCA (<= global_dim) and
      the adapter; False = trainable ID embeddings ("w/o LLM"). Without item text (e.g. ABXI's
      files) the model falls back to ID embeddings.
    global_dim: the largest width of the mixed path's PCA table.
    local_emb: the domain paths read per-domain PCA tables of width `width`; False = ID embeddings.
    freeze_global: the mixed path's table is frozen [freeze_emb]; False trains it from the PCA
      table. (The domain tables are always frozen.)
    alpha, beta: weights of the item-regularisation and user-guidance losses; 0.1 / 0.1 as
      upstream's Amazon Cloth-Sport script (its Elec-Phone script: 1 / 1). Replica hyperparameters.
    tau, tau_reg: the temperatures of the user-guidance and item-regularisation losses.
    causal: causal self-attention (upstream comments its causal mask out: False is upstream's).
    mask_padding_keys: padding out of the self-attention keys (upstream lets it act as keys), so
      that an output does not depend on the padding around it; needed by train.length_buckets.
    mixed_neg_domain, independent_negatives, neg_exclusive_upper: quirks of the original's
      negatives (defaults = original behaviour; see the package docstring).
    reg_pool: the alpha loss's item pool: "inputs" = the training prefix without its last item
      (upstream), "history" = the whole training prefix (orthoalign before this key).
    missing_text: items without text in the frozen tables: "learned" = each its own trainable row
      (upstream has text for every item, so none of its items shares a vector), "zero" = all share
      the zero text row (orthoalign before this key).
    llm_emb_dir: the authors' embedding pickles (orthoalign/datasets/readers/llm4cdsr_tables.py):
      "auto" = read them from a handled data folder when there, "none" = never (orthoalign's
      substitutes), or a folder.
    llm_emb_file, user_emb_file: their file names [--llm_emb_file, --user_emb_file] ("item_emb"
      for the authors' Douban data).
  """

  width: int = 128
  blocks: int = 2
  heads: int = 1
  dropout: float = 0.5
  ffn: int = 0
  max_len: int = 200
  global_emb: bool = True
  global_dim: int = 1024
  local_emb: bool = True
  freeze_global: bool = True
  alpha: float = 0.1
  beta: float = 0.1
  tau: float = 1.0
  tau_reg: float = 1.0
  causal: bool = False
  mask_padding_keys: bool = False
  mixed_neg_domain: str = "input"
  independent_negatives: bool = True
  neg_exclusive_upper: bool = True
  reg_pool: str = "inputs"
  missing_text: str = "learned"
  llm_emb_dir: str = "auto"
  llm_emb_file: str = "itm_emb_np"
  user_emb_file: str = "usr_profile_emb"


_CHOICES = {"reg_pool": ("inputs", "history"), "missing_text": ("learned", "zero")}


def validate(config: ml_collections.ConfigDict) -> None:
  """LLM4CDSR's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: GCA positions outside 0..blocks, heads that do not divide
      the width, a GCA cell reading the mixed stream, or an out-of-range value (naming the key).
  """
  m = config.model
  for key in ("model.width", "model.blocks", "model.heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn", 0)
  dicts.check_int(config, "model.global_dim", 1)
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, range(m.blocks + 1), f"LLM4CDSR with model.blocks={m.blocks}")
  for key, choices in _CHOICES.items():
    dicts.choice(f"model.{key}", m[key], choices)
  if m.mixed_neg_domain not in ("input", "target"):
    raise errors.ConfigError(
      f"config key model.mixed_neg_domain={m.mixed_neg_domain!r}; valid "
      "choices: ['input', 'target']"
    )
  for key in ("llm_emb_dir", "llm_emb_file", "user_emb_file"):
    value = m[key]
    if not isinstance(value, str) or not value:
      raise errors.ConfigError(
        f"config key model.{key}={value!r}; expected a non-empty string"
        + (" ('auto', 'none' or a folder)" if key == "llm_emb_dir" else "")
      )
  dicts.check_fraction(config, "model.dropout")
