"""The LLM4CDSR Flax module: three SASRec encoders (mixed, A, B) with GCA insertion points."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.llm4cdsr.config import Config

Array = jax.Array


class LLM4CDSR(nn.Module):
  """Three-stream LLM4CDSR encoder. Frozen tables live in the "frozen" variable collection.

  Attributes:
    num_items_a, num_items_b: catalogue sizes.
    config: the `model.*` settings (config.py).
    global_dim, local_tables, user_dim, missing_rows: what the dataset's tables give (build).
    gca_positions, gca: the GCA insertion points and the cells' keyword arguments.
  """

  num_items_a: int
  num_items_b: int
  config: Config
  global_dim: int = 0  # width of the mixed path's table; 0 = trainable ID embeddings
  local_tables: bool = True  # frozen domain tables (model.local_emb and item text); False = IDs
  user_dim: int = 0  # width of user profile vectors for the beta loss; 0 = no user adapter
  # Items without text with their own trainable row (model.missing_text="learned"), per table:
  # mixed, A, B. 0 = none: no rows, no row map. The row maps are frozen ("missing_index_{m,a,b}").
  missing_rows: tuple[int, int, int] = (0, 0, 0)
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    n = self.num_items_a + self.num_items_b
    if self.global_dim:
      if self.config.freeze_global:
        self.global_table = self.variable(
          "frozen", "global_table", jnp.zeros, (n + 1, self.global_dim)
        )
      else:
        self.global_param = self.param(
          "item_emb_llm", nn.initializers.zeros, (n + 1, self.global_dim)
        )
      g = self.global_dim
      self.adapter = [
        layers.torch_dense(g // 2, g, name="adapter_0"),
        layers.torch_dense(self.config.width, g // 2, name="adapter_1"),
      ]
    else:
      self.item_emb = self.param("item_emb", layers.xavier_normal, (n + 1, self.config.width))
    if self.local_tables:
      self.table_a = self.variable(
        "frozen", "table_a", jnp.zeros, (self.num_items_a + 1, self.config.width)
      )
      self.table_b = self.variable(
        "frozen", "table_b", jnp.zeros, (self.num_items_b + 1, self.config.width)
      )
    else:
      self.item_emb_a = self.param(
        "item_emb_a", layers.xavier_normal, (self.num_items_a + 1, self.config.width)
      )
      self.item_emb_b = self.param(
        "item_emb_b", layers.xavier_normal, (self.num_items_b + 1, self.config.width)
      )
    sizes = {"m": n, "a": self.num_items_a, "b": self.num_items_b}
    index, extra = {}, {}
    for s, k in zip(("m", "a", "b"), self.missing_rows):
      if k:  # row map: item id -> its row in missing_text_<s> (-1 = has text, and padding)
        index[s] = self.variable(
          "frozen", f"missing_index_{s}", lambda size: -jnp.ones(size, jnp.int32), (sizes[s] + 1,)
        )
        extra[s] = self.param(f"missing_text_{s}", layers.xavier_normal, (k, self.config.width))
    self.missing_index, self.missing_emb = index, extra
    self.pos_emb = {
      s: nn.Embed(
        self.config.max_len + 1,
        self.config.width,
        embedding_init=layers.xavier_normal,
        name=f"pos_emb_{s}",
      )
      for s in ("m", "a", "b")
    }
    cfg = self.config
    self.stacks, self.last_ln = gca_lib.encoder_stacks(
      ("m", "a", "b"), cfg, causal=cfg.causal, mask_padding=cfg.mask_padding_keys
    )
    self.emb_dropout = nn.Dropout(cfg.dropout)
    gca_lib.check_stack_positions(self.gca_positions, cfg.blocks, "LLM4CDSR")
    self.cells = gca_lib.make_cells(self.config.width, self.gca_positions, self.gca)
    if self.user_dim:
      self.user_adapter = [
        layers.torch_dense(self.user_dim // 2, self.user_dim, name="user_adapter_0"),
        layers.torch_dense(self.config.width, self.user_dim // 2, name="user_adapter_1"),
      ]

  # -- item vectors ---------------------------------------------------------------------------
  def _add_missing(self, h: Array, ids: Array | None, table: str) -> Array:
    """h [..., d] plus each text-less item's own trainable row (model.missing_text="learned").

    ids None means h is the whole table (every row, in id order).
    """
    if table not in self.missing_index:
      return h
    index = self.missing_index[table].value
    row = index if ids is None else index[ids]  # int32 [...], -1 = has text
    extra = self.missing_emb[table][jnp.maximum(row, 0)]
    return h + jnp.where((row >= 0)[..., None], extra, 0.0)

  def mix_table(self) -> Array:
    """Mixed-path vectors of every item, [nA+nB+1, d]: the adapter applied to the whole table.

    No gather by id: with the catalogue split over devices (train.item_shards) each device
    adapts its own rows.
    """
    if not self.global_dim:
      return self.item_emb
    h = self.global_table.value if self.config.freeze_global else self.global_param
    for dense in self.adapter:
      h = dense(h)
    return self._add_missing(h, None, "m")

  def mix_items(self, ids: Array) -> Array:
    """Mixed-path item vectors [..., d] for global ids [...] (the input embedding before scaling).

    The adapter is linear per row, so adapting the rows asked for and adapting the whole table
    then gathering give the same vectors and gradients. Upstream (`models/LLMCDSR.py`) adapts
    per token; here, when there are more ids than catalogue rows (e.g. 3 x 128 x 40 training
    tokens against 801 synthetic items), the table is adapted once and gathered, which takes
    the 1024 -> 512 -> 128 adapter from most of a step's FLOPs to a few percent
    (docs/benchmarks.md, "Where the time goes"). Only float rounding differs.
    """
    if not self.global_dim:
      return self.item_emb[ids]
    table = self.global_table.value if self.config.freeze_global else self.global_param
    if ids.size > table.shape[0]:
      return self.mix_table()[ids]
    h = table[ids]
    for dense in self.adapter:
      h = dense(h)
    return self._add_missing(h, ids, "m")

  def domain_table(self, domain: str) -> Array:
    """Domain-path vectors of every item of `domain` ("a" or "b"), [n+1, d], by local id."""
    if self.local_tables:
      return self._add_missing(
        (self.table_a if domain == "a" else self.table_b).value, None, domain
      )
    return self.item_emb_a if domain == "a" else self.item_emb_b

  def domain_items(self, ids: Array, domain: str) -> Array:
    """Domain-path item vectors [..., d] for local ids [...] of `domain` ("a" or "b")."""
    if self.local_tables:
      h = (self.table_a if domain == "a" else self.table_b).value[ids]
      return self._add_missing(h, ids, domain)
    return (self.item_emb_a if domain == "a" else self.item_emb_b)[ids]

  def item_tables(self) -> tuple[Array, Array, Array]:
    """All item vectors: mixed [nA+nB+1, d], A [nA+1, d], B [nB+1, d]."""
    return self.mix_table(), self.domain_table("a"), self.domain_table("b")

  def user_vectors(self, profile: Array) -> Array:
    h = profile
    for dense in self.user_adapter:
      h = dense(h)
    return h

  def init_all(self, batch: dict[str, Array]) -> Any:
    """Touches every submodule once so that `init` creates all parameters."""
    out = self(batch, train=False)
    if self.user_dim:
      out["user"] = self.user_vectors(jnp.zeros((1, self.user_dim)))
    return out, self.item_tables()

  # -- encoder --------------------------------------------------------------------------------
  def _embed(self, stream: str, ids: Array, positions: Array, train: bool) -> Array:
    if stream == "m":
      scale = self.global_dim if self.global_dim else self.config.width  # sqrt of the *table* width
      e = self.mix_items(ids)
    else:
      scale = self.config.width
      e = self.domain_items(ids, stream)
    e = e * math.sqrt(scale) + self.pos_emb[stream](positions)
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def _cross(
    self, p: int, h: dict[str, Array], batch: dict[str, Array], train: bool, cells: dict[str, Any]
  ) -> dict[str, Array]:
    """GCA position p: the A stream queries B and B queries A (the mixed stream as it is)."""
    streams = {s: (h[s], batch[f"time_{s}"], batch[f"seq_{s}"] > 0) for s in ("a", "b")}
    other = {"a": streams["b"], "b": streams["a"]}
    new = gca_lib.apply_position(self.cells, p, streams, other, train=train, out=cells)
    return {**h, **new}

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes the three streams.

    Returns a dict with f_m, f_a, f_b ([B, L, d] final features) and cells (per GCA cell name, the
    intermediates X, X', Y, masks and gate values).
    """
    h = {
      s: self._embed(s, batch[k], batch[p], train)
      for s, k, p in (
        ("m", "seq", "positions"),
        ("a", "seq_a", "positions_a"),
        ("b", "seq_b", "positions_b"),
      )
    }
    valid = {"m": batch["seq"] > 0, "a": batch["seq_a"] > 0, "b": batch["seq_b"] > 0}
    cells: dict[str, Any] = {}
    cross = lambda p, h: self._cross(p, h, batch, train, cells)
    h = gca_lib.run_stacks(self.stacks, h, valid, self.gca_positions, cross, train=train)
    out = {f"f_{s}": self.last_ln[s](h[s]) for s in h}
    out["cells"] = cells
    return out
