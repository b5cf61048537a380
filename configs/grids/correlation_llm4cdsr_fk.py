r"""The orthogonality-performance correlation (Figure 2) for LLM4CDSR on Food-Kitchen: 144 runs.

  python -m orthoalign.grid --grid=configs/grids/correlation_llm4cdsr_fk.py \
      --root=runs/correlation_llm4cdsr_fk
  python -m orthoalign.analysis.report --grid=runs/correlation_llm4cdsr_fk \
      --out=docs/results/correlation_llm4cdsr_fk

Position GCA[0] / GCA[0,1] / GCA[0,2] x sigmoid / tanh x LayerNorm none / post x hidden 64 / 128 x
cross-attention heads 1 / 4 = 48 programs x 3 seeds as replicas (144 runs), on
configs/llm4cdsr_fk.py. Test metrics tracked per epoch. GCA unit: bare cross-attention
(gca.ffn = 0). A GPU job.
"""

from configs import llm4cdsr_fk
from orthoalign.experiments import correlation


def get_config():
  config = llm4cdsr_fk.get_config()
  config.eval.track_test = True
  return config


def get_grid():
  return correlation.figure2_grid(widths=(64, 128), seeds=(42, 0, 1), width_label="hidden")
