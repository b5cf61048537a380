r"""Is orthogonality the cause? SASRec-dual on the synthetic data, planted strength 0 and 1.

  python -m orthoalign.grid --grid=configs/grids/synthetic_orthogonality_sasrec.py \
      --root=runs/synthetic_orthogonality_sasrec
  python -m orthoalign.analysis.report --grid=runs/synthetic_orthogonality_sasrec \
      --out=docs/results/orthogonality/synthetic_sasrec

The six variants of configs/grids/orthogonality_sasrec_afk.py (plain, GCA_early, GCA_stack, and
GCA_early with X' made orthogonal to X, parallel to X, or computed from another user's history)
x cross-domain strength lambda (data.synthetic.cross_strength: 0 = the domains are independent,
1 = the default planted signal) = 12 programs x 5 seeds (60 runs). Data, training and evaluation
as the LLM4CDSR synthetic grids (configs/synthetic_small.py: 1,000 users, 200 + 200 items, 100
sampled negatives, Adam lr 3e-3, 20 epochs, patience 5); SASRec-dual with width 32, window 20,
2 blocks, 1 head, dropout 0.2.
"""

from configs import sasrec
from configs import synthetic_small
from configs.grids import orthogonality_sasrec_afk as afk
from orthoalign.experiments.expand import Grid


def get_config():
  small = synthetic_small.get_config()
  config = sasrec.get_config()
  config.data = small.data
  config.train = small.train
  config.eval = small.eval
  config.model.update(width=32, max_len=20, dropout=0.2)
  return config


def get_grid():
  strength = {"data.synthetic.cross_strength": {"0": 0.0, "1": 1.0}}
  return Grid(
    blocks=afk.variant_blocks(**strength),
    names={"data.synthetic.cross_strength": "lambda", **afk.NAMES},
  )
