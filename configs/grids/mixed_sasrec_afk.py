r"""SASRec-mixed on Food-Kitchen (abxi-afk): the merged-timeline reference row beside SASRec-dual.

  python -m orthoalign.grid --grid=configs/grids/mixed_sasrec_afk.py --root=runs/mixed_sasrec_afk

Its runs sit beside SASRec-dual's on one page (docs/results/orthogonality/README.md gives the
report command that writes docs/results/orthogonality/backbones_afk.md).

One SASRec over the merged timeline (model.streams = mixed: it sees both domains, so it needs no
GCA cell and has none), at the size, schedule and protocol of
configs/grids/orthogonality_sasrec_afk.py
(width 32, window 50 over the merged timeline, 999 sampled negatives plus full ranking), 5 seeds as
replicas of one program.
"""

from configs.grids import orthogonality_sasrec_afk as afk
from orthoalign.experiments.expand import Grid


def get_config():
  config = afk.get_config()
  config.model.streams = "mixed"
  config.gca.positions = ()
  return config


def get_grid():
  return Grid(blocks=[{"seed": afk.SEEDS}])
