r"""Is orthogonality the cause? SASRec-dual on Food-Kitchen (abxi-afk), interventions on the cell.

  python -m orthoalign.grid --grid=configs/grids/orthogonality_sasrec_afk.py \
      --root=runs/orthogonality_sasrec_afk
  python -m orthoalign.analysis.report --grid=runs/orthogonality_sasrec_afk \
      --out=docs/results/orthogonality/sasrec_afk

SASRec-dual (one SASRec per domain, nothing shared) makes the GCA cell the only path between the
domains. Six programs x 5 paired seeds (30 runs): plain, GCA_early (GCA[0]), GCA_stack
(GCA[0,1,2]), and GCA_early with the cell's X' replaced by its component orthogonal to X
(`orthogonal`), by its projection onto X (`parallel`), or computed from another user's history
(`shuffled`). Protocol as ABXI: merged timeline, leave-one-out, 999 sampled negatives of the
target's domain, plus full ranking.

Size, chosen for a 2-core CPU (docs/results/orthogonality/README.md says how): width 32 instead
of pmixer's 50, dropout 0.2 instead of 0.5, Adam lr 5e-3 instead of 1e-3; 2 blocks, 1 head,
window 50 per domain, batch 128, model selection by validation MRR_A + MRR_B, 25 epochs at most
(patience 8).
"""

from configs import sasrec
from orthoalign.experiments.expand import Grid

SEEDS = (0, 1, 2, 3, 4)


def get_config():
  config = sasrec.get_config()
  config.model.update(width=32, dropout=0.2)
  config.train.update(learning_rate=5e-3, max_epochs=25, early_stop_patience=8)
  return config


def variant_blocks(**fixed) -> list[dict]:
  """The six variants x SEEDS, each block also taking `fixed`'s axes (e.g. a data setting)."""
  return [
    {**fixed, "gca.positions": {"plain": (), "early": (0,), "stack": (0, 1, 2)}, "seed": SEEDS},
    {
      **fixed,
      "gca.positions": {"early": (0,)},
      "gca.intervention": ("orthogonal", "parallel", "shuffled"),
      "seed": SEEDS,
    },
  ]


NAMES = {"gca.positions": "gca", "gca.intervention": "x_prime"}


def get_grid():
  return Grid(blocks=variant_blocks(), names=NAMES)
