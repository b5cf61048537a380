r"""Table 1 for C2DSR on Food-Kitchen (abxi-afk): 4 programs x 5 seeds.

  python -m orthoalign.grid --grid=configs/grids/table1_c2dsr_afk.py --root=runs/table1_c2dsr_afk
  python -m orthoalign.analysis.report --grid=runs/table1_c2dsr_afk \
      --out=docs/results/table1_c2dsr_afk

configs/c2dsr.py (the original's settings: 100 epochs, validation every 5) as it is (plain), with
GCA_early = GCA[0] (after the embeddings of the A and B encoders) and GCA_stack = GCA[0,1,2]
(also after each of the two blocks), the cells querying the other domain's encoder; and GCA_early
querying the merged encoder (gca.kv = mixed). Seeds 2040, 0, 1, 2, 3 as replicas of each program.
GCA unit: the bare cross-attention cell (gca.ffn = 0). A GPU job (docs/experiments.md).
"""

from configs import c2dsr
from orthoalign.experiments.expand import Grid

SEEDS = (2040, 0, 1, 2, 3)


def get_config():
  return c2dsr.get_config()


def get_grid():
  return Grid(
    blocks=[
      {"gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)}, "seed": SEEDS},
      {"gca.positions": {"early": (0,)}, "gca.kv": ("mixed",), "seed": SEEDS},
    ],
    names={"gca.positions": "gca", "gca.kv": "kv"},
  )
