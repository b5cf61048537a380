"""The click model: a SASRec-style user tower with one stream per domain, the ad as the item,
and one GCA cell per source domain into the target stream.

Streams (inputs.py builds them; every event strictly before the impression):
  target  the user's earlier clicks in the target domain, then the impression's ad as the last
          token (as DIN's target attention puts the candidate beside the history), so the stream
          is never empty: [B, Lt + 1]
  source  each source domain's last events [B, Ls], an item embedding plus an embedding of the
          event's log2 value bucket (dwell seconds, ...; datasets/impressions.py)
Each stream: item (+ value) + position embeddings, dropout, `blocks` causal SASRec blocks
(models/layers.py) with key-padding masks. GCA position 0 is right after the embeddings, i after
block i; at a position every source s has its cell gca<p>_<s> (models/gca.py), query = the target
stream, key = value = the source stream at the same depth, causal in time (a target token at
time t attends to source events at times <= t), each with its own gate. The cells of one position
read the same target stream and their updates are added: h <- h + sum_s (cell_s(h, y_s) - h).
The prediction reads the candidate token, the ad's embedding and each source stream's mean over
its events (so a model without GCA still sees the sources: the plain multi-domain tower):
logit = MLP([h_cand, e_ad, h_cand * e_ad, mean_s ...]).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign.datasets import impressions
from orthoalign.models import gca as gca_lib
from orthoalign.models import layers

Array = jax.Array


def cell_name(position: int, source: str) -> str:
  """The GCA cell of `position` from source domain `source` into the target: "gca0_posts"."""
  return f"gca{position}_{source}"


class ClickModel(nn.Module):
  """p(click | user's streams, ad) as a logit.

  Attributes:
    num_items: ((domain name, items), ...): the target first, then each source.
    width: d, of every stream.
    blocks: SASRec blocks per stream.
    heads: self-attention heads.
    dropout: on embeddings, attention and feed-forward layers.
    mlp: hidden widths of the prediction MLP.
    positions: GCA positions (0 = after the embeddings, i = after block i); () = no cell.
    cell: the cells' settings (models/gca.GatedCrossAttention's fields but `d`).
    base_logit: the output bias's initial value (the training click rate's log-odds).
  """

  num_items: tuple[tuple[str, int], ...]
  width: int = 32
  blocks: int = 1
  heads: int = 1
  dropout: float = 0.1
  mlp: tuple[int, ...] = (64,)
  positions: tuple[int, ...] = ()
  cell: tuple[tuple[str, Any], ...] = ()
  base_logit: float = 0.0

  @property
  def target(self) -> str:
    return self.num_items[0][0]

  @property
  def sources(self) -> tuple[str, ...]:
    return tuple(name for name, _ in self.num_items[1:])

  def _embed(self, name: str, n: int, items: Array, buckets: Array | None, train: bool) -> Array:
    d, length = self.width, items.shape[1]
    h = nn.Embed(n + 1, d, name=f"item_emb_{name}")(items) * (d**0.5)
    if buckets is not None:
      h = h + nn.Embed(impressions.VALUE_BUCKETS, d, name=f"value_emb_{name}")(buckets)
    h = h + nn.Embed(length, d, name=f"pos_emb_{name}")(jnp.arange(length))[None]
    return nn.Dropout(self.dropout, deterministic=not train)(h)

  @nn.compact
  def __call__(self, batch: dict[str, Array], *, train: bool) -> tuple[Array, dict[str, Any]]:
    """The logits of a batch of impressions.

    Args:
      batch: "ad" int32 [B]; "target/items" int32 [B, Lt], "target/time" int32 [B, Lt] (seconds
        relative to the impression, <= 0); per source s "<s>/items", "<s>/value" int8, "<s>/time".
        Item 0 is padding.
      train: enables dropout.

    Returns:
      (logits float32 [B], {"cells": {cell name: the cell's intermediates (models/gca.py)}}).
    """
    names = dict(self.num_items)
    ad = batch["ad"]
    t_items = jnp.concatenate([batch["target/items"], ad[:, None]], axis=1)
    t_time = jnp.concatenate([batch["target/time"], jnp.zeros_like(ad)[:, None]], axis=1)
    t_valid = t_items > 0
    h = self._embed(self.target, names[self.target], t_items, None, train)
    ys = {
      s: self._embed(s, names[s], batch[f"{s}/items"], batch[f"{s}/value"], train)
      for s in self.sources
    }
    valid = {s: batch[f"{s}/items"] > 0 for s in self.sources}
    cells = {
      cell_name(p, s): gca_lib.GatedCrossAttention(
        self.width, name=cell_name(p, s), **dict(self.cell)
      )
      for p in self.positions
      for s in self.sources
    }
    out: dict[str, Any] = {}

    def cross(p: int, h: Array) -> Array:
      update = jnp.zeros_like(h)
      for s in self.sources:
        new, out[cell_name(p, s)] = cells[cell_name(p, s)](
          h, ys[s], t_time, batch[f"{s}/time"], t_valid, valid[s], train=train
        )
        update = update + (new - h)
      return h + update

    block = lambda name, i: layers.SASRecBlock(
      self.width, self.heads, self.dropout, causal=True, mask_padding=True, name=f"{name}_{i + 1}"
    )
    if 0 in self.positions:
      h = cross(0, h)
    for i in range(self.blocks):
      h = block(self.target, i)(h, t_valid, train=train)
      ys = {s: block(s, i)(y, valid[s], train=train) for s, y in ys.items()}
      if i + 1 in self.positions:
        h = cross(i + 1, h)
    h = nn.LayerNorm(name="last_ln")(h)
    cand = h[:, -1]
    e_ad = nn.Embed(names[self.target] + 1, self.width, name="ad_emb")(ad)
    pooled = [
      jnp.sum(y * valid[s][..., None], 1) / jnp.maximum(valid[s].sum(1, keepdims=True), 1)
      for s, y in ys.items()
    ]
    z = jnp.concatenate([cand, e_ad, cand * e_ad, *pooled], axis=-1)
    for i, units in enumerate(self.mlp):
      z = nn.relu(nn.Dense(units, name=f"mlp_{i + 1}")(z))
      z = nn.Dropout(self.dropout, deterministic=not train)(z)
    logit = nn.Dense(1, bias_init=nn.initializers.constant(self.base_logit), name="out")(z)[:, 0]
    return logit, {"cells": out}
