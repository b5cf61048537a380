"""The SASRec Flax module (pmixer's port): one encoder per stream, GCA insertion points."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.sasrec.config import Config

Array = jax.Array


class SASRec(nn.Module):
  """SASRec per domain or on the merged timeline (package docstring).

  Attributes:
    num_items_a, num_items_b: catalogue sizes (local ids 1..n per domain, 0 = padding).
    config: the `model.*` settings (config.py); "dual" streams are "a" and "b", "mixed" is "m"
      (global ids).
    gca_positions: GCA insertion points ("dual" only).
    gca: keyword arguments of every gca.GatedCrossAttention cell.
  """

  num_items_a: int
  num_items_b: int
  config: Config
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def names(self) -> tuple[str, ...]:
    return ("a", "b") if self.config.streams == "dual" else ("m",)

  def setup(self):
    d = self.config.width
    n = {"a": self.num_items_a, "b": self.num_items_b, "m": self.num_items_a + self.num_items_b}
    names = self.names()
    self.item_emb = {
      s: self.param(f"item_emb_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in names
    }
    rows = self.config.max_len if self.config.positions == "slot" else self.config.max_len + 1
    self.pos_emb = {s: self.param(f"pos_emb_{s}", layers.xavier_normal, (rows, d)) for s in names}
    cfg = self.config
    self.stacks, self.last_ln = gca_lib.encoder_stacks(names, cfg, causal=True, pre_ln=cfg.pre_ln)
    self.emb_dropout = nn.Dropout(self.config.dropout)
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def _embed(self, s: str, ids: Array, positions: Array, train: bool) -> Array:
    if self.config.positions == "slot":
      positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
    e = self.item_emb[s][ids] * math.sqrt(self.config.width) + self.pos_emb[s][positions]
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def __call__(self, rows: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes the streams of a batch of windows.

    Args:
      rows: "dual": seq_a/seq_b, positions_a/_b, time_a/_b [B, L] (inputs/domain_windows.py);
        "mixed": seq, positions [B, L] (inputs/windows.py).
      train: enables dropout.

    Returns:
      {"f_a", "f_b"} or {"f_m"}: [B, L, d] final features (after the last LayerNorm); "cells": the
      GCA intermediates by cell name.
    """
    key = {"a": "_a", "b": "_b", "m": ""}
    ids = {s: rows[f"seq{key[s]}"] for s in self.names()}
    h = {s: self._embed(s, ids[s], rows[f"positions{key[s]}"], train) for s in self.names()}
    cells: dict[str, Any] = {}
    cross = lambda p, h: {**h, **gca_lib.exchange(self.cells, p, h, rows, train=train, out=cells)}
    valid = {s: ids[s] > 0 for s in self.names()}
    h = gca_lib.run_stacks(self.stacks, h, valid, self.gca_positions, cross, train=train)
    return {**{f"f_{s}": self.last_ln[s](h[s]) for s in self.names()}, "cells": cells}
