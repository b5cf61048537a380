"""ABXI's module from a config (sizes, quirk flags, negative scoring)."""

from __future__ import annotations

from typing import Any

import jax

from orthoalign.models.abxi.module import ABXI


def catalog_scoring(mode: str) -> bool:
  """model.neg_scoring: "gather" (CPU-friendly), "catalog" (accelerator-friendly) or "auto"."""
  return mode == "catalog" or (mode == "auto" and jax.default_backend() != "cpu")


def make_module(
  num_items_a: int,
  num_items_b: int,
  model_cfg: Any,
  gca_positions: tuple[int, ...] = (),
  gca_kv: str = "other",
  gca: dict[str, Any] | None = None,
) -> ABXI:
  """The ABXI module for a catalog and `config.model`."""
  return ABXI(
    num_items_a=num_items_a,
    num_items_b=num_items_b,
    length=int(model_cfg.max_len) - 3,
    d_embed=int(model_cfg.d_embed),
    n_head=int(model_cfg.n_head),
    d_ffn=int(model_cfg.d_ffn),
    rd=int(model_cfg.rd),
    ri=int(model_cfg.ri),
    dropout=float(model_cfg.dropout),
    gca_positions=tuple(gca_positions),
    gca_kv=gca_kv,
    gca=dict(gca or {}),
  )
