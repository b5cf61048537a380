r"""C2DSR (CIKM 2022) with its own settings, on ABXI's Food-Kitchen files (abxi-afk).

Run (plain C2DSR, seed 2040):
  python -m orthoalign.main --config=configs/c2dsr.py --workdir=/tmp/orthoalign/c2dsr_afk

On C2DSR's own files (Food-Kitchen, Movie-Book, Entertainment-Education from its README's link):
  --config.data.format=c2dsr --config.data.path=<folder with Alist.txt ... testdata_new.txt>
  (and --config.model.max_len=30 for Entertainment-Education, as its loader).
Five seeds as replicas of one compiled program: --config.sweep.seeds='(2040,0,1,2,3)'.
Variants: GCA right after the embeddings of the A and B encoders: --config.gca.positions='(0,)';
after each block too: '(0,1,2)'; the cells querying the merged encoder: --config.gca.kv=mixed;
the original's quirks off (orthoalign/models/c2dsr/): --config.model.gcn_weight=applied
  --config.model.final_b0_off_by_one=False --config.model.corruption=per_step

Original settings (`cjx96/C2DSR` f23f18a, train_rec.py defaults): hidden 256, 2 blocks, 1 head,
one GNN layer, dropout 0.2, window 15, lambda 0.7, Adam lr 1e-3 with betas (0.9, 0.98) (here the
trainer's 0.999), no weight decay (`--weight_decay` is parsed, never passed), batch 256, 100
epochs, validation every 5 epochs, 999 sampled evaluation negatives, best epoch per domain by
validation MRR (here the sum MRR_A + MRR_B selects one epoch for both), no early stopping.
"""

from configs import base


def get_config():
  config = base.get_config("c2dsr")  # model keys: orthoalign/models/c2dsr/config.py
  config.data.format = "abxi"
  config.data.path = "../shared/data/abxi-afk"

  config.train.batch_size = 256
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 0.0
  config.train.max_epochs = 100
  config.train.eval_every = 5
  config.train.early_stop_patience = 20  # every evaluation of the 100 epochs: no early stop
  config.train.checkpoint_every = 5
  config.train.select_metric = "valid/sampled/A/mrr+valid/sampled/B/mrr"
  config.eval.num_negatives = 999
  config.eval.batch_size = 1024
  config.sweep.seeds = (2040,)

  config.gca.positions = ()  # plain C2DSR
  return config
