r"""A seconds-long SASRec-dual smoke run on a tiny synthetic dataset (used by the tests).

python -m orthoalign.main --config=configs/tiny_sasrec.py --workdir=/tmp/orthoalign/tiny_sasrec
"""

import ml_collections

from configs import sasrec


def get_config():
  config = sasrec.get_config()
  config.data.update(format="synthetic", path="")
  config.data.reader_options = ml_collections.ConfigDict()
  config.data.synthetic.update(
    num_users=120,
    num_items_a=40,
    num_items_b=30,
    mean_length=10.0,
    min_length=4,
    max_length=16,
    text_dim=32,
    seed=7,
  )
  config.model.update(width=16, blocks=1, max_len=8, dropout=0.2)
  config.train.update(batch_size=32, max_epochs=3, early_stop_patience=10)
  config.eval.update(num_negatives=10, batch_size=32)
  config.sweep.seeds = (0,)
  return config
