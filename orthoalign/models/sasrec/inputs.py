"""SASRec's module from a config."""

from __future__ import annotations

from typing import Any

from orthoalign.data import dataset as dataset_lib
from orthoalign.models.sasrec.module import SASRec


def make_module(
  ds: dataset_lib.CDSRDataset,
  m: Any,
  gca_positions: tuple[int, ...] = (),
  gca: dict[str, Any] | None = None,
) -> SASRec:
  """The SASRec module for a catalogue and `config.model`."""
  return SASRec(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    hidden=int(m.hidden_size),
    num_blocks=int(m.num_blocks),
    num_heads=int(m.num_heads),
    dropout=float(m.dropout),
    max_len=int(m.max_len),
    ffn_size=int(m.ffn_size),
    streams=m.streams,
    positions=m.positions,
    pre_ln=bool(m.pre_ln),
    gca_positions=tuple(gca_positions),
    gca=dict(gca or {}),
  )
