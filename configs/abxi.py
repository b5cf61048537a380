r"""ABXI (WWW 2025), v2.1 hyperparameters, on ABXI's own Food-Kitchen files (abxi-afk).

Run (plain ABXI, seed 3407):
  python -m orthoalign.main --config=configs/abxi.py --workdir=/tmp/orthoalign/abxi_afk

The README's five seeds as replicas of one compiled program:
  --config.sweep.seeds='(3407,0,1,2,3)'
ABXI + GCA right after the embedding (GCA[0]: an A<-B and a B<-A cell), or stacked after the
embedding and after the attention block; cells querying the mixed stream instead of the other
domain:
  --config.gca.positions='(0,)'    --config.gca.positions='(0,1)'    --config.gca.kv=mixed

Original settings (DiMarzioBian/ABXI commit 72e52c9 `main.py` defaults and `demo.sh` for afk;
reference/baselines.md §1.3): width (d_embed) 256, 2 heads, SwiGLU width 680, dropout 0.5,
temperature 0.75, 128 + 128 training negatives, len_max 50 (model.max_len 47, the window length),
dLoRA rank 16 and iLoRA rank 64
(abe: 64/64, amb: 4/4), AdamW lr 1e-4 with weight decay 3.0 (`demo.sh`; main.py default 5.0),
batch 256, evaluation batch 1024 (bs * 4), at most 500 epochs, 999 sampled evaluation negatives.
Early stopping: the original breaks once `cnt_es > es_p = 61`, i.e. at the 62nd evaluation without
improvement. Warm-up: LinearLR from 1e-5 over 10 epochs (`demo.sh` n_warmup=10), no validation
during it; then ReduceLROnPlateau(factor 0.3162, patience 30) stepped on "validation improved or
not"; model selection by validation MRR_A + MRR_B (what the code uses; its v1 comment says NDCG@10:
`--config.train.select_metric=valid/sampled/A/ndcg@10+valid/sampled/B/ndcg@10` is the alternative).
Checkpoints every 25 epochs (a resumed run replays the epochs since the last one exactly).
"""

from configs import base


def get_config():
  config = base.get_config("abxi")  # model keys: orthoalign/models/abxi/config.py default_config
  config.data.format = "abxi"
  config.data.path = "../shared/data/abxi-afk"

  config.train.batch_size = 256
  config.train.learning_rate = 1e-4
  config.train.weight_decay = 3.0
  config.train.max_epochs = 500
  config.train.early_stop_patience = 62
  config.train.warmup_epochs = 10
  config.train.warmup_start_factor = 1e-5
  config.train.plateau_patience = 30
  config.train.plateau_factor = 0.3162
  config.train.select_metric = "valid/sampled/A/mrr+valid/sampled/B/mrr"
  config.train.checkpoint_every = 25
  config.eval.num_negatives = 999
  config.eval.batch_size = 1024
  config.sweep.seeds = (3407,)
  # InfoNCE temperatures as replicas: e.g. --config.sweep.model.temp='(0.5,0.75,1.0)'.

  config.gca.positions = ()  # plain ABXI
  return config
