r"""Parameter-matched scaling (the paper's Figure 3) on synthetic data (LLM4CDSR).

  python -m orthoalign.grid --grid=configs/grids/synthetic_scaling_llm4cdsr.py \
      --root=runs/synthetic_scaling_llm4cdsr
  python -m orthoalign.analysis.report --grid=runs/synthetic_scaling_llm4cdsr \
      --out=docs/results/synthetic/scaling_llm4cdsr

The smallest baseline is configs/synthetic_small.py (hidden 32, FFN width 32). GCA_early (GCA[0])
and GCA_stack (GCA[0,1]) are added to the two smallest baseline sizes; the baseline sizes are
matched to each GCA model's total parameter count by growing the FFN width (model.ffn,
orthoalign/models/param_count.py), plus two larger sizes one GCA unit apart
(orthoalign/experiments/scaling.py); grid.json's meta records every target and achieved count.
GCA unit: the bare cross-attention cell (gca.ffn = 0), 8,450 parameters per position at d = 32.
Each program trains 5 seeds as replicas.
"""

from configs import synthetic_small
from orthoalign.experiments import scaling


def get_config():
  return synthetic_small.get_config()


def get_grid(config=None):
  # config: the base config with the grid runner's --set values (e.g. another data.path).
  return scaling.scaling_grid(
    get_config() if config is None else config,
    variants={"early": (0,), "stack": (0, 1)},
    gca_sizes=2,
    larger=2,
    seeds=(0, 1, 2, 3, 4),
  )
