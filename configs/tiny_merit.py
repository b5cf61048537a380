r"""A seconds-long MERIT smoke run on a tiny synthetic dataset (used by the tests).

python -m orthoalign.main --config=configs/tiny_merit.py --workdir=/tmp/orthoalign/tiny_merit
"""

from configs import merit


def get_config():
  config = merit.get_config()
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
  config.model.update(width=16, heads=2, ffn=24, n_neg=6, max_len=11)
  config.train.update(
    batch_size=32,
    max_epochs=3,
    early_stop_patience=10,
    warmup_epochs=0,
    plateau_patience=0,
    checkpoint_every=1,
    learning_rate=1e-3,
    weight_decay=0.0,
  )
  config.eval.update(num_negatives=10, batch_size=32)
  config.sweep.seeds = (0,)
  return config
