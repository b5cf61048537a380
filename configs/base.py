r"""Base config: every key of a run, with the defaults; a model's own keys come from its module.

  python -m orthoalign.main --config=configs/base.py:abxi --workdir=/tmp/orthoalign/base_abxi \
      --config.train.max_epochs=3

runs a model (the part after ':'; default llm4cdsr) with its faithful defaults
(the `Config` of orthoalign/models/<name>/config.py) on the embedded synthetic data. The tuned
configs import this one: configs/llm4cdsr.py, configs/abxi.py. Override any key on the command line,
e.g. `--config.train.max_epochs=5` `--config.gca.positions='(0,)'` `--config.sweep.seeds='(0,1,2)'`;
a key the chosen model does not have is refused, naming the valid keys.
"""

import ml_collections

from orthoalign import models


def get_config(model: str = "llm4cdsr") -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  config.data = ml_collections.ConfigDict()
  # Dataset format: "synthetic" (the embedded generator), "abxi", "llmcdsr", "handled", "imvae",
  # "prepared", "events" (your own log), "recbole" (atomic files) (docs/data.md).
  config.data.format = "synthetic"
  # Folder of a real dataset (for "events" also one file; unused by the synthetic generator).
  config.data.path = ""
  # Malformed input lines: "error" stops at the first one; "skip" skips and counts them.
  config.data.on_bad_line = "error"
  # Where file-based datasets are cached as .npz + manifest ("" = $ORTHOALIGN_CACHE or
  # ~/.cache/orthoalign).
  config.data.cache_dir = ""
  # JSON files {item id: title} that add titles to items without one (matched by original item id).
  config.data.titles = ()
  # Item text embeddings from titles: "none", "tfidf" (light fallback) or "minilm" (the `text`
  # extra).
  config.data.text_emb = "none"
  config.data.text_dim = 384
  # Options of the format's reader, e.g. imvae's valid_fraction / valid_seed (docs/data.md).
  config.data.reader_options = ml_collections.ConfigDict()
  # Parameters of the synthetic CDSR generator (orthoalign.datasets.synthetic.SyntheticConfig).
  config.data.synthetic = ml_collections.ConfigDict(
    dict(
      num_users=2000,
      num_items_a=400,
      num_items_b=400,
      mean_length=20.0,
      min_length=5,
      max_length=60,
      overlap_share=0.8,
      cross_strength=1.0,
      latent_dim=16,
      text_dim=128,
      text_noise=0.5,
      seed=0,
      planted=True,
    )
  )

  # The model's keys and defaults are its Config's (orthoalign/models/<name>/config.py).
  config.model = models.default_config(model)

  config.gca = ml_collections.ConfigDict()
  # GCA insertion points: 0 = right after embedding + position, i = after backbone block i; () =
  # baseline.
  config.gca.positions = ()
  # Key/value stream of the cells: "other" (A queries B, B queries A) or "mixed" (both query the
  # merged stream; ABXI only).
  config.gca.kv = "other"
  # Gate shape: "scalar" (one alpha per cell), "vector" (per channel) or "input" (per token, FFN of
  # [X; X']).
  config.gca.gate = "scalar"
  # Gate activation: "sigmoid", "tanh" or "none".
  config.gca.act = "sigmoid"
  # LayerNorm: "none", "pre" (on the query input) or "post" (LN(X + alpha X')).
  config.gca.layernorm = "none"
  # Initial gate pre-activation (sweepable through sweep.gate_inits).
  config.gca.gate_init = 0.0
  # Cross-attention heads (independent of the backbone's).
  config.gca.heads = 1
  # Causal cross-mask: a query at merged time t sees only the other stream's tokens at time <= t.
  config.gca.causal = True
  # Dropout on the cross-attention weights.
  config.gca.dropout = 0.0
  # Feed-forward block on the cross-attention output (expansion factor; 0 = none), to give the GCA
  # unit the size the paper's parameter counts imply (models/gca.py).
  config.gca.ffn = 0
  # Intervention on the cell (not in the paper; models/gca.py): "none", "orthogonal" (add only the
  # part of X' orthogonal to X), "parallel" (only its projection onto X) or "shuffled" (Y from
  # another user of the batch).
  config.gca.intervention = "none"
  # Weight w of w * mean cos^2(X, X') added to the training loss (0 = none; w < 0 rewards
  # alignment); sweepable through sweep.orth_penalties.
  config.gca.orth_penalty = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 128
  config.train.max_epochs = 200
  # Evaluate on the validation split every k epochs (and checkpoint then).
  config.train.eval_every = 1
  # Stop a replica after this many evaluations without improvement of select_metric.
  config.train.early_stop_patience = 20
  # Validation metric for early stopping and best-epoch selection; "+" sums keys (ABXI selects by
  # "valid/sampled/A/mrr+valid/sampled/B/mrr").
  config.train.select_metric = "valid/sampled/all/ndcg@10"
  # Linear warm-up over the first epochs (torch LinearLR stepped per epoch, from start_factor);
  # no validation during warm-up. 0 = none.
  config.train.warmup_epochs = 0
  config.train.warmup_start_factor = 1e-5
  # Reduce-on-plateau: after more than plateau_patience evaluations without improvement, multiply a
  # replica's learning rate by plateau_factor. 0 = off.
  config.train.plateau_patience = 0
  config.train.plateau_factor = 0.3162
  # Checkpoint every k epochs (and at the end); a resumed run replays the epochs since then exactly.
  config.train.checkpoint_every = 1
  config.train.learning_rate = 1e-3
  config.train.weight_decay = 0.0
  # Dtype of the training computation: "float32", or "bfloat16" (params, gradients and optimizer
  # state stay float32; evaluation is float32). Speed and metric effect: docs/benchmarks.md.
  config.train.compute_dtype = "float32"
  # Devices of the ("data", "model") mesh; 0 = all visible devices.
  config.train.num_devices = 0
  # Size of the mesh's "model" axis: item tables, their optimizer moments and the full-ranking
  # scores are split along the items over this many devices (for catalogues too big for one);
  # must divide num_devices. 1 = not split. See train/sharding.py.
  config.train.item_shards = 1
  # Train in length buckets, e.g. (25, 50, 100): each batch is cut to the shortest of these lengths
  # (or model.max_len) that holds its longest row, so padding is not computed. Rows are batched
  # with rows of their own bucket; needs a model whose outputs ignore padding
  # (model.mask_padding_keys=True; LLM4CDSR and ABXI). () = off. See train/step.py and
  # docs/benchmarks.md.
  config.train.length_buckets = ()

  config.eval = ml_collections.ConfigDict()
  # Negatives per evaluation case (sampled protocol); full-catalog ranking is always computed too.
  config.eval.num_negatives = 100
  # Further sampled protocols, each its own frozen candidate set: N -> metrics "sampled<N>" (items
  # scored as in full ranking), e.g. (999,) to report a 100-negative baseline the 999 way too.
  config.eval.extra_negatives = ()
  # Seed of the frozen candidate sets (the split name is mixed in, so valid and test differ).
  config.eval.candidate_seed = 0
  config.eval.batch_size = 128
  # Also evaluate the test split at every validation (into history.jsonl, not used for selection):
  # needed for the paper's "best test epoch" reading of Figure 2
  # (analysis.correlations.correlation).
  config.eval.track_test = False
  # How a negative scoring exactly as the target is counted in the ranking metrics
  # (docs/metrics.md): "pessimistic" (against the target; orthoalign's rule), "optimistic" (for it:
  # LLM4CDSR's and ABXI's originals) or "expected" (exact mean over random tie-breaking).
  config.eval.ties = "pessimistic"

  config.sweep = ml_collections.ConfigDict()
  # Replicas trained together in one program: the product of these lists. Empty = the single value
  # from train.learning_rate / train.weight_decay / gca.gate_init.
  config.sweep.seeds = (42,)
  config.sweep.learning_rates = ()
  config.sweep.weight_decays = ()
  config.sweep.gate_inits = ()
  config.sweep.orth_penalties = ()
  # Per model: `sweep.model.<k>` lists values of a shape-keeping model hyperparameter (loss weights,
  # temperatures; the model's REPLICA_HPARAMS), e.g. --config.sweep.model.alpha='(0.0,0.1,0.5)'.
  config.sweep.model = ml_collections.ConfigDict({k: () for k in models.replica_hparams(model)})
  return config
