r"""LLM4CDSR on a small synthetic dataset, sized for experiment grids on a 2-core CPU.

  python -m orthoalign.main --config=configs/synthetic_small.py --workdir=/tmp/orthoalign/syn_small

The synthetic grids (configs/grids/synthetic_*.py) start from this config. Every setting that
changes results is written out here, not inherited, so a later change to configs/llm4cdsr.py or
configs/base.py does not move the grids' committed results (docs/results/synthetic/).

Sizes (docs/experiments.md says how they were chosen): 1,000 users (80 % overlapped), 200 + 200
items, mean length 15, planted cross-domain strength lambda = 1; LLM4CDSR with hidden 32, 2 blocks,
1 head, max_len 20, dropout 0.2, frozen synthetic-text tables (global 64-d, local 32-d), Adam lr
3e-3, batch 128, 20 epochs (patience 5), 100 sampled negatives. Plain baseline (gca.positions=()).
"""

import ml_collections

from configs import llm4cdsr


def get_config() -> ml_collections.ConfigDict:
  config = llm4cdsr.get_config()
  config.data.update(format="synthetic", path="", text_emb="none", text_dim=384)
  config.data.synthetic.update(
    num_users=1000,
    num_items_a=200,
    num_items_b=200,
    mean_length=15.0,
    min_length=5,
    max_length=40,
    overlap_share=0.8,
    cross_strength=1.0,
    latent_dim=16,
    text_dim=64,
    text_noise=0.5,
    seed=0,
  )
  config.model.update(
    name="llm4cdsr",
    width=32,
    blocks=2,
    heads=1,
    dropout=0.2,
    max_len=20,
    ffn=0,
    global_emb=True,
    global_dim=64,
    local_emb=True,
    freeze_global=True,
    alpha=0.1,
    beta=0.1,
    tau=1.0,
    tau_reg=1.0,
    causal=False,
    mixed_neg_domain="input",
    independent_negatives=True,
    neg_exclusive_upper=True,
  )
  config.gca.update(
    positions=(),
    kv="other",
    gate="scalar",
    act="sigmoid",
    layernorm="none",
    gate_init=0.0,
    heads=1,
    causal=True,
    dropout=0.0,
    ffn=0,
  )
  config.train.update(
    batch_size=128,
    max_epochs=20,
    eval_every=1,
    early_stop_patience=5,
    select_metric="valid/sampled/all/ndcg@10",
    warmup_epochs=0,
    plateau_patience=0,
    checkpoint_every=5,
    learning_rate=3e-3,
    weight_decay=0.0,
  )
  config.eval.update(num_negatives=100, candidate_seed=0, batch_size=128, track_test=False)
  config.sweep.update(seeds=(0,), learning_rates=(), weight_decays=(), gate_inits=())
  return config
