"""C2DSR's `model.*` keys, defaults and checks, its GCA positions and kv streams."""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.models import gca_checks

# The three encoders, named by the items they read: the merged sequence (m) and the in-place A and
# B sequences (the original's `encoder`, `encoder_X`, `encoder_Y`).
STREAMS = ("m", "a", "b")

GCA_KV = ("other", "mixed")

GCN_WEIGHTS = ("unused", "applied")
CORRUPTIONS = ("fixed", "per_step")

# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>).
REPLICA_HPARAMS = {"lam": dicts.FRACTION}


@dataclasses.dataclass(frozen=True)
class Config:
  """C2DSR's `model.*` keys, their defaults (`cjx96/C2DSR` f23f18a, train_rec.py) and the Flax
  module's arguments. Upstream names in brackets.

  Attributes:
    width: item embedding and encoder width [hidden_units].
    blocks: self-attention blocks of each of the three encoders [num_blocks].
    heads: attention heads [num_heads].
    ffn: inner width of the blocks' feed-forward layers, 0 = width (the original's; parameter
      matching grows it).
    gnn_layers: graph-convolution layers of each item encoder [GNN].
    dropout: the dropout rate of every branch, the graph convolution's included [dropout].
    max_len: window length = rows of the position tables [maxlen, set by the loader: 15, or 30 for
      a folder whose name holds "Enter"]; a window holds at most max_len - 1 items.
    lam: weight of the next-item losses; 1 - lam weighs the infomax losses [lambda]; a replica
      hyperparameter.
    ce_positions: the last window slots whose next-item losses are trained [`used = 10` in
      trainer.py].
    gcn_weight: "unused" = the original's GraphConvolution (`spmm(adj, x) + bias`: its `weight`
      parameter is created, counted and never applied); "applied" = `spmm(adj, x @ weight) + bias`.
    final_b0_off_by_one: quirk of the original's loader (default = original): a training sequence
      whose final target is B item 0 (file id nA) counts as a B target in the merged losses but
      its `y_ground` test `ground[-1] > source_item_num` is strict, so neither domain encoder gets
      that final target and both drop their last input item.
    corruption: the infomax's corrupted sequences (the other domain's items replaced by random
      items of that domain): "fixed" = drawn once when the data is read, as the loader (seed
      `corrupt_seed`); "per_step" = drawn afresh on device at every training step.
    corrupt_seed: seed of the "fixed" corrupted sequences [the run's `seed`, 2040].
  """

  width: int = 256
  blocks: int = 2
  heads: int = 1
  ffn: int = 0
  gnn_layers: int = 1
  dropout: float = 0.2
  max_len: int = 15
  lam: float = 0.7
  ce_positions: int = 10
  gcn_weight: str = "unused"
  final_b0_off_by_one: bool = True
  corruption: str = "fixed"
  corrupt_seed: int = 2040


def validate(config: ml_collections.ConfigDict) -> None:
  """C2DSR's own config checks, after Baseline.validate's key checks.

  Raises:
    ConfigError: naming the key: GCA positions beyond the blocks, heads that do not divide the
      width, an unknown choice, ce_positions above max_len, a window shorter than 2.
  """
  m = config.model
  for key in ("model.width", "model.heads", "model.blocks", "model.ce_positions"):
    dicts.check_int(config, key, 1)
  for key in ("model.ffn", "model.gnn_layers", "model.corrupt_seed"):
    dicts.check_int(config, key, 0)
  dicts.check_int(config, "model.max_len", 2)
  if m.ce_positions > m.max_len:
    raise errors.ConfigError(
      f"config key model.ce_positions={m.ce_positions}; expected at most model.max_len="
      f"{m.max_len} (the window's slots)"
    )
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_divides(config, "gca.heads", "model.width")
  gca_checks.check_positions(config, range(m.blocks + 1), "C2DSR")
  dicts.choice("model.gcn_weight", m.gcn_weight, GCN_WEIGHTS)
  dicts.choice("model.corruption", m.corruption, CORRUPTIONS)
  dicts.check_fraction(config, "model.dropout")
  dicts.check_number(config, "model.lam", dicts.FRACTION)
