r"""Parameter-matched scaling (Figure 3) for C2DSR on Food-Kitchen.

  python -m orthoalign.grid --grid=configs/grids/scaling_c2dsr_afk.py --root=runs/scaling_c2dsr_afk
  python -m orthoalign.analysis.report --grid=runs/scaling_c2dsr_afk \
      --out=docs/results/scaling_c2dsr_afk

GCA_early (GCA[0]) and GCA_stack (GCA[0,1,2]) on the two smallest C2DSR sizes; C2DSR sizes matched
to every GCA point by growing the inner width of its three encoders' feed-forward layers
(model.ffn), plus two larger sizes (orthoalign/experiments/scaling.py). Most of C2DSR's parameters
are its three item tables and two classifiers, which no variant changes. GCA unit: the bare
cross-attention cell (gca.ffn = 0; the paper does not study C2DSR). 5 seeds as replicas. A GPU job.
"""

from configs import c2dsr
from orthoalign.experiments import scaling


def get_config():
  return c2dsr.get_config()


def get_grid(config=None):
  # config: the base config with the grid runner's --set values (e.g. another data.path).
  return scaling.scaling_grid(
    get_config() if config is None else config,
    variants={"early": (0,), "stack": (0, 1, 2)},
    gca_sizes=2,
    larger=2,
    seeds=(2040, 0, 1, 2, 3),
  )
