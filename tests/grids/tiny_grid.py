r"""Test grid: two one-epoch programs of configs/tiny.py, each with two seeds as replicas.

python -m orthoalign.grid --grid=tests/grids/tiny_grid.py --root=/tmp/orthoalign/tiny_grid
"""

from configs import tiny


def get_config():
  config = tiny.get_config()
  config.train.max_epochs = 1
  return config


def get_grid():
  # Candidate seeds change no shape: both programs share one compiled (and cached) executable.
  return {"eval.candidate_seed": {"c0": 0, "c1": 1}, "seed": [0, 1]}
