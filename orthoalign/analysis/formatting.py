"""Text of table cells shared by the markdown and LaTeX renderers of the analyses.

Every formatter takes a plain float (NaN marks a missing value) or a name and returns a string;
none raises on NaN.
"""

from __future__ import annotations

import pandas as pd

_VARIANT_LABELS = {"plain": "baseline", "early": "+GCA_early", "stack": "+GCA_stack"}


def mean_std(mean: float, std: float, tex: bool = False) -> str:
  r"""Mean ± std with 4 decimals: "0.1234 ± 0.0056" (tex: "0.1234 $\pm$ 0.0056").

  The mean alone when std is NaN (one seed); "—" (tex: "--") when the mean is NaN.
  """
  if pd.isna(mean):
    return "—" if not tex else "--"
  pm = r" $\pm$ " if tex else " ± "
  return f"{mean:.4f}{pm}{std:.4f}" if not pd.isna(std) else f"{mean:.4f}"


def p_value(p: float) -> str:
  """A p-value with 3 significant digits, in scientific notation below 1e-3; NaN -> "—"."""
  if pd.isna(p):
    return "—"
  return f"{p:.3g}" if p >= 1e-3 else f"{p:.1e}"


def number(x: float, fmt: str = "+.4f") -> str:
  """`format(x, fmt)`, or "—" for NaN."""
  return "—" if pd.isna(x) else format(x, fmt)


def metric_label(metric: str) -> str:
  """Display name of a results metric: "ndcg@10" -> "NDCG@10", "hr@5" -> "HR@5", "auc" -> "AUC"."""
  if metric in ("auc", "mrr"):
    return metric.upper()
  return metric.replace("ndcg", "NDCG").replace("hr", "HR")


def variant_label(variant: str) -> str:
  """Display name of a GCA variant: "plain" -> "baseline", "early" -> "+GCA_early", "x" -> "+x"."""
  return _VARIANT_LABELS.get(variant, f"+{variant}")
