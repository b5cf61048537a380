"""LLM4CDSR's `model.*` keys, their defaults and checks, and its replica hyperparameters."""

from __future__ import annotations

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


def default_config() -> ml_collections.ConfigDict:
  """LLM4CDSR's `model.*` keys with the upstream defaults (reference/baselines.md §2.4)."""
  m = ml_collections.ConfigDict()
  m.name = "llm4cdsr"
  m.hidden_size = 128
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.5
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size (the original). Grown by
  # parameter matching (orthoalign/models/param_count.py) for the scaling experiment.
  m.ffn_size = 0
  m.max_len = 200
  # Frozen text tables: mixed path via a joint PCA (<= global_dim) + adapter; domain paths via
  # per-domain PCA to hidden_size. Off = trainable ID embeddings ("w/o LLM"). Without item text
  # (e.g. ABXI's files) the model falls back to ID embeddings.
  m.global_emb = True
  m.global_dim = 1024
  m.local_emb = True
  m.freeze_emb = True
  # Auxiliary losses: alpha * item regularisation, beta * user guidance, and their temperatures.
  # 0.1 / 0.1 as upstream's Amazon Cloth-Sport script (its Elec-Phone script: 1 / 1).
  m.alpha = 0.1
  m.beta = 0.1
  m.tau = 1.0
  m.tau_reg = 1.0
  # Quirks of the original code (defaults = original behaviour; see the module docstring).
  m.causal_self_attention = False
  # True keeps padding out of the self-attention keys (upstream lets it act as keys), so that an
  # output does not depend on the padding around it; needed by train.length_buckets.
  m.mask_padding_keys = False
  m.mixed_neg_domain = "input"
  m.independent_negatives = True
  m.neg_exclusive_upper = True
  # Alpha-loss item pool: "inputs" = the training prefix without its last item (upstream), "history"
  # = the whole training prefix (orthoalign before this key). See the module docstring.
  m.reg_pool = "inputs"
  # Items without text in the frozen tables: "learned" = each its own trainable row (upstream has
  # text for every item, so none of its items shares a vector), "zero" = all share the zero text row
  # (orthoalign before this key). See the module docstring.
  m.missing_text = "learned"
  # The authors' embedding pickles (orthoalign/data/readers/llm4cdsr_tables.py): "auto" = read them
  # from a handled data folder when there, "none" = never (orthoalign's substitutes), or a folder.
  # The file names as upstream's --llm_emb_file / --user_emb_file ("item_emb" for its Douban data).
  m.llm_emb_dir = "auto"
  m.llm_emb_file = "itm_emb_np"
  m.user_emb_file = "usr_profile_emb"
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k != "name")


_CHOICES = {"reg_pool": ("inputs", "history"), "missing_text": ("learned", "zero")}


def validate(config: ml_collections.ConfigDict) -> None:
  """LLM4CDSR's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions outside 0..num_blocks, heads that do not divide
      the width, a GCA cell reading the mixed stream, or an out-of-range value (naming the key).
  """
  dicts.require(config, _KEYS, "LLM4CDSR")
  m = config.model
  for key in ("model.hidden_size", "model.num_blocks", "model.num_heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn_size", 0)
  dicts.check_int(config, "model.global_dim", 1)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"LLM4CDSR with model.num_blocks={m.num_blocks}"
  )
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


def check_length_buckets(config: ml_collections.ConfigDict) -> None:
  """train.length_buckets (ascending ints >= 1, checked by train.checks) must lie below
  model.max_len, which is always the last bucket, and need model.mask_padding_keys=True.

  Raises:
    ConfigError: naming the key and why.
  """
  buckets = tuple(config.train.length_buckets)
  if buckets[-1] >= config.model.max_len:
    raise errors.ConfigError(
      f"config key train.length_buckets={buckets}; expected ints below "
      f"model.max_len={config.model.max_len} (which is always the last bucket)"
    )
  if config.model.mask_padding_keys is not True:
    raise errors.ConfigError(
      f"config key train.length_buckets={buckets} needs model.mask_padding_keys=True: cutting "
      "padding off a batch must not change the model's outputs, and LLM4CDSR's attention lets "
      "padding act as keys unless masked"
    )
