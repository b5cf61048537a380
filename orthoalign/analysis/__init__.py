"""Turning runs into the paper's tables and figures (pandas, scipy, matplotlib: the analysis extra).

The researcher-facing functions are importable from here; each is loaded on first use, so that
`import orthoalign.analysis` needs none of the extras (and never picks a matplotlib backend) until
a function is asked for. Modules:

- `results`: `load_runs` (results.jsonl), `load_histories` (history.jsonl), `load_grid` (a grid's
  finished runs), markdown tables of mean ± std over replicas, `cut_short` (programs stopped by
  train.max_epochs before early stopping).
- `variants`: GCA variants and experimental conditions of a runs frame.
- `tables`: Table 1 (`table1`, `table1_markdown`, `table1_latex`) and the interventions on the
  cell paired with the untouched cell (`interventions`).
- `correlations`: Figure 2, orthogonality against accuracy (`correlation`).
- `scaling_curves`: Figure 3, accuracy against parameters (`scaling`).
- `alignment`: Figure 8, the alignment statistics pooled (`alignment_summary`) or per condition
  (`alignment_by_condition`).
- `history`: per-epoch trajectories (`trajectory`).
- `figures`: PNG writers (`correlation_figure`, `scaling_figure`, `alignment_boxplots`,
  `trajectory_figure`).
- `stats`, `formatting`: the statistics and the cell text behind them; `report`: the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

# Exported name -> the module (in this package) that defines it.
_EXPORTS = {
  "load_runs": "results",
  "load_histories": "results",
  "load_grid": "results",
  "table1": "tables",
  "interventions": "tables",
  "correlation": "correlations",
  "scaling": "scaling_curves",
  "alignment_summary": "alignment",
  "alignment_by_condition": "alignment",
  "trajectory": "history",
  "correlation_figure": "figures",
  "scaling_figure": "figures",
  "alignment_boxplots": "figures",
  "trajectory_figure": "figures",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
  """Imports the module defining `name` on first access (PEP 562).

  Raises:
    AttributeError: `name` is not an exported function (submodules are found by the import
      system itself).
  """
  module = _EXPORTS.get(name)
  if module is None:
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
  value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
  globals()[name] = value  # later look-ups skip __getattr__
  return value


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_EXPORTS))
