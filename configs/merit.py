r"""MERIT (ACM MM 2025) with its own settings, on ABXI's Food-Kitchen files (abxi-afk).

Run (plain MERIT, seed 3407):
  python -m orthoalign.main --config=configs/merit.py --workdir=/tmp/orthoalign/merit_afk

Five seeds as replicas of one compiled program: --config.sweep.seeds='(3407,0,1,2,3)'.
Variants: GCA right after the embedding (an A<-B and a B<-A cell): --config.gca.positions='(0,)';
MERIT's own cross-attentions with a learned gate instead of the fixed 1:
  --config.model.caf_gate=learned --config.gca.act=sigmoid --config.gca.gate_init=0.0
the original's quirks off (orthoalign/models/merit/): --config.model.positions=own
  --config.model.ecaf_mask=per_block --config.model.eval_stream=own

Original settings (`DiMarzioBian/MERIT` 932ebee, main.py defaults and demo.sh for afk): d_embed 256,
2 heads, one block per stream, SwiGLU width 680, dropout 0.5, temperature 0.75, 128 training
negatives per domain, len_max 50 (model.max_len 47, the window length), AdamW lr 1e-4 with weight
decay 5.0, batch 256, evaluation batch 1024 (bs * 4), at most 500 epochs, 999 sampled evaluation
negatives. Warm-up: LinearLR from 1e-5 over 10 epochs (no model selection during it); then
ReduceLROnPlateau(factor lr_g = 0.4 for afk, patience 30) stepped on "validation improved or not";
early stop at the 62nd evaluation without improvement (`cnt_es > es_p = 61`); model selection by
validation MRR_A + MRR_B. Checkpoints every 25 epochs.
"""

from configs import base


def get_config():
  config = base.get_config("merit")  # model keys: orthoalign/models/merit/config.py
  config.data.format = "abxi"
  config.data.path = "../shared/data/abxi-afk"

  config.train.batch_size = 256
  config.train.learning_rate = 1e-4
  config.train.weight_decay = 5.0
  config.train.max_epochs = 500
  config.train.early_stop_patience = 62
  config.train.warmup_epochs = 10
  config.train.warmup_start_factor = 1e-5
  config.train.plateau_patience = 30
  config.train.plateau_factor = 0.4
  config.train.select_metric = "valid/sampled/A/mrr+valid/sampled/B/mrr"
  config.train.checkpoint_every = 25
  config.eval.num_negatives = 999
  config.eval.batch_size = 1024
  config.sweep.seeds = (3407,)

  config.gca.positions = ()  # plain MERIT
  return config
