r"""Parameter-matched scaling (Figure 3) for LLM4CDSR on Food-Kitchen, with the paper's unit size.

  python -m orthoalign.grid --grid=configs/grids/scaling_llm4cdsr_fk.py \
      --root=runs/scaling_llm4cdsr_fk
  python -m orthoalign.analysis.report --grid=runs/scaling_llm4cdsr_fk \
      --out=docs/results/scaling_llm4cdsr_fk

GCA unit: cross-attention + a feed-forward block of expansion 12 (gca.ffn = 12): 0.92M parameters
per GCA position at d = 128, near the 0.94M the paper's Figure 3 implies for LLM4CDSR
(reference/paper.md §1.3). GCA_early (GCA[0]) and GCA_stack (GCA[0,1]) on the two smallest sizes;
LLM4CDSR sizes matched by growing the blocks' FFN width (model.ffn), plus two larger sizes.
Totals include the frozen text tables, as the paper's do. 5 seeds as replicas. A GPU job.
"""

from configs import llm4cdsr_fk
from orthoalign.experiments import scaling


def get_config():
  config = llm4cdsr_fk.get_config()
  config.gca.ffn = 12
  return config


def get_grid(config=None):
  # config: the base config with the grid runner's --set values (e.g. another data.path).
  return scaling.scaling_grid(
    get_config() if config is None else config,
    variants={"early": (0,), "stack": (0, 1)},
    gca_sizes=2,
    larger=2,
    seeds=(42, 0, 1, 2, 3),
  )
