r"""A seconds-long C2DSR smoke run on a tiny synthetic dataset (used by the tests).

python -m orthoalign.main --config=configs/tiny_c2dsr.py --workdir=/tmp/orthoalign/tiny_c2dsr
"""

from configs import c2dsr


def get_config():
  config = c2dsr.get_config()
  config.data.update(format="synthetic", path="")
  config.data.synthetic.update(
    num_users=96,
    num_items_a=40,
    num_items_b=30,
    mean_length=10.0,
    min_length=4,
    max_length=18,
    text_dim=32,
    seed=5,
  )
  config.model.update(width=16, heads=2, blocks=2, ce_positions=6, max_len=11)
  config.train.update(
    batch_size=32,
    max_epochs=3,
    eval_every=1,
    early_stop_patience=10,
    checkpoint_every=1,
  )
  config.eval.update(num_negatives=10, batch_size=32)
  config.sweep.seeds = (0,)
  return config
