r"""The orthogonality-performance correlation (Figure 2) for ABXI on Food-Kitchen: 144 runs.

  python -m orthoalign.grid --grid=configs/grids/correlation_abxi_afk.py \
      --root=runs/correlation_abxi_afk
  python -m orthoalign.analysis.report --grid=runs/correlation_abxi_afk \
      --out=docs/results/correlation_abxi_afk

The paper's variants (reference/paper.md §2.4): position GCA[0] / GCA[0,1] / GCA[0,2] x gate
activation sigmoid / tanh x LayerNorm none / post x width 128 / 256 x cross-attention
heads 1 / 4 = 48 programs, each with 3 seeds as replicas (144 runs). Test metrics are tracked per
epoch (eval.track_test) for the paper's best-test-epoch reading. GCA unit: bare cross-attention
(gca.ffn = 0). A GPU job (docs/experiments.md has its cost).
"""

from configs import abxi
from orthoalign.experiments import correlation


def get_config():
  config = abxi.get_config()
  config.eval.track_test = True
  return config


def get_grid():
  return correlation.figure2_grid(widths=(128, 256), seeds=(3407, 0, 1), width_label="d")
