r"""The orthogonality-performance correlation (Figure 2) for C2DSR on Food-Kitchen: 144 runs.

  python -m orthoalign.grid --grid=configs/grids/correlation_c2dsr_afk.py \
      --root=runs/correlation_c2dsr_afk
  python -m orthoalign.analysis.report --grid=runs/correlation_c2dsr_afk \
      --out=docs/results/correlation_c2dsr_afk

The paper's variants (reference/paper.md §2.4) on C2DSR's A and B encoders: position GCA[0] /
GCA[0,1] / GCA[0,2] x gate activation sigmoid / tanh x LayerNorm none / post x width 128 / 256 x
cross-attention heads 1 / 4 = 48 programs, 3 seeds as replicas each (144 runs), on
configs/c2dsr.py. Test metrics are tracked at every validation (eval.track_test). GCA unit: bare
cross-attention (gca.ffn = 0). A GPU job.
"""

from configs import c2dsr
from orthoalign.experiments import correlation


def get_config():
  config = c2dsr.get_config()
  config.eval.track_test = True
  return config


def get_grid():
  return correlation.figure2_grid(widths=(128, 256), seeds=(2040, 0, 1), width_label="d")
