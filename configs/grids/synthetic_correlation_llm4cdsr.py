r"""The orthogonality-performance correlation (the paper's Figure 2) on synthetic data (LLM4CDSR).

  python -m orthoalign.grid --grid=configs/grids/synthetic_correlation_llm4cdsr.py \
      --root=runs/synthetic_correlation_llm4cdsr
  python -m orthoalign.analysis.report --grid=runs/synthetic_correlation_llm4cdsr \
      --out=docs/results/synthetic/correlation_llm4cdsr

GCA variants as the paper describes them (reference/paper.md §2.4): position GCA[0] or GCA[0,1]
x gate activation sigmoid / tanh x LayerNorm none / post x hidden size 16 / 32 = 16 programs;
each trains 2 seeds x 2 gate initialisations (-1, +1) as 4 replicas: 64 runs. Every run records
test metrics per epoch (eval.track_test) so the paper's best-test-epoch reading can be compared
with best-validation selection. GCA unit: the bare cross-attention cell (gca.ffn = 0).
"""

from configs import synthetic_small
from orthoalign.experiments.expand import Grid


def get_config():
  config = synthetic_small.get_config()
  config.eval.track_test = True
  return config


def get_grid():
  return Grid(
    blocks=[
      {
        "gca.positions": {"0": (0,), "0-1": (0, 1)},
        "gca.act": ("sigmoid", "tanh"),
        "gca.layernorm": ("none", "post"),
        "model.width": (16, 32),
        "seed": (0, 1),
        "gca.gate_init": (-1.0, 1.0),
      }
    ],
    names={"gca.positions": "gca", "gca.layernorm": "ln", "model.width": "hidden"},
  )
