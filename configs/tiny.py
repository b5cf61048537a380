r"""A seconds-long LLM4CDSR smoke run on a tiny synthetic dataset (used by the tests).

  python -m orthoalign.main --config=configs/tiny.py --workdir=/tmp/orthoalign/tiny

One checkpoint, at the last epoch (checkpoint_every=10 from configs/llm4cdsr.py): an orbax save
costs ~1.3 s on a CPU, more than the four epochs' training. The tests that need a checkpoint per
epoch set `--config.train.checkpoint_every=1` (tests/conftest.py's `tiny_config` does).
"""

from configs import llm4cdsr


def get_config():
  config = llm4cdsr.get_config()
  config.data.synthetic.update(
    num_users=160,
    num_items_a=60,
    num_items_b=50,
    mean_length=10.0,
    min_length=4,
    max_length=16,
    text_dim=32,
    seed=1,
  )
  config.model.update(width=16, max_len=10, global_dim=32)
  config.train.update(batch_size=32, max_epochs=4, early_stop_patience=10)
  config.eval.update(num_negatives=20, batch_size=32)
  config.sweep.seeds = (0,)
  return config
