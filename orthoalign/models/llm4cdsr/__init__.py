"""LLM4CDSR (Liu et al., SIGIR 2025) in Flax Linen, with GCA insertion points.

Faithful to the authors' code (`liuqidong07/LLM4CDSR-pytorch`, see reference/baselines.md §2):
three SASRec encoders (mixed "AB", A, B); the mixed path reads a frozen LLM item table through a
2-layer linear adapter (no activation) scaled by sqrt(table dim); the domain paths read frozen
128-d tables; score = mixed score + target-domain score; seq2seq BCE with one negative per
position; alpha * item regularisation and beta * user guidance (soft-target CLIP losses).

Quirks of the original, each a flag whose default is the original behaviour:
  * `causal=False`: the backbone's causal mask is commented out upstream.
  * `mixed_neg_domain="input"`: the mixed stream's negative comes from the domain of the *input*
    item at that position, not the target's.
  * `independent_negatives=True`: mixed and domain streams draw different negative items, in
    training and in the sampled evaluation protocol.
  * `neg_exclusive_upper=True`: `random_neq(l, r)` never returns the last item of a domain
    (training negatives only; evaluation candidates are orthoalign's frozen sets).
  * `reg_pool="inputs"`: the alpha (item-regularisation) loss draws its A and B item from the
    user's training prefix *without its last item* (upstream `CDSRRegSeq2SeqDatasetUser` takes
    `data[index][:-1]`, i.e. only items that are also inputs). `"history"` draws from the whole
    training prefix, which is what orthoalign did before the flag existed (and what a config saved
    without the key still gets). Default: upstream's, as for every quirk here; the difference is one
    item per user (users whose only B or only A item is the last one lose their alpha pair).
  * `mask_padding_keys=False`: the self-attention has no key-padding mask, so padding positions
    (zero embeddings, i.e. the LayerNorm bias after the first norm) act as keys and every output
    depends on how much padding its sequence carries. True masks them out (GCA cells always do);
    `train.length_buckets` needs it, because it cuts padding off (orthoalign/train/step.py).

Upstream differences that are not quirks of its code:
  * `missing_text="learned"` (default): upstream has an LLM embedding for every item, so it never
    meets an item without text. Here titles can be missing (abxi-afk with LLMCDSR's titles: about a
    third of the Food items), and every such item gets the same all-zero text row, hence the same
    frozen mixed and domain vectors: the model cannot tell them apart. "learned" gives each item
    without text its own trainable row (xavier-normal, as the "w/o LLM" ID embeddings), added to its
    frozen vector only where text is missing: after the adapter on the mixed path (width hidden,
    frozen global table only; an unfrozen table is trainable per row anyway) and on each domain's
    frozen local table. "zero" keeps the shared zero row (orthoalign's behaviour before the key; a
    saved config without the key gets it). Items are "without text" where `ds.item_text_emb` has an
    all-zero row (datasets/text_emb.py writes exactly that for a blank title); `build` prints
    how many per domain. With "learned" the frozen collection also holds int32 row maps
    (missing_index_{m,a,b}, one entry per item), which the frozen/total parameter counts include.
  * Validation (and test) negatives: upstream redraws its 100 sampled negatives with Python `random`
    on every evaluation pass, so they change every epoch and every run; orthoalign freezes one set
    per split (`eval.candidate_seed`), shared by all epochs and seeds (no flag: the frozen sets make
    model selection and seeds comparable).
  * Item tables and user profiles: with the authors' pickles (`<llm_emb_file>_all.pkl`,
    `_A_pca128.pkl`, `_B_pca128.pkl`, `<user_emb_file>.pkl`, read through the restricted unpickler
    by orthoalign/datasets/readers/llm4cdsr_tables.py) the model runs on the authors' inputs:
    `model.llm_emb_dir="auto"` finds them in a `handled` data folder, a path names another folder,
    "none" ignores them. Their global table keeps its own width (model.global_dim is not applied)
    and their local width must equal model.width, as upstream requires. Without them,
    orthoalign substitutes PCA tables of its title embeddings (`data.text_emb`) and, for the user
    profiles, the mean title embedding of the user's training items; `build` prints which.
  * User-profile window (beta loss): upstream summarises, per k-means cluster of item embeddings,
    the titles of the last 15 items of the user's sequence without its last (test) item, so the
    validation target is inside the profile, and embeds GPT summaries with ada-002; the substitute
    profile is the mean text embedding of all the user's *training* items (validation target
    excluded). With the authors' file the profile is theirs, window included.

Deviations (named): weight decay is decoupled (AdamW; the original's default is 0, so Adam); the
user-guidance loss reuses the training forward pass instead of a second dropout-resampled pass; with
no item tables the unused 1024->512->128 adapter is not created.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import eval_cases
from orthoalign.inputs import windows
from orthoalign.models import baseline
from orthoalign.models.llm4cdsr import config as config_lib
from orthoalign.models.llm4cdsr.config import Config
from orthoalign.models.llm4cdsr.inputs import author_tables
from orthoalign.models.llm4cdsr.inputs import frozen_tables
from orthoalign.models.llm4cdsr.inputs import missing_text_index
from orthoalign.models.llm4cdsr.inputs import report_inputs
from orthoalign.models.llm4cdsr.loss import Hyper
from orthoalign.models.llm4cdsr.loss import eval_fn
from orthoalign.models.llm4cdsr.loss import eval_tables
from orthoalign.models.llm4cdsr.loss import loss_fn
from orthoalign.models.llm4cdsr.module import LLM4CDSR

__all__ = ["Baseline", "Config"]

Array = jax.Array


class Baseline(baseline.Baseline, baseline.LengthBuckets):
  """LLM4CDSR bound to a dataset: its frozen item tables, user profiles and merged windows.

  Raises (on construction):
    ConfigError: data without a merged timeline; authors' tables that do not fit the config.
    DataError: an authors' file that is present but malformed.
  """

  TITLE = "LLM4CDSR"
  Config = Config
  REPLICA_HPARAMS = config_lib.REPLICA_HPARAMS

  check = staticmethod(config_lib.validate)

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    baseline.require_merged_timeline(ds, config, "its mixed stream is the merged sequence")
    author = author_tables(ds, config)
    tables = frozen_tables(ds, cfg, author)
    global_dim = tables["global_table"].shape[1] if "global_table" in tables else 0
    train = windows.train_windows(ds, cfg.max_len)
    swept = config.sweep.model
    # A term exists in the program when any replica gives it a non-zero weight.
    alpha = max((abs(float(v)) for v in (cfg.alpha, *swept.alpha)), default=0.0)
    beta = max((abs(float(v)) for v in (cfg.beta, *swept.beta)), default=0.0)
    if author is not None and author.users is not None:
      profiles, source = author.users[train["user"]], f"the authors' {author.files[3]}"
    elif ds.item_text_emb is not None:
      profiles = None
      source = (
        "mean text embedding of the user's training items (substitute for the authors' GPT "
        "profiles)"
      )
    else:
      profiles, source = None, "none (no text): the beta loss is off"
    notes = [report_inputs(ds, config, author, source)]
    if beta and profiles is None and ds.item_text_emb is not None:
      profiles = windows.mean_text_profiles(ds.item_text_emb, train["hist"])
    use_profiles = profiles is not None
    beta = beta if use_profiles else 0.0
    if beta:
      train["user_profile"] = profiles
    frozen = {k: v for k, v in tables.items() if k != "global_table" or cfg.freeze_global}
    missing, missing_note = missing_text_index(ds, author)
    notes += [missing_note] if missing_note else []
    missing_rows = [0, 0, 0]
    if cfg.missing_text == "learned":
      # Frozen-table paths only: the mixed path when its global table is frozen, the domain paths
      # when they read the local tables (an unfrozen table or ID embeddings are trainable per item
      # anyway).
      uses = {
        "m": global_dim and cfg.freeze_global,
        "a": "table_a" in tables,
        "b": "table_b" in tables,
      }
      for i, name in enumerate(("m", "a", "b")):
        k = int((missing[name] >= 0).sum()) if name in missing else 0
        if uses[name] and k:
          missing_rows[i] = k
          frozen[f"missing_index_{name}"] = missing[name]
    gca = baseline.gca_settings(config)
    self.module = LLM4CDSR(
      num_items_a=ds.num_items_a,
      num_items_b=ds.num_items_b,
      config=cfg,
      global_dim=global_dim,
      local_tables="table_a" in tables,
      user_dim=profiles.shape[1] if beta else 0,
      missing_rows=tuple(missing_rows),
      gca_positions=gca.positions,
      gca=gca.cell,
    )
    self.hp = Hyper(
      config=cfg if use_profiles else dataclasses.replace(cfg, beta=0.0),
      num_items_a=ds.num_items_a,
      num_items_b=ds.num_items_b,
      reg_term=alpha > 0,
      user_term=beta > 0,
    )
    self.hparams = {k: getattr(self.hp.config, k) for k in self.REPLICA_HPARAMS}
    self.frozen = {"frozen": frozen} if frozen else {}
    self.notes = tuple(notes)
    self._train = train
    self._global_table = tables.get("global_table")

  def train_windows(self) -> dict[str, np.ndarray]:
    return self._train

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    out = windows.eval_windows(self.ds, split, self.settings.max_len)
    # The original draws the domain stream's candidates independently: a second frozen set.
    seed = self.config.eval.candidate_seed + (1000 if self.settings.independent_negatives else 0)
    n = self.config.eval.num_negatives
    cand = eval_cases.frozen_candidates(self.ds, split.name, n, seed, f"eval.num_negatives={n}")
    na = self.ds.num_items_a
    out["cand_dom"] = np.where(cand > na, cand - na, cand).astype(np.int32)
    return out

  def init(self, rng: Array) -> Any:
    sample = {k: v[:1] for k, v in self._train.items()}
    sample["row_valid"] = np.ones((1,), bool)
    variables = self.module.init({"params": rng, "dropout": rng}, sample, method=LLM4CDSR.init_all)
    params = variables["params"]
    if "item_emb_llm" in params:  # unfrozen LLM table starts from the PCA table
      params = {**params, "item_emb_llm": jnp.asarray(self._global_table)}
    return params

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, self.hp, params, frozen, batch, rng, hparams)

  def tables(self, params, frozen):
    return eval_tables(self.module, params, frozen)

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, self.hp, params, frozen, tables, batch)

  def lengths(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
    return windows.window_lengths(arrays)

  def crop(self, batch: dict[str, Any], length: int) -> dict[str, Any]:
    return windows.crop_windows(batch, length)
