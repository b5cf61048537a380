r"""SASRec-dual + GCA_early on ABXI's Food-Kitchen files (merged timeline, 999 sampled negatives).

  python -m orthoalign.main --config=configs/sasrec.py --workdir=/tmp/orthoalign/sasrec_afk

SASRec-dual is one pmixer-style SASRec per domain with nothing shared (orthoalign/models/sasrec/),
so the GCA cell is the only path between the domains: the testbed for asking whether GCA helps and
whether orthogonality is why. The plain baseline, GCA_stack, interventions and the merged-timeline
SASRec (no cells):
  --config.gca.positions='()'    --config.gca.positions='(0,1,2)'
  --config.gca.intervention=orthogonal|parallel|shuffled
  --config.sweep.orth_penalties='(0.0,0.1)'
  --config.model.streams=mixed --config.gca.positions='()'

Model keys and their defaults: `Config` in orthoalign/models/sasrec/config.py (pmixer's:
width 50, window 50, 2 blocks, 1 head, dropout 0.5). Training: Adam lr 1e-3, batch 128 (pmixer's),
model selection by validation MRR_A + MRR_B as ABXI's; the epoch budget (at most 100, patience 10)
is provisional until the epoch time and convergence are measured on this data.
"""

from configs import base


def get_config():
  config = base.get_config(
    "sasrec"
  )  # model keys: orthoalign/models/sasrec/config.py default_config
  config.data.format = "abxi"
  config.data.path = "../shared/data/abxi-afk"
  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.max_epochs = 100
  config.train.early_stop_patience = 10
  config.train.select_metric = "valid/sampled/A/mrr+valid/sampled/B/mrr"
  config.eval.num_negatives = 999
  config.eval.batch_size = 256
  config.sweep.seeds = (42,)
  # GCA_early: one position right after the embeddings.
  config.gca.positions = (0,)
  return config
