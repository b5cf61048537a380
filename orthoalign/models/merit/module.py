"""The MERIT Flax module: three self-attention streams, MoE-FFN transfers, residual cross-attention.

Upstream files (`DiMarzioBian/MERIT` 932ebee): models/MERIT.py (`MERIT.forward`),
models/attention.py (`SelfAttention`, `CrossAttention`, `CrossAttention2`), models/ffn.py
(`MLP`, `FeedForward`, `MoFFN`, `Gate`), models/utils/position.py, models/utils/initialization.py.
Streams and modules are named here by the items they hold (`a` = A items); the original's `*_a`
modules hold the B-item stream and its `*_b` modules the A-item stream
(tools/compare_merit_original.py maps the names).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign import errors
from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.merit.config import GCA_KV
from orthoalign.models.merit.config import GCA_POSITIONS
from orthoalign.models.merit.config import STREAMS
from orthoalign.models.merit.config import Config

Array = jax.Array

# MoFFN outputs by destination, in the original's order (h_1 = own, h_2, h_3): `ffn_m` returns
# (h_m, h_m2[B stream], h_m2[A stream]), the B-item stream's (h_b, h_b2m, h_b2[A]), the A-item
# stream's (h_a, h_a2m, h_a2[B]).
DESTINATIONS = {"m": ("m", "b", "a"), "a": ("a", "m", "b"), "b": ("b", "m", "a")}

# MERIT's own cross-attentions, reported like GCA cells (statistics under these names): the query
# stream X and the key/value stream Y of each.
NATIVE_CELLS = {
  "ecaf_A": "X = A stream; Y = [M->A transfer ; B->A transfer]",
  "ecaf_B": "X = B stream; Y = [M->B transfer ; A->B transfer]",
  "caf_M": "X = merged stream; Y = A->M transfer + B->M transfer",
}


def _layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=layers.TORCH_LN_EPS, name=name)


class ResidualAttention(nn.Module):
  """MERIT's `SelfAttention`, `CrossAttention` and `CrossAttention2`: out = LN(X + alpha *
  Dropout(MHA(q=X, k=v=Y))) * mask, alpha = 1 in the original.

  torch's nn.MultiheadAttention(d, heads, batch_first=True): fused in-projection (xavier_uniform,
  zero bias), out-projection N(0, 0.02) and zero bias (`init_weights`), no attention dropout, no
  key-padding mask (padding slots are zero vectors whose keys and values are the in-projection
  bias).

  Attributes:
    d, heads, dropout: width, heads, dropout on the attention output.
    gate: None = alpha fixed at 1 (the original); else the gca.* gate settings {gate, act,
      gate_init} of a learned alpha (models/gca.py `gate_value`).
  """

  d: int
  heads: int
  dropout: float
  gate: dict[str, Any] | None = None

  @nn.compact
  def __call__(
    self, x: Array, y: Array, mask: Array, valid: Array, *, train: bool
  ) -> tuple[Array, Array, Array]:
    """x [B, Lq, d], y [B, Lk, d], mask bool [Lq, Lk] (True = may attend), valid bool [B, Lq].

    Returns:
      (out [B, Lq, d] (zero where not valid), x_prime [B, Lq, d] = the attention output before the
      gate, alpha (scalar, [d] or [B, Lq, d])).
    """
    if self.d % self.heads:
      raise errors.ConfigError(f"model.heads={self.heads} must divide model.width={self.d}")
    mha = layers.SelfAttention(
      self.d,
      self.heads,
      0.0,
      in_init=nn.initializers.xavier_uniform(),
      out_init=layers.normal_002,
      name="mha",
    )
    x_prime = mha(x, y, mask[None, None], train=train)
    if self.gate is None:
      alpha = jnp.ones((), x.dtype)
    else:
      alpha = gca_lib.gate_value(
        self, self.gate["gate"], self.gate["act"], self.gate["gate_init"], x, x_prime
      )
    h = x + alpha * nn.Dropout(self.dropout, deterministic=not train)(x_prime)
    return _layer_norm("norm")(h) * valid[..., None].astype(x.dtype), x_prime, alpha


class MoFFN(nn.Module):
  """MERIT's `MoFFN`: a shared SwiGLU expert and one per destination, each destination mixing the
  shared and its own expert with a softmax gate (a bias-free Linear d -> 2), then LN(h +
  Dropout(mix)) * mask per destination.

  Attributes:
    d, d_ffn, dropout: width, expert hidden width, dropout.
    dests: the three destinations in the original's output order (DESTINATIONS).
  """

  d: int
  d_ffn: int
  dropout: float
  dests: tuple[str, str, str]

  @nn.compact
  def __call__(self, h: Array, valid: Array, *, train: bool) -> dict[str, Array]:
    """h [B, L, d], valid bool [B, L] -> {destination: [B, L, d]}."""
    shared = layers.SwiGLU(self.d, self.d_ffn, name="expert_s")(h)
    m = valid[..., None].astype(h.dtype)
    out = {}
    for dest in self.dests:
      own = layers.SwiGLU(self.d, self.d_ffn, name=f"expert_{dest}")(h)
      g = nn.Dense(2, use_bias=False, kernel_init=layers.normal_002, name=f"gate_{dest}")(h)
      g = jax.nn.softmax(g, axis=-1)
      mix = g[..., :1] * shared + g[..., 1:] * own
      drop = nn.Dropout(self.dropout, deterministic=not train)(mix)
      out[dest] = _layer_norm(f"norm_{dest}")(h + drop) * m
    return out


class FeedForward(nn.Module):
  """MERIT's `FeedForward`: LN(h + Dropout(SwiGLU(h))) * mask."""

  d: int
  d_ffn: int
  dropout: float

  @nn.compact
  def __call__(self, h: Array, valid: Array, *, train: bool) -> Array:
    update = nn.Dropout(self.dropout, deterministic=not train)(
      layers.SwiGLU(self.d, self.d_ffn, name="mlp")(h)
    )
    return _layer_norm("norm")(h + update) * valid[..., None].astype(h.dtype)


def _native_cell(
  x: Array, x_prime: Array, y: Array, x_valid: Array, y_valid: Array, alpha: Array
) -> dict[str, Array]:
  """The intermediates of one of MERIT's cross-attentions, as a GCA cell reports them."""
  mean, total, count = gca_lib.gate_statistics(alpha, x_valid, x.dtype)
  return dict(
    x=x,
    x_prime=x_prime,
    y=y,
    x_mask=x_valid,
    y_mask=y_valid,
    alpha=mean,
    alpha_sum=total,
    alpha_count=count,
  )


class MERIT(nn.Module):
  """The MERIT encoder.

  Attributes:
    num_items_a, num_items_b: catalog sizes (the item table has nA + nB + 1 rows, row 0 = padding).
    config: the `model.*` settings (config.py); its max_len is the window length L, and the
      position table has L + 1 rows.
    gca_positions: GCA insertion points on the A and B streams: 0 = after the embedding, 1 = after
      the self-attention blocks.
    gca_kv: "other" (A queries B, B queries A) or "mixed" (both query the merged stream).
    gca: keyword arguments of every `gca.GatedCrossAttention` cell.
    caf_gate: None = MERIT's cross-attentions keep their fixed gate 1; else {gate, act, gate_init}
      of a learned gate (model.caf_gate = "learned").
  """

  num_items_a: int
  num_items_b: int
  config: Config
  gca_positions: tuple[int, ...] = ()
  gca_kv: str = "other"
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)
  caf_gate: dict[str, Any] | None = None

  def setup(self):
    c, d = self.config, self.config.width
    num_items = self.num_items_a + self.num_items_b
    self.ei = self.param("ei", layers.trunc_normal_002, (num_items + 1, d))
    self.ep = self.param("ep", layers.trunc_normal_002, (c.max_len + 1, d))
    self.sa = {s: ResidualAttention(d, c.heads, c.dropout, name=f"sa_{s}") for s in STREAMS}
    self.ffn = {s: MoFFN(d, c.ffn, c.dropout, DESTINATIONS[s], name=f"ffn_{s}") for s in STREAMS}
    # The extended cross-attentions of the A and B streams and the merged stream's.
    caf_names = {"m": "caf_m", "a": "ecaf_a", "b": "ecaf_b"}
    self.caf = {
      s: ResidualAttention(d, c.heads, c.dropout, self.caf_gate, name=caf_names[s]) for s in STREAMS
    }
    self.ffn_caf = {s: FeedForward(d, c.ffn, c.dropout, name=f"ffn_caf_{s}") for s in STREAMS}
    self.drop = nn.Dropout(c.dropout)
    if any(p not in GCA_POSITIONS for p in self.gca_positions) or self.gca_kv not in GCA_KV:
      raise errors.ConfigError(
        f"gca.positions={list(self.gca_positions)}, gca.kv={self.gca_kv!r}: MERIT has positions "
        f"{list(GCA_POSITIONS)} (after the embedding, after the self-attention blocks) and kv "
        f"{list(GCA_KV)}"
      )
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def _positions(self, valid: dict[str, Array]) -> dict[str, Array]:
    """Position indices of each stream (model.positions)."""
    if self.config.positions == "own":
      return {s: layers.backward_positions(valid[s]) for s in STREAMS}
    # The original: h_a = e + ep(pos(mask_m)), h_b = e + ep(pos(mask_a)), h_m = e + ep(pos(mask_b))
    # with its mask_a = B items and mask_b = A items.
    source = {"m": "a", "a": "b", "b": "m"}
    return {s: layers.backward_positions(valid[source[s]]) for s in STREAMS}

  def _gca(self, p, h, valid, time, train, cells) -> None:
    """Applies the two GCA cells of position p to the A and B streams (in place)."""
    query = {s: (h[s], time, valid[s]) for s in ("a", "b")}
    kv = {
      own: (h[k], time, valid[k])
      for own, k in (
        ("a", "b" if self.gca_kv == "other" else "m"),
        ("b", "a" if self.gca_kv == "other" else "m"),
      )
    }
    h.update(gca_lib.apply_position(self.cells, p, query, kv, train=train, out=cells))

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes a batch.

    Args:
      batch: seq [B, L] (merged window, global ids, left-padded); at evaluation also domain [B]
        (the target's, 0 = A) and idx_last_a, idx_last_b [B] (the slot each domain stream is read
        at: its last item, or the window's first item when it has none; the original's
        `get_last_idx`).
      train: training (dropout, every position) or evaluation.

    Returns:
      In training {"h_m", "h_a", "h_b": [B, L, d]}; at evaluation {"h": [B, d] the scoring
      representation, "h_m": [B, d] (last slot), "h_a", "h_b": [B, d] (each at its last-item
      slot)}; both with "cells": the intermediates of GCA cells and of MERIT's own cross-attentions
      (NATIVE_CELLS) by name.
    """
    seq = batch["seq"]
    na, length = self.num_items_a, seq.shape[1]
    valid = {"m": seq > 0, "a": (seq > 0) & (seq <= na), "b": seq > na}
    mask = {s: valid[s][..., None].astype(self.ei.dtype) for s in STREAMS}
    time = jnp.where(valid["m"], jnp.arange(length), -1)
    # torch's padding_idx=0: the padding row of ep gets no gradient (it is a feature of the A
    # stream under the original's positions).
    ep = jnp.concatenate([jax.lax.stop_gradient(self.ep[:1]), self.ep[1:]])
    pos = self._positions(valid)
    emb = self.ei[seq]
    h = {s: self.drop((emb + ep[pos[s]]) * mask[s], deterministic=not train) for s in STREAMS}
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      self._gca(0, h, valid, time, train, cells)
    causal = jnp.tril(jnp.ones((length, length), bool))
    h = {s: self.sa[s](h[s], h[s], causal, valid[s], train=train)[0] for s in STREAMS}
    if 1 in self.gca_positions:
      self._gca(1, h, valid, time, train, cells)

    moe = {s: self.ffn[s](h[s], valid[s], train=train) for s in STREAMS}
    if self.config.ecaf_mask == "top_left":
      # torch drops the [L, 3L] mask for its is_causal hint; SDPA's causal mask is top-left.
      ecaf_mask = jnp.tril(jnp.ones((length, 2 * length), bool))
    else:
      ecaf_mask = jnp.concatenate([causal, causal], axis=1)
    seen = ecaf_mask[-1]  # the key slots any query can attend to
    for s, other, name in (("a", "b", "ecaf_A"), ("b", "a", "ecaf_B")):
      kv = jnp.concatenate([moe["m"][s], moe[other][s]], axis=1)
      kv_valid = jnp.concatenate([valid["m"], valid[other]], axis=1) & seen
      out, x_prime, alpha = self.caf[s](moe[s][s], kv, ecaf_mask, valid[s], train=train)
      cells[name] = _native_cell(moe[s][s], x_prime, kv, valid[s], kv_valid, alpha)
      h[s] = self.ffn_caf[s](out, valid[s], train=train)
    kv = moe["a"]["m"] + moe["b"]["m"]
    out, x_prime, alpha = self.caf["m"](moe["m"]["m"], kv, causal, valid["m"], train=train)
    cells["caf_M"] = _native_cell(moe["m"]["m"], x_prime, kv, valid["m"], valid["m"], alpha)
    h["m"] = self.ffn_caf["m"](out, valid["m"], train=train)

    if train:
      return {"h_m": h["m"], "h_a": h["a"], "h_b": h["b"], "cells": cells}
    rows = jnp.arange(seq.shape[0])
    at = {s: h[s][rows, batch[f"idx_last_{s}"]] for s in ("a", "b")}
    # The stream a target of domain s is scored with, read at s's last slot: its own, or (the
    # original's cal_rank, whose `h_a` holds the B items) the other domain's.
    read = {"a": "b", "b": "a"} if self.config.eval_stream == "swapped" else {"a": "a", "b": "b"}
    scored = {s: h[read[s]][rows, batch[f"idx_last_{s}"]] for s in ("a", "b")}
    own = jnp.where((batch["domain"] == 1)[:, None], scored["b"], scored["a"])
    h_m = h["m"][:, -1]
    return {"h": own + h_m, "h_m": h_m, "h_a": at["a"], "h_b": at["b"], "cells": cells}
