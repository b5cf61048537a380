"""ABXI's inputs besides its windows (inputs/abxi_windows.py): how negatives are scored."""

from __future__ import annotations

import jax


def catalog_scoring(mode: str) -> bool:
  """model.neg_scoring: "gather" (CPU-friendly), "catalog" (accelerator-friendly) or "auto"."""
  return mode == "catalog" or (mode == "auto" and jax.default_backend() != "cpu")
