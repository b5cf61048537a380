"""The paper's correlation grid (Figure 2), written once for every baseline.

The paper's variants (reference/paper.md §2.4): GCA at positions [0] / [0,1] / [0,2] x gate
activation sigmoid / tanh x LayerNorm none / post x model width (two sizes) x cross-attention
heads 1 / 4 = 48 programs, each with its seeds as replicas. Every baseline calls its width
`model.width` (models/settings.py), so one grid serves all; a baseline's grid file picks its
widths, its seeds and the label its run names give the width.
"""

from __future__ import annotations

from orthoalign.experiments.expand import Grid

# The paper's GCA positions of Figure 2, by label.
PAPER_POSITIONS = {"0": (0,), "0-1": (0, 1), "0-2": (0, 2)}


def figure2_grid(
  widths: tuple[int, int],
  seeds: tuple[int, ...],
  width_label: str = "width",
  positions: dict[str, tuple[int, ...]] | None = None,
) -> Grid:
  """The 48 programs of Figure 2 (x len(seeds) replicas each).

  Args:
    widths: the two model widths (`model.width`).
    seeds: the replicas' seeds.
    width_label: the short name of the width axis in run names (e.g. "d" -> "d=128").
    positions: {label: GCA positions}, three of them; None = the paper's (PAPER_POSITIONS), for a
      backbone that lacks one of those positions its closest three.

  Returns:
    The grid (orthoalign/experiments/expand.py).
  """
  return Grid(
    blocks=[
      {
        "gca.positions": dict(PAPER_POSITIONS if positions is None else positions),
        "gca.act": ("sigmoid", "tanh"),
        "gca.layernorm": ("none", "post"),
        "model.width": tuple(widths),
        "gca.heads": (1, 4),
        "seed": tuple(seeds),
      }
    ],
    names={"gca.positions": "gca", "gca.layernorm": "ln", "model.width": width_label},
  )
