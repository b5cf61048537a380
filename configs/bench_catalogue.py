r"""A catalogue of 1M items per domain for the item-sharding benchmark (evaluation only).

  python -m orthoalign.bench.catalogue --config=configs/bench_catalogue.py --item_shards=1,4 \
      --cpu_devices=4

LLM4CDSR + GCA_early on the light synthetic generator (data.synthetic.planted=False: items drawn
by popularity, random text embeddings; docs/data.md), with trainable ID tables for the domain
streams (model.local_emb=False) so that item tables, their Adam moments and the frozen LLM table
all have the catalogue's 2M + 1 or 1M + 1 rows. Small hidden size: with 4 fake CPU devices every
unsharded array is held four times in one process. Results: docs/benchmarks.md, "Catalogues that
outgrow one device".
"""

from configs import llm4cdsr


def get_config():
  config = llm4cdsr.get_config()
  config.data.synthetic.update(
    num_users=2000, num_items_a=1_000_000, num_items_b=1_000_000, text_dim=32, planted=False
  )
  config.model.update(width=16, global_dim=32, max_len=20, local_emb=False)
  config.eval.update(num_negatives=100, batch_size=128)
  config.train.max_epochs = 1
  return config
