"""The C2DSR Flax module: graph-convolved item tables, three SASRec encoders, infomax heads.

Upstream files (`cjx96/C2DSR` f23f18a): C2DSR_src/model/C2DSR.py (`C2DSR`, `ATTENTION`,
`PointWiseFeedForward`, `Discriminator`), model/GNN.py (`GCNLayer`, `GraphConvolution`). Item
tables are stored in the original's row order (row r = global id r + 1, the last row = padding) so
that the graph and the cross-check index them alike; encoders and heads are named by the items
they read (`a` = the original's X / source domain, `b` = Y / target).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign import errors
from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.c2dsr.config import GCA_KV
from orthoalign.models.c2dsr.config import STREAMS
from orthoalign.models.c2dsr.config import Config
from orthoalign.models.c2dsr.inputs import Graph

Array = jax.Array

# Which graph each item encoder convolves over (the original's GNN_encoder on `adj`, GNN_encoder_X
# and GNN_encoder_Y both on `adj_single`).
GRAPH_OF = {"m": "merged", "a": "single", "b": "single"}


def spmm(graph: Graph, x: Array) -> Array:
  """torch.spmm(adj, x) for a `Graph`: out[r] = sum over r's edges of weight * x[col]; [N, d]."""
  w = jnp.asarray(graph.weights, x.dtype)[:, None]
  return jax.ops.segment_sum(w * x[graph.cols], graph.rows, num_segments=x.shape[0])


class GraphConvolution(nn.Module):
  """The original's `GCNLayer`: mean of the input and each layer's output, a layer being
  `spmm(adj, dropout(h)) + bias`; its `weight` is created (torch's U(+-1/sqrt(d))) and, with
  `apply_weight=False` (the original's), never used.
  """

  d: int
  depth: int
  dropout: float
  apply_weight: bool = False

  @nn.compact
  def __call__(self, fea: Array, graph: Graph, *, train: bool) -> Array:
    init = layers.torch_bias_init(self.d)
    learn, total = fea, fea
    for i in range(self.depth):
      weight = self.param(f"weight_{i}", init, (self.d, self.d))
      bias = self.param(f"bias_{i}", init, (self.d,))
      learn = nn.Dropout(self.dropout, deterministic=not train)(learn)
      learn = spmm(graph, learn @ weight if self.apply_weight else learn) + bias
      total = total + learn
    return total / (self.depth + 1)


class Bilinear(nn.Module):
  """torch.nn.Bilinear(d, d, 1) as the original's `Discriminator` calls it: D(S, node) =
  node^T W S + b, W xavier_uniform_ on its [1, d, d] weight (fan_in d*d, fan_out d), b = 0.
  """

  d: int

  @nn.compact
  def __call__(self, s: Array, node: Array) -> Array:
    bound = math.sqrt(6.0 / (self.d * self.d + self.d))
    init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound
    )
    w = self.param("kernel", init, (self.d, self.d))
    b = self.param("bias", nn.initializers.zeros, (1,))
    return jnp.einsum("bi,ij,bj->b", node, w, s)[:, None] + b


def _item_table_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch Embedding(padding_idx=last row): N(0, 1), the padding row zero."""
  return jax.random.normal(key, shape, dtype).at[-1].set(0.0)


def _position_table_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch Embedding(padding_idx=0): N(0, 1), row 0 zero."""
  return jax.random.normal(key, shape, dtype).at[0].set(0.0)


class C2DSR(nn.Module):
  """The C2DSR model.

  Attributes:
    num_items_a, num_items_b: catalog sizes; each item table has nA + nB + 1 rows.
    config: the `model.*` settings (config.py).
    graphs: {"merged", "single"}: the item graphs (inputs.item_graphs), constants of the program.
    gca_positions: GCA insertion points on the A and B encoders: 0 = after the embedding, i = after
      block i.
    gca_kv: "other" (A queries B, B queries A) or "mixed" (both query the merged encoder).
    gca: keyword arguments of every `gca.GatedCrossAttention` cell.
  """

  num_items_a: int
  num_items_b: int
  config: Config
  graphs: dict[str, Graph] = dataclasses.field(default_factory=dict)
  gca_positions: tuple[int, ...] = ()
  gca_kv: str = "other"
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    c, d = self.config, self.config.width
    rows = self.num_items_a + self.num_items_b + 1
    self.item = {s: self.param(f"item_{s}", _item_table_init, (rows, d)) for s in STREAMS}
    self.pos = {s: self.param(f"pos_{s}", _position_table_init, (c.max_len, d)) for s in STREAMS}
    self.gcn = {
      s: GraphConvolution(d, c.gnn_layers, c.dropout, c.gcn_weight == "applied", name=f"gcn_{s}")
      for s in STREAMS
    }
    self.stacks, self.last_ln = gca_lib.encoder_stacks(
      STREAMS, c, causal=True, inits=layers.TORCH_DEFAULT_INITS
    )
    self.disc = {s: Bilinear(d, name=f"disc_{s}") for s in ("a", "b")}
    dense = lambda n, name: layers.torch_dense(n, d, name, kernel_init=layers.torch_kernel_init)
    self.lin = {
      "a": dense(self.num_items_a, "lin_a"),
      "b": dense(self.num_items_b, "lin_b"),
      "pad": dense(1, "lin_pad"),
    }
    self.drop = nn.Dropout(c.dropout)
    if self.gca_kv not in GCA_KV:
      raise errors.ConfigError(f"gca.kv={self.gca_kv!r}: C2DSR has kv {list(GCA_KV)}")
    gca_lib.check_stack_positions(self.gca_positions, c.blocks, "C2DSR")
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def convolve(self, *, train: bool) -> dict[str, Array]:
    """`graph_convolution`: each encoder's item table convolved over its graph, [N, d]."""
    return {s: self.gcn[s](self.item[s], self.graphs[GRAPH_OF[s]], train=train) for s in STREAMS}

  def _rows(self, ids: Array) -> Array:
    """Global ids (0 = padding) -> the tables' rows (padding = the last row)."""
    return jnp.where(ids == 0, self.num_items_a + self.num_items_b, ids - 1)

  def _embed(self, s: str, conv: Array, ids: Array, pos: Array, train: bool) -> Array:
    """`forward`'s `(cross_emb[ids] + item_emb(ids)) * sqrt(d)` and `ATTENTION`'s `+ pos_emb`,
    dropout, padding zeroed.
    """
    rows = self._rows(ids)
    # torch's padding_idx: the padding rows get no gradient.
    pad = self.num_items_a + self.num_items_b
    table = self.item[s].at[pad].set(jax.lax.stop_gradient(self.item[s][pad]))
    p = self.pos[s].at[0].set(jax.lax.stop_gradient(self.pos[s][0]))
    h = (conv[rows] + table[rows]) * math.sqrt(self.config.width) + p[pos]
    h = self.drop(h, deterministic=not train)
    return h * (ids > 0)[..., None].astype(h.dtype)

  def _cross(self, p: int, h: dict[str, Array], valid, time, train, cells) -> dict[str, Array]:
    """GCA position p: the A encoder queries B (or the merged encoder), B queries A (or it)."""
    kv_of = {"a": "b", "b": "a"} if self.gca_kv == "other" else {"a": "m", "b": "m"}
    query = {s: (h[s], time, valid[s]) for s in ("a", "b")}
    kv = {s: (h[kv_of[s]], time, valid[kv_of[s]]) for s in ("a", "b")}
    new = gca_lib.apply_position(self.cells, p, query, kv, train=train, out=cells)
    return {**h, **new}

  def encode(
    self, batch: dict[str, Array], conv: dict[str, Array], *, train: bool
  ) -> tuple[dict[str, Array], dict[str, Any]]:
    """The three encoders (`forward`) on batch seq / seq_a / seq_b with pos / pos_a / pos_b.

    Returns:
      ({"m", "a", "b": [B, L, d] after the last LayerNorm}, the GCA cells' intermediates).
    """
    ids = {"m": batch["seq"], "a": batch["seq_a"], "b": batch["seq_b"]}
    pos = {"m": batch["pos"], "a": batch["pos_a"], "b": batch["pos_b"]}
    valid = {s: ids[s] > 0 for s in STREAMS}
    h = {s: self._embed(s, conv[s], ids[s], pos[s], train) for s in STREAMS}
    time = jnp.where(valid["m"], jnp.arange(ids["m"].shape[1]), -1)
    cells: dict[str, Any] = {}
    cross = lambda p, h: self._cross(p, h, valid, time, train, cells)
    h = gca_lib.run_stacks(self.stacks, h, valid, self.gca_positions, cross, train=train)
    return {s: self.last_ln[s](h[s]) for s in STREAMS}, cells

  def encode_merged(self, ids: Array, pos: Array, conv: Array, *, train: bool) -> Array:
    """`false_forward`: the merged encoder alone on `ids` (the corrupted sequences), [B, L, d]."""
    h = {"m": self._embed("m", conv, ids, pos, train)}
    h = gca_lib.run_stacks(
      {"m": self.stacks["m"]}, h, {"m": ids > 0}, (), lambda p, h: h, train=train
    )
    return self.last_ln["m"](h["m"])

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """`train_batch`'s forward pass up to its losses' inputs.

    Args:
      batch: the training arrays (inputs.TRAIN_KEYS), [B, L] each.
      train: dropout on (training) or off.

    Returns:
      "h_m", "h_a", "h_b", "h_corrupt_a", "h_corrupt_b": [B, L, d] the merged, A and B encoders and
      the merged encoder on the corrupted sequences; over the last `ce_positions` slots U the
      classifiers' logits [B, U, n + 1] (the last column lin_PAD's): "share_a" = [lin_X(h_m) ;
      lin_PAD(h_m)], "share_b", "own_a" = [lin_X(h_m + h_a) ; lin_PAD(h_a)], "own_b"; the
      infomax scores [B, 1] "real_a" = D_X(r_a, mean h_m over the B-target slots), "false_a" (the
      same with the corrupt_b encoding), "real_b", "false_b"; and "cells".
    """
    conv = self.convolve(train=train)
    h, cells = self.encode(batch, conv, train=train)
    out = {f"h_{s}": h[s] for s in STREAMS}
    for s in ("a", "b"):
      ids = batch[f"corrupt_{s}"]
      out[f"h_corrupt_{s}"] = self.encode_merged(ids, batch["pos"], conv["m"], train=train)
    used = self.config.ce_positions
    tail = {s: h[s][:, -used:] for s in STREAMS}
    pad = {s: self.lin["pad"](tail[s]) for s in STREAMS}
    for s in ("a", "b"):
      out[f"share_{s}"] = jnp.concatenate([self.lin[s](tail["m"]), pad["m"]], -1)
      out[f"own_{s}"] = jnp.concatenate([self.lin[s](tail["m"] + tail[s]), pad[s]], -1)
    # Means over the slots with a target of the domain (`x_mask`, `y_mask`).
    weight = {s: (batch[f"target_{s}"] > 0).astype(h["m"].dtype) for s in ("a", "b")}
    mean = lambda s, x: (
      jnp.einsum("bl,bld->bd", weight[s], x) / jnp.maximum(weight[s].sum(-1, keepdims=True), 1.0)
    )
    r = {s: mean(s, h[s]) for s in ("a", "b")}
    out["real_a"] = self.disc["a"](r["a"], mean("b", h["m"]))
    out["false_a"] = self.disc["a"](r["a"], mean("b", out["h_corrupt_b"]))
    out["real_b"] = self.disc["b"](r["b"], mean("a", h["m"]))
    out["false_b"] = self.disc["b"](r["b"], mean("a", out["h_corrupt_a"]))
    out["cells"] = cells
    return out

  def score(
    self, batch: dict[str, Array], conv: dict[str, Array]
  ) -> tuple[Array, Array, dict[str, Any]]:
    """`test_batch`'s scores: lin_X(h_m[last] + h_a[idx_last_a]) over the A items [B, nA] and
    lin_Y(h_m[last] + h_b[idx_last_b]) over the B items [B, nB]; and the GCA cells.
    """
    h, cells = self.encode(batch, conv, train=False)
    rows = jnp.arange(batch["seq"].shape[0])
    last = h["m"][:, -1]
    scores = {s: self.lin[s](last + h[s][rows, batch[f"idx_last_{s}"]]) for s in ("a", "b")}
    return scores["a"], scores["b"], cells
