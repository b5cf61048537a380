r"""Table 1 for MERIT on Food-Kitchen (abxi-afk), and its fixed cross-attention gate against a
learned one: 5 programs x 5 seeds.

  python -m orthoalign.grid --grid=configs/grids/table1_merit_afk.py --root=runs/table1_merit_afk
  python -m orthoalign.analysis.report --grid=runs/table1_merit_afk \
      --out=docs/results/table1_merit_afk

configs/merit.py (the original's settings and schedule) as it is (plain), with GCA_early = GCA[0]
and GCA_stack = GCA[0,1] (after the embedding, and after the self-attention blocks); and plain
MERIT with its own cross-attentions' gate (fixed at 1 in the original) learned, sigmoid or tanh
(gca.gate_init 0: the gate starts at 0.5 or 0). Seeds 3407, 0, 1, 2, 3 as replicas of each program.
GCA unit: the bare cross-attention cell (gca.ffn = 0). A GPU job (docs/experiments.md).
"""

from configs import merit
from orthoalign.experiments.expand import Grid

SEEDS = (3407, 0, 1, 2, 3)


def get_config():
  return merit.get_config()


def get_grid():
  return Grid(
    blocks=[
      {"gca.positions": {"plain": (), "early": (0,), "stack": (0, 1)}, "seed": SEEDS},
      {
        "gca.positions": {"plain": ()},
        "model.caf_gate": ("learned",),
        "gca.act": ("sigmoid", "tanh"),
        "seed": SEEDS,
      },
    ],
    names={"gca.positions": "gca", "model.caf_gate": "caf", "gca.act": "act"},
  )
