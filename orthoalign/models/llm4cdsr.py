"""LLM4CDSR (Liu et al., SIGIR 2025) in Flax Linen, with GCA insertion points.

Faithful to the authors' code (`liuqidong07/LLM4CDSR-pytorch`, see reference/baselines.md §2):
three SASRec encoders (mixed "AB", A, B); the mixed path reads a frozen LLM item table through a
2-layer linear adapter (no activation) scaled by sqrt(table dim); the domain paths read frozen
128-d tables; score = mixed score + target-domain score; seq2seq BCE with one negative per
position; alpha * item regularisation and beta * user guidance (soft-target CLIP losses).

Quirks of the original, each a flag whose default is the original behaviour:
  * `causal_self_attention=False`: the backbone's causal mask is commented out upstream.
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
    all-zero row (orthoalign/data/text_emb.py writes exactly that for a blank title); `build` prints
    how many per domain. With "learned" the frozen collection also holds int32 row maps
    (missing_index_{m,a,b}, one entry per item), which the frozen/total parameter counts include.
  * Validation (and test) negatives: upstream redraws its 100 sampled negatives with Python `random`
    on every evaluation pass, so they change every epoch and every run; orthoalign freezes one set
    per split (`eval.candidate_seed`), shared by all epochs and seeds (no flag: the frozen sets make
    model selection and seeds comparable).
  * Item tables and user profiles: with the authors' pickles (`<llm_emb_file>_all.pkl`,
    `_A_pca128.pkl`, `_B_pca128.pkl`, `<user_emb_file>.pkl`, read through the restricted unpickler
    by orthoalign/data/readers/llm4cdsr_tables.py) the model runs on the authors' inputs:
    `model.llm_emb_dir="auto"` finds them in a `handled` data folder, a path names another folder,
    "none" ignores them. Their global table keeps its own width (model.global_dim is not applied)
    and their local width must equal model.hidden_size, as upstream requires. Without them,
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
import math
import os
from typing import Any
import weakref

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import load as data_load
from orthoalign.data import negatives
from orthoalign.data import windows
from orthoalign.data.readers import llm4cdsr_tables
from orthoalign.models import gca as gca_lib
from orthoalign.models import gca_checks
from orthoalign.models import layers
from orthoalign.models import task as task_lib

Array = jax.Array


class LLM4CDSR(nn.Module):
  """Three-stream LLM4CDSR encoder. Frozen tables live in the "frozen" variable collection."""

  num_items_a: int
  num_items_b: int
  hidden: int = 128
  num_blocks: int = 2
  num_heads: int = 1
  dropout: float = 0.5
  max_len: int = 200
  global_dim: int = 0  # width of the frozen mixed-path table; 0 = trainable ID embeddings
  freeze_global: bool = True
  local_emb: bool = True  # frozen 128-d domain tables; False = trainable ID embeddings
  user_dim: int = 0  # width of user profile vectors for the beta loss; 0 = no user adapter
  causal: bool = False
  mask_padding_keys: bool = False  # padding out of the self-attention keys (not upstream's)
  ffn_size: int = 0  # inner width of the blocks' feed-forward layers; 0 = hidden (original)
  # Items without text with their own trainable row (model.missing_text="learned"), per table:
  # mixed,
  # A, B. 0 = none: no rows, no row map. The row maps are frozen ("missing_index_{m,a,b}").
  missing_rows: tuple[int, int, int] = (0, 0, 0)
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    n = self.num_items_a + self.num_items_b
    if self.global_dim:
      if self.freeze_global:
        self.global_table = self.variable(
          "frozen", "global_table", jnp.zeros, (n + 1, self.global_dim)
        )
      else:
        self.global_param = self.param(
          "item_emb_llm", nn.initializers.zeros, (n + 1, self.global_dim)
        )
      g = self.global_dim
      self.adapter = [
        layers.torch_dense(g // 2, g, name="adapter_0"),
        layers.torch_dense(self.hidden, g // 2, name="adapter_1"),
      ]
    else:
      self.item_emb = self.param("item_emb", layers.xavier_normal, (n + 1, self.hidden))
    if self.local_emb:
      self.table_a = self.variable(
        "frozen", "table_a", jnp.zeros, (self.num_items_a + 1, self.hidden)
      )
      self.table_b = self.variable(
        "frozen", "table_b", jnp.zeros, (self.num_items_b + 1, self.hidden)
      )
    else:
      self.item_emb_a = self.param(
        "item_emb_a", layers.xavier_normal, (self.num_items_a + 1, self.hidden)
      )
      self.item_emb_b = self.param(
        "item_emb_b", layers.xavier_normal, (self.num_items_b + 1, self.hidden)
      )
    sizes = {"m": n, "a": self.num_items_a, "b": self.num_items_b}
    index, extra = {}, {}
    for s, k in zip(("m", "a", "b"), self.missing_rows):
      if k:  # row map: item id -> its row in missing_text_<s> (-1 = has text, and padding)
        index[s] = self.variable(
          "frozen", f"missing_index_{s}", lambda size: -jnp.ones(size, jnp.int32), (sizes[s] + 1,)
        )
        extra[s] = self.param(f"missing_text_{s}", layers.xavier_normal, (k, self.hidden))
    self.missing_index, self.missing_emb = index, extra
    self.pos_emb = {
      s: nn.Embed(
        self.max_len + 1, self.hidden, embedding_init=layers.xavier_normal, name=f"pos_emb_{s}"
      )
      for s in ("m", "a", "b")
    }
    self.blocks = {
      s: [
        layers.SASRecBlock(
          self.hidden,
          self.num_heads,
          self.dropout,
          self.causal,
          ffn_inner=self.ffn_size,
          mask_padding=self.mask_padding_keys,
          name=f"block_{s}{i + 1}",
        )
        for i in range(self.num_blocks)
      ]
      for s in ("m", "a", "b")
    }
    self.last_ln = {s: nn.LayerNorm(epsilon=1e-8, name=f"last_ln_{s}") for s in ("m", "a", "b")}
    self.emb_dropout = nn.Dropout(self.dropout)
    bad = [p for p in self.gca_positions if not 0 <= p <= self.num_blocks]
    if bad:  # `validate` names this for configs; this guards direct use of the module
      raise errors.ConfigError(
        f"gca.positions={list(self.gca_positions)}: LLM4CDSR has "
        f"positions 0..{self.num_blocks} (0 = after the embedding, i = after block i)"
      )
    self.cells = gca_lib.make_cells(self.hidden, self.gca_positions, self.gca)
    if self.user_dim:
      self.user_adapter = [
        layers.torch_dense(self.user_dim // 2, self.user_dim, name="user_adapter_0"),
        layers.torch_dense(self.hidden, self.user_dim // 2, name="user_adapter_1"),
      ]

  # -- item vectors ---------------------------------------------------------------------------
  def _add_missing(self, h: Array, ids: Array | None, table: str) -> Array:
    """h [..., d] plus each text-less item's own trainable row (model.missing_text="learned").

    ids None means h is the whole table (every row, in id order).
    """
    if table not in self.missing_index:
      return h
    index = self.missing_index[table].value
    row = index if ids is None else index[ids]  # int32 [...], -1 = has text
    extra = self.missing_emb[table][jnp.maximum(row, 0)]
    return h + jnp.where((row >= 0)[..., None], extra, 0.0)

  def mix_table(self) -> Array:
    """Mixed-path vectors of every item, [nA+nB+1, d]: the adapter applied to the whole table.

    No gather by id: with the catalogue split over devices (train.item_shards) each device
    adapts its own rows.
    """
    if not self.global_dim:
      return self.item_emb
    h = self.global_table.value if self.freeze_global else self.global_param
    for dense in self.adapter:
      h = dense(h)
    return self._add_missing(h, None, "m")

  def mix_items(self, ids: Array) -> Array:
    """Mixed-path item vectors [..., d] for global ids [...] (the input embedding before scaling).

    The adapter is linear per row, so adapting the rows asked for and adapting the whole table
    then gathering give the same vectors and gradients. Upstream (`models/LLMCDSR.py`) adapts
    per token; here, when there are more ids than catalogue rows (e.g. 3 x 128 x 40 training
    tokens against 801 synthetic items), the table is adapted once and gathered, which takes
    the 1024 -> 512 -> 128 adapter from most of a step's FLOPs to a few percent
    (docs/benchmarks.md, "Where the time goes"). Only float rounding differs.
    """
    if not self.global_dim:
      return self.item_emb[ids]
    table = self.global_table.value if self.freeze_global else self.global_param
    if ids.size > table.shape[0]:
      return self.mix_table()[ids]
    h = table[ids]
    for dense in self.adapter:
      h = dense(h)
    return self._add_missing(h, ids, "m")

  def domain_table(self, domain: str) -> Array:
    """Domain-path vectors of every item of `domain` ("a" or "b"), [n+1, d], by local id."""
    if self.local_emb:
      return self._add_missing(
        (self.table_a if domain == "a" else self.table_b).value, None, domain
      )
    return self.item_emb_a if domain == "a" else self.item_emb_b

  def domain_items(self, ids: Array, domain: str) -> Array:
    """Domain-path item vectors [..., d] for local ids [...] of `domain` ("a" or "b")."""
    if self.local_emb:
      h = (self.table_a if domain == "a" else self.table_b).value[ids]
      return self._add_missing(h, ids, domain)
    return (self.item_emb_a if domain == "a" else self.item_emb_b)[ids]

  def item_tables(self) -> tuple[Array, Array, Array]:
    """All item vectors: mixed [nA+nB+1, d], A [nA+1, d], B [nB+1, d]."""
    return self.mix_table(), self.domain_table("a"), self.domain_table("b")

  def user_vectors(self, profile: Array) -> Array:
    h = profile
    for dense in self.user_adapter:
      h = dense(h)
    return h

  def init_all(self, batch: dict[str, Array]) -> Any:
    """Touches every submodule once so that `init` creates all parameters."""
    out = self(batch, train=False)
    if self.user_dim:
      out["user"] = self.user_vectors(jnp.zeros((1, self.user_dim)))
    return out, self.item_tables()

  # -- encoder --------------------------------------------------------------------------------
  def _embed(self, stream: str, ids: Array, positions: Array, train: bool) -> Array:
    if stream == "m":
      scale = self.global_dim if self.global_dim else self.hidden  # sqrt of the *table* width
      e = self.mix_items(ids)
    else:
      scale = self.hidden
      e = self.domain_items(ids, stream)
    e = e * math.sqrt(scale) + self.pos_emb[stream](positions)
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def _cross(
    self, p: int, h: dict[str, Array], batch: dict[str, Array], train: bool, cells: dict[str, Any]
  ) -> None:
    """GCA position p: the A stream queries B and B queries A (h["a"], h["b"] updated in place)."""
    streams = {s: (h[s], batch[f"time_{s}"], batch[f"seq_{s}"] > 0) for s in ("a", "b")}
    h.update(
      gca_lib.apply_position(
        self.cells, p, streams, {"a": streams["b"], "b": streams["a"]}, train=train, out=cells
      )
    )

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes the three streams.

    Returns a dict with f_m, f_a, f_b ([B, L, d] final features) and cells (per GCA cell name, the
    intermediates X, X', Y, masks and gate values).
    """
    h = {
      s: self._embed(s, batch[k], batch[p], train)
      for s, k, p in (
        ("m", "seq", "positions"),
        ("a", "seq_a", "positions_a"),
        ("b", "seq_b", "positions_b"),
      )
    }
    valid = {"m": batch["seq"] > 0, "a": batch["seq_a"] > 0, "b": batch["seq_b"] > 0}
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      self._cross(0, h, batch, train, cells)
    for i in range(self.num_blocks):
      for s in h:
        h[s] = self.blocks[s][i](h[s], valid[s], train=train)
      if i + 1 in self.gca_positions:
        self._cross(i + 1, h, batch, train, cells)
    out = {f"f_{s}": self.last_ln[s](h[s]) for s in h}
    out["cells"] = cells
    return out


# ---------------------------------------------------------------------------------------------
# Losses


def soft_clip_loss(x: Array, y: Array, valid: Array, tau: float) -> Array:
  """LLM4CDSR's `Contrastive_Loss2` restricted to valid rows.

  logits = X Y^T / tau; targets = softmax((X X^T + Y Y^T) / 2 * tau) (the original multiplies by
  tau);
  symmetric soft cross-entropy, averaged over valid rows.
  """
  neg = jnp.finfo(x.dtype).min
  pair = valid[:, None] & valid[None, :]
  logits = jnp.where(pair, x @ y.T / tau, neg)
  targets = jax.nn.softmax(jnp.where(pair, (y @ y.T + x @ x.T) / 2 * tau, neg), axis=-1)
  targets = jnp.where(pair, targets, 0.0)
  x_loss = -jnp.sum(targets * jnp.where(pair, jax.nn.log_softmax(logits, -1), 0.0), -1)
  y_loss = -jnp.sum(targets.T * jnp.where(pair.T, jax.nn.log_softmax(logits.T, -1), 0.0), -1)
  w = valid.astype(x.dtype)
  return jnp.sum((x_loss + y_loss) / 2 * w) / jnp.maximum(jnp.sum(w), 1.0)


def _bce_pair(pos_logit: Array, neg_logit: Array, mask: Array) -> Array:
  """mean over masked tokens of BCE(pos, 1) + BCE(neg, 0)."""
  w = mask.astype(pos_logit.dtype)
  per = jax.nn.softplus(-pos_logit) + jax.nn.softplus(neg_logit)
  return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>): the
# loss reads them as arrays from the replica's state, not from Hyper. Loss weights are >= 0, the
# temperatures divide logits (> 0).
REPLICA_HPARAMS = {
  "alpha": dicts.NON_NEGATIVE,
  "beta": dicts.NON_NEGATIVE,
  "tau": dicts.POSITIVE,
  "tau_reg": dicts.POSITIVE,
}


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Loss and sampling settings of one LLM4CDSR run (static; not vmapped).

  `reg_term` / `user_term` decide whether the item-regularisation / user-guidance terms exist in
  the program: their weight is non-zero in the config or in any replica (the original's
  `if hp.alpha:` skip, kept when every replica has 0). The weights and temperatures used are the
  replica's hparams; the fields below are the config's values (the default hparams).
  """

  num_items_a: int
  num_items_b: int
  alpha: float
  beta: float
  tau: float
  tau_reg: float
  mixed_neg_domain: str
  independent_negatives: bool
  neg_exclusive_upper: bool
  reg_term: bool = True
  user_term: bool = True
  reg_pool: str = "history"  # "inputs" (upstream) or "history"; see the module docstring


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> dict[str, Array]:
  """One negative per position for the mixed stream (global ids) and each domain stream (local)."""
  na, nb = hp.num_items_a, hp.num_items_b
  top = 0 if hp.neg_exclusive_upper else 1  # random_neq(1, n) vs the intended [1, n]
  r_m, r_a, r_b = jax.random.split(rng, 3)
  hist = batch["hist"]
  ones = lambda name: jnp.ones_like(batch[name])
  neg_a = negatives.sample_excluding(r_a, ones("pos_a"), ones("pos_a") * (na + top), hist)
  neg_b = negatives.sample_excluding(
    r_b, ones("pos_b"), ones("pos_b") * (nb + top), hist, offset=na
  )
  dom = batch["in_dom"] if hp.mixed_neg_domain == "input" else _target_domain(batch["pos"], na)
  low = jnp.where(dom == 1, na + 1, 1)
  high = jnp.where(dom == 1, na + nb + top, na + top)
  neg_m = negatives.sample_excluding(r_m, low, high, hist)
  if not hp.independent_negatives:
    # Shared negatives: the mixed position scored with a domain position uses the same item.
    for name, local, offset in (("a", neg_a, 0), ("b", neg_b, na)):
      idx = batch[f"mix_idx_{name}"]
      valid = idx >= 0
      rows = jnp.arange(idx.shape[0])[:, None]
      neg_m = neg_m.at[rows, jnp.where(valid, idx, idx.shape[1])].set(local + offset, mode="drop")
  return dict(neg=neg_m, neg_a=neg_a, neg_b=neg_b)


def _target_domain(pos: Array, na: int) -> Array:
  return jnp.where(pos > na, 1, 0)


def reg_pool_mask(batch: dict[str, Array], pool: str) -> Array:
  """bool [B, H]: the entries of batch["hist"] the alpha loss may draw its items from.

  "history": every item of the training prefix. "inputs" (upstream): the prefix without its last
  item, which is the last mixed target `pos[:, -1]` (windows are right-aligned); one occurrence is
  left out, so an item the user also bought earlier stays in the pool, as upstream's `[:-1]`.
  """
  hist = batch["hist"]
  valid = hist > 0
  if pool == "history":
    return valid
  hit = valid & (hist == batch["pos"][:, -1:])
  first = jnp.argmax(hit, axis=-1)
  drop = hit & (jnp.arange(hist.shape[1])[None, :] == first[:, None])
  return valid & ~drop


def loss_fn(
  module: LLM4CDSR,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """LLM4CDSR's training loss on one batch. batch['row_valid'] masks padded rows.

  `hparams` {alpha, beta, tau, tau_reg}: this replica's loss weights and temperatures (scalars);
  None = the config's values in `hp`.
  """
  h = {"alpha": hp.alpha, "beta": hp.beta, "tau": hp.tau, "tau_reg": hp.tau_reg, **(hparams or {})}
  r_drop, r_neg, r_reg = jax.random.split(rng, 3)
  negs = sample_train_negatives(r_neg, batch, hp)
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=True, rngs={"dropout": r_drop})
  row = batch["row_valid"][:, None]
  f_m = out["f_m"]
  mix = lambda ids: module.apply(variables, ids, method=LLM4CDSR.mix_items)
  mix_pos = jnp.sum(f_m * mix(batch["pos"]), -1)
  mix_neg = jnp.sum(f_m * mix(negs["neg"]), -1)
  rec = 0.0
  for name in ("a", "b"):
    f = out[f"f_{name}"]
    items = lambda ids: module.apply(variables, ids, name, method=LLM4CDSR.domain_items)
    pos_ids, idx = batch[f"pos_{name}"], batch[f"mix_idx_{name}"]
    valid = (pos_ids > 0) & row
    safe = jnp.maximum(idx, 0)
    pos_l = jnp.sum(f * items(pos_ids), -1) + jnp.take_along_axis(mix_pos, safe, 1)
    neg_l = jnp.sum(f * items(negs[f"neg_{name}"]), -1) + jnp.take_along_axis(mix_neg, safe, 1)
    rec = rec + _bce_pair(pos_l, neg_l, valid)
  loss = rec
  metrics = {"rec_loss": rec}
  if hp.reg_term:
    hist = batch["hist"]
    pool = reg_pool_mask(batch, hp.reg_pool)
    is_a = pool & (hist <= hp.num_items_a)
    is_b = pool & (hist > hp.num_items_a)
    ka, kb = jax.random.split(r_reg)
    reg_a, found_a = negatives.sample_from_rows(ka, hist, is_a)
    reg_b, found_b = negatives.sample_from_rows(kb, hist, is_b)
    reg = soft_clip_loss(
      mix(reg_a), mix(reg_b), found_a & found_b & batch["row_valid"], h["tau_reg"]
    )
    loss = loss + h["alpha"] * reg
    metrics["reg_loss"] = reg
  if hp.user_term and "user_profile" in batch:
    user = module.apply(variables, batch["user_profile"], method=LLM4CDSR.user_vectors)
    guide = soft_clip_loss(user, f_m[:, -1], batch["row_valid"], h["tau"])
    loss = loss + h["beta"] * guide
    metrics["user_loss"] = guide
  metrics["loss"] = loss
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_tables(module: LLM4CDSR, params: Any, frozen: Any) -> tuple[Array, Array, Array, Array]:
  """Once per evaluation: the mixed, A and B item tables, and the domain-path table by global id.

  Returns (mix [nA+nB+1, d], A [nA+1, d], B [nB+1, d], domain [nA+nB+1, d]); domain row j is A's
  row j for j <= nA and B's row j - nA above. Concatenating the tables once here, rather than the
  [cases, items] scores of every batch, keeps the scores' item axis in place when it is split
  over devices (train.item_shards).
  """
  mix_t, a_t, b_t = module.apply({"params": params, **frozen}, method=LLM4CDSR.item_tables)
  return mix_t, a_t, b_t, jnp.concatenate([a_t, b_t[1:]])


def eval_fn(
  module: LLM4CDSR, hp: Hyper, params: Any, frozen: Any, tables: Any, batch: dict[str, Array]
) -> task_lib.EvalOutputs:
  """Scores of the sampled candidates and of the full target-domain catalog for one eval batch."""
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=False)
  mix_t, a_t, b_t, dom_t = tables
  is_b = batch["domain"] == 1
  f_m = out["f_m"][:, -1]
  f_dom = jnp.where(is_b[:, None], out["f_b"][:, -1], out["f_a"][:, -1])
  # Sampled protocol: mixed score of the global candidates + domain score of (independent) local
  # ones.
  cand, cand_dom = batch["cand"], batch["cand_dom"]
  dom_vecs = jnp.where(
    is_b[:, None, None],
    b_t[jnp.clip(cand_dom, 0, b_t.shape[0] - 1)],
    a_t[jnp.clip(cand_dom, 0, a_t.shape[0] - 1)],
  )
  sampled = jnp.einsum("bd,bcd->bc", f_m, mix_t[cand]) + jnp.einsum("bd,bcd->bc", f_dom, dom_vecs)
  # Full ranking over the target's domain: mixed + domain score of each item by global id (A local
  # j = global j; B local j = global nA + j). The domain part scores every item against the
  # global-layout table of both domains' rows (`tables_fn`); the trainer masks the other domain
  # out, so only the target domain's columns are ever read.
  full = f_m @ mix_t.T + f_dom @ dom_t.T
  return task_lib.EvalOutputs(sampled_scores=sampled, full_scores=full, cells=out["cells"])


# ---------------------------------------------------------------------------------------------
# Assembly


def _pca(x: np.ndarray, dim: int) -> np.ndarray:
  """Rows of x projected on their top-`dim` principal components (sklearn's PCA, no whitening)."""
  x = x - x.mean(0, keepdims=True)
  _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
  return (x @ vt[:dim].T).astype(np.float32)


# PCA tables per dataset object and table sizes: parameter matching builds the same model at many
# FFN widths, and an SVD of a large catalog's text embeddings takes seconds.
_TABLES: weakref.WeakKeyDictionary[dataset_lib.CDSRDataset, dict] = weakref.WeakKeyDictionary()


def author_tables(
  ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict
) -> llm4cdsr_tables.AuthorTables | None:
  """The authors' embedding pickles when `model.llm_emb_dir` finds them, else None.

  "auto" looks in the data folder of a `handled` dataset (where upstream keeps them), "none" never
  looks, anything else is a folder that must hold them. Read once per dataset and folder.

  Raises:
    ConfigError: model.llm_emb_dir names a folder without the authors' item files.
    DataError: a file is present but malformed (readers/llm4cdsr_tables.py).
  """
  m = config.model
  where = m.llm_emb_dir
  if where == "none" or (where == "auto" and config.data.format != "handled"):
    return None
  folder = os.path.abspath(config.data.path if where == "auto" else where)
  item_file = m.llm_emb_file
  user_file = m.user_emb_file
  cached = _TABLES.setdefault(ds, {})
  key = ("author", folder, item_file, user_file)
  if key not in cached:
    tables = llm4cdsr_tables.load(
      folder, np.diff(ds.offsets), ds.num_items_a, ds.num_items_b, item_file, user_file
    )
    if tables is None and where != "auto":
      raise errors.ConfigError(
        f"config key model.llm_emb_dir={where!r}: "
        f"no {list(llm4cdsr_tables.item_file_names(item_file))} "
        "there (model.llm_emb_file names them); 'auto' = the handled data folder, 'none' = "
        "orthoalign's substitutes"
      )
    cached[key] = tables
  return cached[key]


def frozen_tables(
  ds: dataset_lib.CDSRDataset,
  cfg: ml_collections.ConfigDict,
  author: llm4cdsr_tables.AuthorTables | None = None,
) -> dict[str, np.ndarray]:
  """Item tables: the authors' (`author`) or made as their notebooks do, by joint PCA (global) and
  per-domain PCA (local) of `ds.item_text_emb`. float32, row 0 = padding (zeros).
  """
  key = (
    bool(cfg.global_emb),
    int(cfg.global_dim),
    bool(cfg.local_emb),
    int(cfg.hidden_size),
    author.folder if author else None,
  )
  cached = _TABLES.setdefault(ds, {})
  if key not in cached:
    cached[key] = _frozen_tables(ds, cfg, author)
  return cached[key]


def _text_rows(
  ds: dataset_lib.CDSRDataset, author: llm4cdsr_tables.AuthorTables | None
) -> np.ndarray | None:
  """[nA+nB+1, D] rows by global id that say which items have text, or None."""
  if author is not None:
    return np.concatenate([np.zeros((1, author.item_all.shape[1]), np.float32), author.item_all])
  return ds.item_text_emb


def missing_text_index(
  ds: dataset_lib.CDSRDataset, author: llm4cdsr_tables.AuthorTables | None = None
) -> dict[str, np.ndarray]:
  """Row maps of the items without text, the first time per dataset printing how many per domain.

  An item is without text where its text row (the authors' joint table, else `ds.item_text_emb`)
  is all zero (text_emb.py's row for a blank title). Returns {"m": int32 [nA+nB+1] by global id,
  "a": [nA+1], "b": [nB+1] by local id}: the item's row in that table's trainable rows (0, 1, ... in
  id order), -1 where it has text and for padding (id 0); {} when there is no text at all.
  """
  cached = _TABLES.setdefault(ds, {})
  key = ("missing", author.folder if author else None)
  if key not in cached:
    out = {}
    rows = _text_rows(ds, author)
    if rows is not None:
      na = ds.num_items_a
      missing = ~np.any(rows[1:] != 0, axis=1)
      for name, part in (("m", missing), ("a", missing[:na]), ("b", missing[na:])):
        index = np.full(len(part) + 1, -1, np.int32)
        index[1:][part] = np.arange(int(part.sum()), dtype=np.int32)
        out[name] = index
      print(
        f"LLM4CDSR: items without text (all-zero text embedding): A {int(missing[:na].sum())} / "
        f"{na}, B {int(missing[na:].sum())} / {ds.num_items_b} (model.missing_text: 'learned' = "
        "own trainable rows, 'zero' = one shared frozen row)",
        flush=True,
      )
    cached[key] = out
  return cached[key]


def _frozen_tables(
  ds: dataset_lib.CDSRDataset,
  cfg: ml_collections.ConfigDict,
  author: llm4cdsr_tables.AuthorTables | None,
) -> dict[str, np.ndarray]:
  out = {}
  pad = lambda x: np.concatenate([np.zeros((1, x.shape[1]), np.float32), x])
  if author is not None:  # upstream's tables as they are: its global width is the file's
    if cfg.global_emb:
      out["global_table"] = pad(author.item_all)
    if cfg.local_emb:
      if author.item_a.shape[1] != cfg.hidden_size:
        raise errors.ConfigError(
          f"config key model.hidden_size={cfg.hidden_size}: with the authors' local tables it must "
          f"equal their width, {author.item_a.shape[1]} ({author.files[1]}), as upstream requires; "
          "or set --config.model.local_emb=False"
        )
      out["table_a"], out["table_b"] = pad(author.item_a), pad(author.item_b)
    return out
  emb = ds.item_text_emb
  if emb is None:
    return out
  na = ds.num_items_a
  items = emb[1:]
  if cfg.global_emb:
    g = min(cfg.global_dim, items.shape[1], items.shape[0])
    out["global_table"] = pad(_pca(items, g))
  if cfg.local_emb:
    d = cfg.hidden_size
    for name, part in (("table_a", items[:na]), ("table_b", items[na:])):
      if min(part.shape) < d:
        raise errors.ConfigError(
          f"model.local_emb needs item text embeddings of at least model.hidden_size={d} dims and "
          f"items per domain (got {part.shape[1]} dims, {part.shape[0]} items); set "
          f"--config.model.local_emb=False or a smaller model.hidden_size"
        )
      out[name] = pad(_pca(part, d))
  return out


def _report_inputs(
  ds: dataset_lib.CDSRDataset,
  config: ml_collections.ConfigDict,
  author: llm4cdsr_tables.AuthorTables | None,
  profiles: str,
) -> None:
  """Prints, once per dataset and source, where the item tables and user profiles come from."""
  cached = _TABLES.setdefault(ds, {})
  key = ("reported", author.folder if author else None, profiles)
  if key in cached:
    return
  cached[key] = True
  if author is not None:
    items = f"the authors' files in {author.folder}: {author.describe()}"
  elif ds.item_text_emb is not None:
    source = (
      "synthetic" if config.data.format == "synthetic" else f"data.text_emb={config.data.text_emb}"
    )
    where = config.model.llm_emb_dir
    why = (
      "model.llm_emb_dir='none'"
      if where == "none"
      else "model.llm_emb_dir='auto' uses the authors' tables only where their data folder has them"
    )
    items = (
      f"PCA of the dataset's item text embeddings ({source}), the substitute for the "
      f"authors' LLM tables ({why})"
    )
  else:
    items = "none: trainable ID embeddings (no item text and no authors' files)"
  print(f"LLM4CDSR: item tables = {items}; user profiles (beta loss) = {profiles}", flush=True)


def default_config() -> ml_collections.ConfigDict:
  """LLM4CDSR's `model.*` keys with the upstream defaults (reference/baselines.md §2.4)."""
  m = ml_collections.ConfigDict()
  m.name = "llm4cdsr"
  m.hidden_size = 128
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.5
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size (the original). Grown by
  # parameter matching (orthoalign/models/param_count.py) for the scaling experiment.
  m.ffn_size = 0
  m.max_len = 200
  # Frozen text tables: mixed path via a joint PCA (<= global_dim) + adapter; domain paths via
  # per-domain PCA to hidden_size. Off = trainable ID embeddings ("w/o LLM"). Without item text
  # (e.g. ABXI's files) the model falls back to ID embeddings.
  m.global_emb = True
  m.global_dim = 1024
  m.local_emb = True
  m.freeze_emb = True
  # Auxiliary losses: alpha * item regularisation, beta * user guidance, and their temperatures.
  # 0.1 / 0.1 as upstream's Amazon Cloth-Sport script (its Elec-Phone script: 1 / 1).
  m.alpha = 0.1
  m.beta = 0.1
  m.tau = 1.0
  m.tau_reg = 1.0
  # Quirks of the original code (defaults = original behaviour; see the module docstring).
  m.causal_self_attention = False
  # True keeps padding out of the self-attention keys (upstream lets it act as keys), so that an
  # output does not depend on the padding around it; needed by train.length_buckets.
  m.mask_padding_keys = False
  m.mixed_neg_domain = "input"
  m.independent_negatives = True
  m.neg_exclusive_upper = True
  # Alpha-loss item pool: "inputs" = the training prefix without its last item (upstream), "history"
  # = the whole training prefix (orthoalign before this key). See the module docstring.
  m.reg_pool = "inputs"
  # Items without text in the frozen tables: "learned" = each its own trainable row (upstream has
  # text for every item, so none of its items shares a vector), "zero" = all share the zero text row
  # (orthoalign before this key). See the module docstring.
  m.missing_text = "learned"
  # The authors' embedding pickles (orthoalign/data/readers/llm4cdsr_tables.py): "auto" = read them
  # from a handled data folder when there, "none" = never (orthoalign's substitutes), or a folder.
  # The file names as upstream's --llm_emb_file / --user_emb_file ("item_emb" for its Douban data).
  m.llm_emb_dir = "auto"
  m.llm_emb_file = "itm_emb_np"
  m.user_emb_file = "usr_profile_emb"
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k != "name")
_CHOICES = {"reg_pool": ("inputs", "history"), "missing_text": ("learned", "zero")}


def validate(config: ml_collections.ConfigDict) -> None:
  """LLM4CDSR's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions outside 0..num_blocks, heads that do not divide
      the width, a GCA cell reading the mixed stream, or an out-of-range value (naming the key).
  """
  dicts.require(config, _KEYS, "LLM4CDSR")
  m = config.model
  for key in ("model.hidden_size", "model.num_blocks", "model.num_heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn_size", 0)
  dicts.check_int(config, "model.global_dim", 1)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"LLM4CDSR with model.num_blocks={m.num_blocks}"
  )
  for key, choices in _CHOICES.items():
    dicts.choice(f"model.{key}", m[key], choices)
  if m.mixed_neg_domain not in ("input", "target"):
    raise errors.ConfigError(
      f"config key model.mixed_neg_domain={m.mixed_neg_domain!r}; valid "
      "choices: ['input', 'target']"
    )
  for key in ("llm_emb_dir", "llm_emb_file", "user_emb_file"):
    value = m[key]
    if not isinstance(value, str) or not value:
      raise errors.ConfigError(
        f"config key model.{key}={value!r}; expected a non-empty string"
        + (" ('auto', 'none' or a folder)" if key == "llm_emb_dir" else "")
      )
  dicts.check_fraction(config, "model.dropout")


def check_length_buckets(config: ml_collections.ConfigDict) -> None:
  """train.length_buckets (ascending ints >= 1, checked by train.checks) must lie below
  model.max_len, which is always the last bucket, and need model.mask_padding_keys=True.

  Raises:
    ConfigError: naming the key and why.
  """
  buckets = tuple(config.train.length_buckets)
  if buckets[-1] >= config.model.max_len:
    raise errors.ConfigError(
      f"config key train.length_buckets={buckets}; expected ints below "
      f"model.max_len={config.model.max_len} (which is always the last bucket)"
    )
  if config.model.mask_padding_keys is not True:
    raise errors.ConfigError(
      f"config key train.length_buckets={buckets} needs model.mask_padding_keys=True: cutting "
      "padding off a batch must not change the model's outputs, and LLM4CDSR's attention lets "
      "padding act as keys unless masked"
    )


def build(ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict) -> task_lib.Task:
  """Builds the LLM4CDSR task (module, frozen tables, device arrays) for one dataset and config."""
  m = config.model
  task_lib.require_merged_timeline(ds, config, "its mixed stream is the merged sequence")
  author = author_tables(ds, config)
  tables = frozen_tables(ds, m, author)
  global_dim = tables["global_table"].shape[1] if "global_table" in tables else 0
  train = windows.train_windows(ds, m.max_len)
  swept = config.sweep.model
  # A term exists in the program when any replica gives it a non-zero weight.
  alpha = max((abs(float(v)) for v in (m.alpha, *swept.alpha)), default=0.0)
  beta = max((abs(float(v)) for v in (m.beta, *swept.beta)), default=0.0)
  if author is not None and author.users is not None:
    profiles, source = author.users[train["user"]], f"the authors' {author.files[3]}"
  elif ds.item_text_emb is not None:
    profiles, source = (
      None,
      (
        "mean text embedding of the user's training items (substitute for "
        "the authors' GPT profiles)"
      ),
    )
  else:
    profiles, source = None, "none (no text): the beta loss is off"
  _report_inputs(ds, config, author, source)
  if beta and profiles is None and ds.item_text_emb is not None:
    profiles = windows.mean_text_profiles(ds.item_text_emb, train["hist"])
  use_profiles = profiles is not None
  beta = beta if use_profiles else 0.0
  if beta:
    train["user_profile"] = profiles
  frozen = {k: v for k, v in tables.items() if k != "global_table" or m.freeze_emb}
  missing = missing_text_index(ds, author)
  missing_rows = [0, 0, 0]
  if m.missing_text == "learned":
    # Frozen-table paths only: the mixed path when its global table is frozen, the domain paths when
    # they read the local tables (an unfrozen table or ID embeddings are trainable per item anyway).
    uses = {"m": global_dim and m.freeze_emb, "a": "table_a" in tables, "b": "table_b" in tables}
    for i, name in enumerate(("m", "a", "b")):
      k = int((missing[name] >= 0).sum()) if name in missing else 0
      if uses[name] and k:
        missing_rows[i] = k
        frozen[f"missing_index_{name}"] = missing[name]
  gca = task_lib.gca_settings(config)
  module = LLM4CDSR(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    hidden=m.hidden_size,
    num_blocks=m.num_blocks,
    num_heads=m.num_heads,
    dropout=m.dropout,
    max_len=m.max_len,
    global_dim=global_dim,
    freeze_global=m.freeze_emb,
    local_emb="table_a" in tables,
    user_dim=profiles.shape[1] if beta else 0,
    causal=m.causal_self_attention,
    mask_padding_keys=bool(m.mask_padding_keys),
    ffn_size=int(m.ffn_size),
    missing_rows=tuple(missing_rows),
    gca_positions=gca.positions,
    gca=gca.cell,
  )
  hp = Hyper(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    alpha=float(m.alpha),
    beta=float(m.beta) if use_profiles else 0.0,
    tau=float(m.tau),
    tau_reg=float(m.tau_reg),
    reg_term=alpha > 0,
    user_term=beta > 0,
    mixed_neg_domain=m.mixed_neg_domain,
    independent_negatives=m.independent_negatives,
    neg_exclusive_upper=m.neg_exclusive_upper,
    reg_pool=m.reg_pool,
  )

  def cand_dom(split_name: str) -> dict[str, np.ndarray]:
    seed = config.eval.candidate_seed
    # The original draws the domain stream's candidates independently; freeze a second set.
    cand = data_load.candidates(
      ds, split_name, config.eval.num_negatives, seed + 1000 if hp.independent_negatives else seed
    )
    return {
      "cand_dom": np.where(cand > ds.num_items_a, cand - ds.num_items_a, cand).astype(np.int32)
    }

  sample_batch = {k: v[:1] for k, v in train.items()}
  sample_batch["row_valid"] = np.ones((1,), bool)

  def init_params(rng: Array) -> Any:
    variables = module.init({"params": rng, "dropout": rng}, sample_batch, method=LLM4CDSR.init_all)
    params = variables["params"]
    if "item_emb_llm" in params:  # unfrozen LLM table starts from the PCA table
      params = {**params, "item_emb_llm": jnp.asarray(tables["global_table"])}
    return params

  return task_lib.assemble(
    ds,
    config,
    module=module,
    train_data=train,
    eval_windows=lambda d, split: windows.eval_windows(d, split, m.max_len),
    extra_eval=cand_dom,
    loss_fn=lambda p, f, b, r, h=None: loss_fn(module, hp, p, f, b, r, h),
    eval_fn=lambda p, f, t, b: eval_fn(module, hp, p, f, t, b),
    tables_fn=lambda p, f: eval_tables(module, p, f),
    frozen={"frozen": frozen} if frozen else {},
    init_params=init_params,
    hparams={"alpha": hp.alpha, "beta": hp.beta, "tau": hp.tau, "tau_reg": hp.tau_reg},
    length_fn=windows.window_lengths,
    crop_fn=windows.crop_windows,
  )
