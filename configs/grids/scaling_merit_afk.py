r"""Parameter-matched scaling (Figure 3) for MERIT on Food-Kitchen.

  python -m orthoalign.grid --grid=configs/grids/scaling_merit_afk.py --root=runs/scaling_merit_afk
  python -m orthoalign.analysis.report --grid=runs/scaling_merit_afk \
      --out=docs/results/scaling_merit_afk

GCA_early (GCA[0]) and GCA_stack (GCA[0,1]) on the two smallest MERIT sizes; MERIT sizes matched
to every GCA point by growing the SwiGLU width of its experts and feed-forward blocks (model.ffn),
plus two larger sizes (orthoalign/experiments/scaling.py). GCA unit: the bare cross-attention cell
(gca.ffn = 0; the paper gives no unit size for MERIT, which it does not study). 5 seeds as
replicas. A GPU job.
"""

from configs import merit
from orthoalign.experiments import scaling


def get_config():
  return merit.get_config()


def get_grid(config=None):
  # config: the base config with the grid runner's --set values (e.g. another data.path).
  return scaling.scaling_grid(
    get_config() if config is None else config,
    variants={"early": (0,), "stack": (0, 1)},
    gca_sizes=2,
    larger=2,
    seeds=(3407, 0, 1, 2, 3),
  )
