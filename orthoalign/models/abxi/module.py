"""The ABXI Flax module: one shared encoder block with domain LoRAs, projectors, GCA cells."""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign import errors
from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.abxi.config import GCA_KV
from orthoalign.models.abxi.config import GCA_POSITIONS
from orthoalign.models.abxi.config import STREAMS
from orthoalign.models.abxi.config import Config

Array = jax.Array


_LN_EPS = layers.TORCH_LN_EPS
_linear_init = layers.normal_002
_embedding_init = layers.trunc_normal_002
backward_positions = layers.backward_positions
SwiGLU = layers.SwiGLU


def _lora_a_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch.randn(d, r) / 50."""
  return jax.random.normal(key, shape, dtype) / 50.0


def _layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=_LN_EPS, name=name)


class LoRA(nn.Module):
  """ABXI's `LoRA`: h @ (A @ B)^T with A [d, r] = randn/50 and B [r, d] = 0."""

  d: int
  rank: int

  @nn.compact
  def __call__(self, h: Array) -> Array:
    mat_a = self.param("mat_A", _lora_a_init, (self.d, self.rank))
    mat_b = self.param("mat_B", nn.initializers.zeros, (self.rank, self.d))
    return h @ (mat_a @ mat_b).T


class CausalSelfAttention(nn.Module):
  """torch nn.MultiheadAttention(d, heads, batch_first=True) under a causal mask only.

  No key-padding mask (unless `mask_padding`, a deviation) and no attention-probability dropout, as
  ABXI. The fused in-projection keeps torch's xavier_uniform on its (3d, d) weight (fan_in d,
  fan_out 3d); the out-projection is a torch Linear, so ABXI's `init_weights` gives it N(0, 0.02)
  and a zero bias.
  """

  d: int
  heads: int
  mask_padding: bool = False  # model.mask_padding_keys

  @nn.compact
  def __call__(self, h: Array, valid: Array) -> Array:
    """h [B, L, d], valid bool [B, L] (read only with mask_padding) -> [B, L, d].

    A query that may attend to no key (padding before a row's first item) gets zero weights.
    """
    if self.d % self.heads:
      raise errors.ConfigError(f"model.n_head={self.heads} must divide model.d_embed={self.d}")
    w_in = self.param("in_proj_kernel", nn.initializers.xavier_uniform(), (self.d, 3 * self.d))
    b_in = self.param("in_proj_bias", nn.initializers.zeros, (3 * self.d,))
    qkv = h @ w_in + b_in
    q, k, v = (layers.split_heads(t, self.heads) for t in jnp.split(qkv, 3, axis=-1))
    length = h.shape[1]
    mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
    if self.mask_padding:
      mask = mask & valid[:, None, None, :]
    probs, _ = layers.attention_probs(q, k, mask)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(h.shape)
    return nn.Dense(
      self.d, kernel_init=_linear_init, bias_init=nn.initializers.zeros, name="out_proj"
    )(out)


class ABXI(nn.Module):
  """The ABXI encoder: returns the mixed representation h used to score items with `ei`.

  Attributes:
    num_items_a, num_items_b: catalog sizes (the item table has nA + nB + 1 rows, row 0 = padding).
    config: the `model.*` settings (config.py); its max_len is the window length L (upstream's
      len_max - 3), and the position table has L + 1 rows.
    gca_positions: GCA insertion points, 0 = after the embedding, 1 = after the attention block,
      2 = after the FFN/LoRA stage.
    gca_kv: "other" (the A stream queries B and B queries A) or "mixed" (both query x).
    gca: keyword arguments of every `gca.GatedCrossAttention` cell.
  """

  num_items_a: int
  num_items_b: int
  config: Config
  gca_positions: tuple[int, ...] = ()
  gca_kv: str = "other"
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    d = self.config.width
    self.ei = self.param("ei", _embedding_init, (self.num_items_a + self.num_items_b + 1, d))
    self.ep = self.param("ep", _embedding_init, (self.config.max_len + 1, d))
    self.mha = CausalSelfAttention(d, self.config.heads, self.config.mask_padding_keys, name="mha")
    self.norm_mha = _layer_norm("norm_mha")
    self.ffn = SwiGLU(d, self.config.ffn, name="ffn")
    self.dlora = {s: LoRA(d, self.config.rd, name=f"dlora_{s}") for s in STREAMS}
    self.norm_sa = {s: _layer_norm(f"norm_sa_{s}") for s in STREAMS}
    self.ilora = {s: LoRA(d, self.config.ri, name=f"ilora_{s}") for s in ("a", "b")}
    self.proj = {s: SwiGLU(d, self.config.ffn, name=f"proj_{s}") for s in ("i", "a", "b")}
    self.norm_i2 = {s: _layer_norm(f"norm_i2{s}") for s in ("a", "b")}
    self.norm_own = {s: _layer_norm(f"norm_{s}2{s}") for s in ("a", "b")}
    self.drop = nn.Dropout(self.config.dropout)
    bad = [p for p in self.gca_positions if p not in GCA_POSITIONS]
    if (
      bad or self.gca_kv not in GCA_KV
    ):  # `validate` names these for configs; this guards direct use
      raise errors.ConfigError(
        f"gca.positions={list(self.gca_positions)}, gca.kv={self.gca_kv!r}: ABXI has positions "
        f"{list(GCA_POSITIONS)} (after the embedding, the attention block, the FFN/LoRA stage) "
        f"and kv {list(GCA_KV)}"
      )
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def _dropout(self, h: Array, train: bool) -> Array:
    return self.drop(h, deterministic=not train)

  def _cross(
    self,
    p: int,
    h: dict[str, Array],
    valid: dict[str, Array],
    batch: dict[str, Array],
    train: bool,
    cells: dict[str, Any],
  ) -> None:
    """Applies the two cells of GCA position p to h["a"] and h["b"] (in place, simultaneously)."""
    # Queries may carry their own times (evaluation reads the last position only).
    query = {s: (h[s], batch.get(f"qtime_{s}", batch[f"time_{s}"]), valid[s]) for s in ("a", "b")}
    kv = {
      own: (h[k], batch[f"time_{k}"], valid[k])
      for own, k in (
        ("a", "b" if self.gca_kv == "other" else "x"),
        ("b", "a" if self.gca_kv == "other" else "x"),
      )
    }
    h.update(gca_lib.apply_position(self.cells, p, query, kv, train=train, out=cells))

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes a batch.

    Args:
      batch: seq_x, seq_a, seq_b [B, L] and time_* [B, L]; in training target [B, L] (its domain
        selects the branch per position), at evaluation domain [B] (the target's domain).
      train: training (dropout, every position) or evaluation (last position).

    Returns:
      {"h": [B, L, d] in training, [B, d] at evaluation; "cells": GCA intermediates by cell name}.
    """
    valid = {s: batch[f"seq_{s}"] > 0 for s in STREAMS}
    m = {s: valid[s][..., None].astype(self.ei.dtype) for s in STREAMS}
    h = {
      s: self._dropout(
        (self.ei[batch[f"seq_{s}"]] + self.ep[backward_positions(valid[s])]) * m[s], train
      )
      for s in STREAMS
    }
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      self._cross(0, h, valid, batch, train, cells)
    # One shared attention block for x, a and b.
    h = {
      s: self.norm_mha(h[s] + self._dropout(self.mha(h[s], valid[s]), train)) * m[s]
      for s in STREAMS
    }
    if 1 in self.gca_positions:
      self._cross(1, h, valid, batch, train, cells)

    if train:
      target = batch["target"]
      gt = {
        "a": ((target > 0) & (target <= self.num_items_a))[..., None],
        "b": (target > self.num_items_a)[..., None],
      }
    else:
      is_b = (batch["domain"] == 1)[:, None]
      gt = {"a": ~is_b, "b": is_b}
      m = {s: jnp.ones_like(m[s]) for s in STREAMS}  # the original's `mask_x = ... = 1`
      if 2 not in self.gca_positions:  # position-wise from here: last slot only
        h = {s: h[s][:, -1] for s in STREAMS}
        m = {s: m[s][:, -1] for s in STREAMS}
    gt = {s: v.astype(self.ei.dtype) for s, v in gt.items()}

    # Shared FFN + per-sequence domain LoRA, post-norm.
    h = {
      s: self.norm_sa[s](
        h[s] + self._dropout(self.ffn(h[s]), train) + self._dropout(self.dlora[s](h[s]), train)
      )
      * m[s]
      for s in STREAMS
    }
    if 2 in self.gca_positions:
      self._cross(2, h, valid, batch, train, cells)
      if not train:
        h = {s: h[s][:, -1] for s in STREAMS}

    # Invariant projector + iLoRA from x, and the domain projectors.
    h_x = h["x"]
    h_i = self.proj["i"](h_x)
    out = 0.0
    for s in ("a", "b"):
      inv = self.norm_i2[s](
        (h_x + self._dropout(h_i, train) + self._dropout(self.ilora[s](h_x), train)) * gt[s]
      )
      own = self.norm_own[s]((h[s] + self._dropout(self.proj[s](h[s]), train)) * gt[s])
      out = out + (inv + own) * gt[s]
    return {"h": out, "cells": cells}
