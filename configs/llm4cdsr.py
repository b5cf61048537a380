r"""LLM4CDSR (SIGIR 2025) + GCA_early, original hyperparameters, on the embedded synthetic data.

Run (the README's main job; under 2 minutes on a 2-core CPU, README "Set up and run"):
  python -m orthoalign.main --config=configs/llm4cdsr.py --workdir=/tmp/orthoalign/llm4cdsr

It trains LLM4CDSR with one GCA position right after the embeddings (GCA[0]: an A<-B and a B<-A
cell) and prints test NDCG@1/10, HR@10, MRR, AUC per domain plus |cos(X, X')| and alpha per cell.
The plain baseline, and GCA_stack (GCA[0] plus after each of the two blocks):
  python -m orthoalign.main --config=configs/llm4cdsr.py --workdir=/tmp/orthoalign/llm4cdsr_base \
      --config.gca.positions='()'
  python -m orthoalign.main --config=configs/llm4cdsr.py --workdir=/tmp/orthoalign/llm4cdsr_stack \
      --config.gca.positions='(0,1,2)'
Five seeds as replicas of one compiled program: --config.sweep.seeds='(0,1,2,3,4)'.

Original settings kept (the model's defaults, reference/baselines.md §2.4): 2 blocks, 1 head,
dropout 0.5, Adam lr 1e-3, batch 128, 100 sampled negatives, selection by overall validation
NDCG@10, alpha = beta = 0.1 (Cloth-Sport), frozen text tables (global PCA <= 1024 d, local PCA to
the hidden size). Changed for the embedded data, so that the default runs in under 2 minutes on a
2-core CPU: hidden 64 (upstream 128: --config.model.width=128), max_len 30 (synthetic
sequences average 20 items; upstream 200), at most 20 epochs with patience 5 (upstream 200 / 20),
a checkpoint every 10 epochs. At this size GCA_early shows no paired NDCG@10 gain over the plain
baseline on the embedded data (5 seeds; README, "Set up and run").
"""

from configs import base


def get_config():
  config = base.get_config(
    "llm4cdsr"
  )  # model keys: orthoalign/models/llm4cdsr/config.py default_config
  # Synthetic sequences average 20 items (upstream 200 for Amazon); the last 30 keep the planted
  # signal (recent items) at 20 % less time per epoch than 40.
  config.model.max_len = 30
  config.model.width = 64  # upstream 128; less work per step (docs/benchmarks.md)

  config.train.batch_size = 128
  config.train.learning_rate = 1e-3
  config.train.max_epochs = 20
  config.train.early_stop_patience = 5
  config.train.checkpoint_every = 10  # an orbax save costs ~1 s on a CPU, whatever the size
  config.eval.num_negatives = 100
  # Real data without text embeddings (e.g. ABXI's files) falls back to ID embeddings; with titles
  # (llmcdsr, or data.titles) set data.text_emb to "tfidf" or "minilm" for the frozen text tables.
  config.sweep.seeds = (42,)
  # Loss weights and temperatures as replicas: e.g. --config.sweep.model.alpha='(0.0,0.1,0.5)'.
  # GCA_early: one position right after the embedding + position layer.
  config.gca.positions = (0,)
  return config
