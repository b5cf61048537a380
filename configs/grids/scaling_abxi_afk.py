r"""Parameter-matched scaling (Figure 3) for ABXI on Food-Kitchen, with the paper's GCA unit size.

  python -m orthoalign.grid --grid=configs/grids/scaling_abxi_afk.py --root=runs/scaling_abxi_afk
  python -m orthoalign.analysis.report --grid=runs/scaling_abxi_afk \
      --out=docs/results/scaling_abxi_afk

GCA unit: cross-attention + a feed-forward block of expansion 6 (gca.ffn = 6): 2.10M parameters
per GCA position at d = 256, the unit the paper's Figure 3 implies for ABXI on Food-Kitchen
(reference/paper.md §1.3). GCA_early (GCA[0]) and GCA_stack (GCA[0,1]) on the two smallest ABXI
sizes; ABXI sizes matched to every GCA point by growing the SwiGLU width (model.ffn), plus two
larger sizes (orthoalign/experiments/scaling.py). 5 seeds as replicas. A GPU job.
"""

from configs import abxi
from orthoalign.experiments import scaling


def get_config():
  config = abxi.get_config()
  config.gca.ffn = 6
  return config


def get_grid(config=None):
  # config: the base config with the grid runner's --set values (e.g. another data.path).
  return scaling.scaling_grid(
    get_config() if config is None else config,
    variants={"early": (0,), "stack": (0, 1)},
    gca_sizes=2,
    larger=2,
    seeds=(3407, 0, 1, 2, 3),
  )
