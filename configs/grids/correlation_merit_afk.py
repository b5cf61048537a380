r"""The orthogonality-performance correlation (Figure 2) for MERIT on Food-Kitchen: 144 runs.

  python -m orthoalign.grid --grid=configs/grids/correlation_merit_afk.py \
      --root=runs/correlation_merit_afk
  python -m orthoalign.analysis.report --grid=runs/correlation_merit_afk \
      --out=docs/results/correlation_merit_afk

The paper's variants (reference/paper.md §2.4) on MERIT's two GCA positions: GCA[0] / GCA[0,1] /
GCA[1] x gate activation sigmoid / tanh x LayerNorm none / post x width 128 / 256 x cross-attention
heads 1 / 4 = 48 programs, 3 seeds as replicas each (144 runs). MERIT has no position 2 (one block
per stream), so GCA[1] takes the place of the paper's GCA[0,2]. Every run also reports MERIT's own
cross-attentions (cells ecaf_A, ecaf_B, caf_M). Test metrics are tracked per epoch
(eval.track_test). GCA unit: bare cross-attention (gca.ffn = 0). A GPU job.
"""

from configs import merit
from orthoalign.experiments import correlation


def get_config():
  config = merit.get_config()
  config.eval.track_test = True
  return config


def get_grid():
  return correlation.figure2_grid(
    widths=(128, 256),
    seeds=(3407, 0, 1),
    width_label="d",
    positions={"0": (0,), "0-1": (0, 1), "1": (1,)},
  )
