r"""Test grid for expansion: a union of two blocks, labelled values, short names, replica axes.

python -m orthoalign.grid --grid=tests/grids/example.py --root=/tmp/orthoalign/example --dry-run
"""

from configs import tiny
from orthoalign.experiments.expand import Grid


def get_config():
  return tiny.get_config()


def get_grid():
  return Grid(
    blocks=[
      {
        "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)},
        "model.width": [16, 32],
        "seed": (0, 1, 2),
        "train.learning_rate": [1e-3, 1e-4],
      },
      {
        "gca.positions": {"early": (0,)},
        "gca.act": ["tanh"],
        "seed": [0, 1, 2],
        "train.learning_rate": [1e-3, 1e-4],
        "train.max_epochs": 2,
      },
    ],
    names={"gca.positions": "gca", "model.width": "hidden"},
  )
