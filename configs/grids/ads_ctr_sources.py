r"""Click prediction on the ads scenario: no source, one source, both sources; plain vs GCA.

  python -m orthoalign.grid --grid=configs/grids/ads_ctr_sources.py --root=runs/ads_ctr_sources
  python -m orthoalign.analysis.ctr_report --grid=runs/ads_ctr_sources --out=docs/results/ads

7 programs (the ads history alone; posts, likes or both as sources, each as the plain
multi-domain tower and with GCA_early: one cell per source into the ads stream), each with 5
seeds as replicas of one program: the same seed gives the same data and the same initial weights
of the shared layers in every program, so the programs' results pair by seed. Settings:
configs/ads_ctr.py.
"""

from configs import ads_ctr
from orthoalign.experiments.expand import Grid


def get_config():
  return ads_ctr.get_config()


def get_grid():
  seeds = (0, 1, 2, 3, 4)
  return Grid(
    blocks=[
      {"ctr.sources": {"none": ()}, "gca.positions": {"plain": ()}, "seed": seeds},
      {
        "ctr.sources": {"posts": ("posts",), "likes": ("likes",), "both": ("posts", "likes")},
        "gca.positions": {"plain": (), "gca": (0,)},
        "seed": seeds,
      },
    ],
    names={"ctr.sources": "sources", "gca.positions": "cell"},
  )
