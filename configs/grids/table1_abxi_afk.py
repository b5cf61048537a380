r"""Table 1 for ABXI on Food-Kitchen (abxi-afk): plain / + GCA_early / + GCA_stack x 5 seeds.

  python -m orthoalign.grid --grid=configs/grids/table1_abxi_afk.py --root=runs/table1_abxi_afk
  python -m orthoalign.analysis.report --grid=runs/table1_abxi_afk \
      --out=docs/results/table1_abxi_afk

configs/abxi.py (the original v2.1 settings and schedule) with GCA_early = GCA[0] and GCA_stack =
GCA[0,1,2]; ABXI's README seeds (3407, 0, 1, 2, 3) as replicas of each of the 3 programs (15 runs).
GCA unit: the bare cross-attention cell (gca.ffn = 0; 0.53M parameters per position at d = 256).
launch/repro_abxi_afk.sh runs this grid and its report. A GPU job (docs/experiments.md).
"""

from configs import abxi
from orthoalign.experiments.expand import Grid


def get_config():
  return abxi.get_config()


def get_grid():
  return Grid(
    blocks=[
      {
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},
        "seed": (3407, 0, 1, 2, 3),
      }
    ],
    names={"gca.positions": "gca"},
  )
