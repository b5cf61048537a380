"""ABXI (Bian et al., WWW 2025) in Flax Linen, with GCA insertion points.

Reproduces the authors' v2 code as of v2.1 (`DiMarzioBian/ABXI`, commit 72e52c9; the versions read
are `models/ABXI.py`, `main.py` and `models/data/dataloader.py` at 3239e14, `models/encoders.py`,
`models/layers.py`, `models/utils/initialization.py` and `models/data/evaluation.py` at 24faf77,
`models/utils/position.py` at 5ec87b5, `trainer.py` at 10075a4; see reference/baselines.md §1).
One item table `ei` (inputs and output scores), reversed positions, ONE shared causal attention
block for the merged (x) and domain (a, b) sequences, a shared SwiGLU FFN with per-sequence domain
LoRA (dLoRA) and LayerNorm, an invariant projector with invariant LoRA (iLoRA) carrying x into each
domain, domain projectors, and the per-position mix `h = h_A * m_A + h_B * m_B` by the target's
domain. InfoNCE (temperature 0.75) at every position against 128 A + 128 B negatives that avoid the
user's train-part items; objective loss_A + loss_B.

GCA (not in the original): cells `gca<p>_A` / `gca<p>_B` at p = 0 (after the embedding), 1 (after
the attention block) or 2 (after the FFN/LoRA stage) update the A and B streams, querying the other
domain's stream (`gca.kv="other"`) or the merged stream (`"mixed"`) under a causal mask on merged
time (`data/abxi_windows.py` defines the times of aligned and evaluation tokens).

Reproduced details: no key-padding mask (padding tokens are zero vectors whose keys/values are the
in-projection bias); attention-probability dropout 0; dropout sampled separately on every branch;
LayerNorm eps 1e-5 on masked inputs (`LN(x * m)` leaves the LN bias at masked slots until the final
mix); at evaluation the FFN/LoRA stage runs on the last position with mask 1; initialisation
(Linear N(0, 0.02) and zero bias, also the attention out-projection; attention in-projection
xavier-uniform with zero bias; embeddings trunc-normal(0, 0.02, +-0.04) including the pad row;
LoRA A = randn/50, B = 0; LayerNorm 1/0). Positions count backwards (most recent = 1); in training
the aligned domain sequences have interior gaps, so a token's position also counts the later
same-domain targets of the sequence (the original's behaviour).

Quirks of the original, flags whose defaults are the v2.1 behaviour:
  * `neg_b_off_by_one=True`: v2's `idx_all_b = arange(n_item_a, n_item + 1)` lets the last A item
    (id nA) be drawn as a B negative (v1: `n_item_a + 1`).
  * `eval_domain_seq="inplace"`: at evaluation `trainer.evaluate_batch` builds seq_a / seq_b by
    zeroing the other domain's items of seq_x slot for slot. When the last input item is a B item,
    seq_a's last slot is padding, its attention output is masked to 0 and the A stream reaches the
    final mix only as LayerNorm biases (likewise for B). "compact" gives each stream the prefix's
    own-domain items, left-padded, as reference/baselines.md describes the evaluation inputs.
    With GCA this matters more: a cell leaves padding queries as they are (models/gca.py), so in
    place, a *switch* case (last input from the other domain: 36.7 % of abxi-afk's test cases) gets
    nothing from any GCA cell: the stream it is scored on never queried the other domain. This is
    kept as the faithful default, since the slot holds no item to query with; the metrics are
    reported per case group `switch` / `stay` (data/eval_inputs.py), `build` prints the share,
    and `compact` (or `python -m orthoalign.evaluate --set=model.eval_domain_seq=compact`) lets GCA
    reach every case whose own stream has seen the other domain.

Deviations (named):
  * Training negatives are drawn on device (`negatives.sample_distinct_excluding`: vectorised
    rejection, exactly the original's uniform draw without replacement unless more than 32 of 160
    candidates are rejected, chance < 1e-25 on Food-Kitchen), per position as the original (a fresh
    128 A + 128 B at every non-pad position). All draws avoid the whole train-part history (the
    original's B pool avoids only its B items, so id nA can be drawn there even when seen).
  * Evaluation candidates are orthoalign's frozen sets (`data_load.candidates`, the target's domain
    minus the history) instead of a fresh draw at every evaluation (which, in the original, has the
    same off-by-one for B targets).
  * Ranks: the trainer counts ties against the target, ABXI in its favour (negligible for float
    scores); best-epoch selection is strict (`>`), ABXI's is `>=`.
  * Users whose train part has < 2 items are not trained on (ABXI's data has none).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.data import abxi_windows
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import negatives
from orthoalign.models import gca as gca_lib
from orthoalign.models import gca_checks
from orthoalign.models import layers
from orthoalign.models import task as task_lib

Array = jax.Array

STREAMS = ("x", "a", "b")
GCA_POSITIONS = (0, 1, 2)  # after the embedding, after the attention block, after FFN/LoRA
GCA_KV = ("other", "mixed")
_LN_EPS = 1e-5  # torch's LayerNorm default

_linear_init = nn.initializers.normal(0.02)


def _embedding_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch trunc_normal_(mean 0, std 0.02, a=-0.04, b=0.04): +-2 standard deviations."""
  return 0.02 * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def _lora_a_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch.randn(d, r) / 50."""
  return jax.random.normal(key, shape, dtype) / 50.0


def backward_positions(valid: Array) -> Array:
  """Most recent valid token = 1, counting backwards over valid tokens; padding = 0."""
  v = valid.astype(jnp.int32)
  return jnp.flip(jnp.cumsum(jnp.flip(v, -1), -1), -1) * v


def _layer_norm(name: str) -> nn.LayerNorm:
  return nn.LayerNorm(epsilon=_LN_EPS, name=name)


class SwiGLU(nn.Module):
  """ABXI's `FeedForward`: fc_3(silu(fc_2 h) * fc_1 h), no biases (residual and norm outside)."""

  d: int
  d_ffn: int

  @nn.compact
  def __call__(self, h: Array) -> Array:
    dense = lambda f, name: nn.Dense(f, use_bias=False, kernel_init=_linear_init, name=name)
    return dense(self.d, "fc_3")(
      nn.silu(dense(self.d_ffn, "fc_2")(h)) * dense(self.d_ffn, "fc_1")(h)
    )


class LoRA(nn.Module):
  """ABXI's `LoRA`: h @ (A @ B)^T with A [d, r] = randn/50 and B [r, d] = 0."""

  d: int
  rank: int

  @nn.compact
  def __call__(self, h: Array) -> Array:
    mat_a = self.param("mat_A", _lora_a_init, (self.d, self.rank))
    mat_b = self.param("mat_B", nn.initializers.zeros, (self.rank, self.d))
    return h @ (mat_a @ mat_b).T


class CausalSelfAttention(nn.Module):
  """torch nn.MultiheadAttention(d, heads, batch_first=True) under a causal mask only.

  No key-padding mask and no attention-probability dropout, as ABXI. The fused in-projection keeps
  torch's xavier_uniform on its (3d, d) weight (fan_in d, fan_out 3d); the out-projection is a
  torch Linear, so ABXI's `init_weights` gives it N(0, 0.02) and a zero bias.
  """

  d: int
  heads: int

  @nn.compact
  def __call__(self, h: Array) -> Array:
    if self.d % self.heads:
      raise errors.ConfigError(f"model.n_head={self.heads} must divide model.d_embed={self.d}")
    w_in = self.param("in_proj_kernel", nn.initializers.xavier_uniform(), (self.d, 3 * self.d))
    b_in = self.param("in_proj_bias", nn.initializers.zeros, (3 * self.d,))
    qkv = h @ w_in + b_in
    q, k, v = (layers.split_heads(t, self.heads) for t in jnp.split(qkv, 3, axis=-1))
    length = h.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))[None, None]
    probs, _ = layers.attention_probs(q, k, causal)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(h.shape)
    return nn.Dense(
      self.d, kernel_init=_linear_init, bias_init=nn.initializers.zeros, name="out_proj"
    )(out)


class ABXI(nn.Module):
  """The ABXI encoder: returns the mixed representation h used to score items with `ei`.

  Attributes:
    num_items_a, num_items_b: catalog sizes (the item table has nA + nB + 1 rows, row 0 = padding).
    length: window length L (= max_len - 3); the position table has L + 1 rows.
    d_embed, n_head, d_ffn: model width, attention heads, SwiGLU hidden width.
    rd, ri: ranks of the domain LoRAs (x, a, b) and of the invariant LoRAs (a, b).
    dropout: the shared dropout rate.
    gca_positions: GCA insertion points, 0 = after the embedding, 1 = after the attention block,
      2 = after the FFN/LoRA stage.
    gca_kv: "other" (the A stream queries B and B queries A) or "mixed" (both query x).
    gca: keyword arguments of every `gca.GatedCrossAttention` cell.
  """

  num_items_a: int
  num_items_b: int
  length: int
  d_embed: int = 256
  n_head: int = 2
  d_ffn: int = 680
  rd: int = 16
  ri: int = 64
  dropout: float = 0.5
  gca_positions: tuple[int, ...] = ()
  gca_kv: str = "other"
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    d = self.d_embed
    self.ei = self.param("ei", _embedding_init, (self.num_items_a + self.num_items_b + 1, d))
    self.ep = self.param("ep", _embedding_init, (self.length + 1, d))
    self.mha = CausalSelfAttention(d, self.n_head, name="mha")
    self.norm_mha = _layer_norm("norm_mha")
    self.ffn = SwiGLU(d, self.d_ffn, name="ffn")
    self.dlora = {s: LoRA(d, self.rd, name=f"dlora_{s}") for s in STREAMS}
    self.norm_sa = {s: _layer_norm(f"norm_sa_{s}") for s in STREAMS}
    self.ilora = {s: LoRA(d, self.ri, name=f"ilora_{s}") for s in ("a", "b")}
    self.proj = {s: SwiGLU(d, self.d_ffn, name=f"proj_{s}") for s in ("i", "a", "b")}
    self.norm_i2 = {s: _layer_norm(f"norm_i2{s}") for s in ("a", "b")}
    self.norm_own = {s: _layer_norm(f"norm_{s}2{s}") for s in ("a", "b")}
    self.drop = nn.Dropout(self.dropout)
    bad = [p for p in self.gca_positions if p not in GCA_POSITIONS]
    if (
      bad or self.gca_kv not in GCA_KV
    ):  # `validate` names these for configs; this guards direct use
      raise errors.ConfigError(
        f"gca.positions={list(self.gca_positions)}, gca.kv={self.gca_kv!r}: ABXI has positions "
        f"{list(GCA_POSITIONS)} (after the embedding, the attention block, the FFN/LoRA stage) "
        f"and kv {list(GCA_KV)}"
      )
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def _dropout(self, h: Array, train: bool) -> Array:
    return self.drop(h, deterministic=not train)

  def _cross(
    self,
    p: int,
    h: dict[str, Array],
    valid: dict[str, Array],
    batch: dict[str, Array],
    train: bool,
    cells: dict[str, Any],
  ) -> None:
    """Applies the two cells of GCA position p to h["a"] and h["b"] (in place, simultaneously)."""
    # Queries may carry their own times (evaluation reads the last position only).
    query = {s: (h[s], batch.get(f"qtime_{s}", batch[f"time_{s}"]), valid[s]) for s in ("a", "b")}
    kv = {
      own: (h[k], batch[f"time_{k}"], valid[k])
      for own, k in (
        ("a", "b" if self.gca_kv == "other" else "x"),
        ("b", "a" if self.gca_kv == "other" else "x"),
      )
    }
    h.update(gca_lib.apply_position(self.cells, p, query, kv, train=train, out=cells))

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes a batch.

    Args:
      batch: seq_x, seq_a, seq_b [B, L] and time_* [B, L]; in training target [B, L] (its domain
        selects the branch per position), at evaluation domain [B] (the target's domain).
      train: training (dropout, every position) or evaluation (last position).

    Returns:
      {"h": [B, L, d] in training, [B, d] at evaluation; "cells": GCA intermediates by cell name}.
    """
    valid = {s: batch[f"seq_{s}"] > 0 for s in STREAMS}
    m = {s: valid[s][..., None].astype(self.ei.dtype) for s in STREAMS}
    h = {
      s: self._dropout(
        (self.ei[batch[f"seq_{s}"]] + self.ep[backward_positions(valid[s])]) * m[s], train
      )
      for s in STREAMS
    }
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      self._cross(0, h, valid, batch, train, cells)
    # One shared attention block for x, a and b.
    h = {s: self.norm_mha(h[s] + self._dropout(self.mha(h[s]), train)) * m[s] for s in STREAMS}
    if 1 in self.gca_positions:
      self._cross(1, h, valid, batch, train, cells)

    if train:
      target = batch["target"]
      gt = {
        "a": ((target > 0) & (target <= self.num_items_a))[..., None],
        "b": (target > self.num_items_a)[..., None],
      }
    else:
      is_b = (batch["domain"] == 1)[:, None]
      gt = {"a": ~is_b, "b": is_b}
      m = {s: jnp.ones_like(m[s]) for s in STREAMS}  # the original's `mask_x = ... = 1`
      if 2 not in self.gca_positions:  # position-wise from here: last slot only
        h = {s: h[s][:, -1] for s in STREAMS}
        m = {s: m[s][:, -1] for s in STREAMS}
    gt = {s: v.astype(self.ei.dtype) for s, v in gt.items()}

    # Shared FFN + per-sequence domain LoRA, post-norm.
    h = {
      s: self.norm_sa[s](
        h[s] + self._dropout(self.ffn(h[s]), train) + self._dropout(self.dlora[s](h[s]), train)
      )
      * m[s]
      for s in STREAMS
    }
    if 2 in self.gca_positions:
      self._cross(2, h, valid, batch, train, cells)
      if not train:
        h = {s: h[s][:, -1] for s in STREAMS}

    # Invariant projector + iLoRA from x, and the domain projectors.
    h_x = h["x"]
    h_i = self.proj["i"](h_x)
    out = 0.0
    for s in ("a", "b"):
      inv = self.norm_i2[s](
        (h_x + self._dropout(h_i, train) + self._dropout(self.ilora[s](h_x), train)) * gt[s]
      )
      own = self.norm_own[s]((h[s] + self._dropout(self.proj[s](h[s]), train)) * gt[s])
      out = out + (inv + own) * gt[s]
    return {"h": out, "cells": cells}


# ---------------------------------------------------------------------------------------------
# Loss


# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>),
# with the values they may take: the InfoNCE temperature divides the logits.
REPLICA_HPARAMS = {"temp": dicts.POSITIVE}


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Loss and sampling settings of one ABXI run (static; not vmapped)."""

  num_items_a: int
  num_items_b: int
  n_neg: int = 128
  temp: float = 0.75
  neg_b_off_by_one: bool = True
  catalog_scoring: bool = False


def sample_train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> Array:
  """[B, L, 2 * n_neg] global ids: per position n_neg distinct A items then n_neg distinct B items
  (without replacement, as the original), none in `hist`.
  """
  na, nb = hp.num_items_a, hp.num_items_b
  shape, hist = batch["target"].shape, batch["hist"]
  r_a, r_b = jax.random.split(rng)
  neg_a = negatives.sample_distinct_excluding(r_a, shape, 1, na + 1, hist, hp.n_neg)
  low_b = na if hp.neg_b_off_by_one else na + 1  # v2's arange(n_item_a, n_item + 1)
  neg_b = negatives.sample_distinct_excluding(r_b, shape, low_b, na + nb + 1, hist, hp.n_neg)
  return jnp.concatenate([neg_a, neg_b], axis=-1)


# Rows per block of the gathered InfoNCE: the [rows, L, 256, d] negative embeddings of one block
# (~400 MB at 32 rows) are rematerialised in the backward pass instead of kept for the whole batch
# (3.2 GB per replica at 256 rows, which capped the CPU at R = 5); the epoch time is unchanged.
_GATHER_BLOCK_ROWS = 32


def info_nce(
  h: Array, table: Array, target: Array, neg: Array, temp: float, catalog: bool = False
) -> Array:
  """-log softmax([<h, e_target>, <h, e_neg>...] / temp)[0] per position: [B, L].

  catalog=True scores every item once ([B, L, n_items+1]) and picks the target and negatives from
  it: the same numbers with one dense matmul (more FLOPs, no gathers or scatters), the better
  trade on a GPU. catalog=False gathers the negatives' embeddings block by block of rows.
  """
  if catalog:
    scores = h @ table.T
    pos = jnp.take_along_axis(scores, target[..., None], -1)
    negs = jnp.take_along_axis(scores, neg, -1)
    return _nce_from_logits(pos, negs, temp)

  @jax.checkpoint
  def block(h, target, neg):
    pos = jnp.sum(h * table[target], -1, keepdims=True)
    return _nce_from_logits(pos, jnp.einsum("bld,blnd->bln", h, table[neg]), temp)

  rows = h.shape[0]
  size = next(k for k in range(min(rows, _GATHER_BLOCK_ROWS), 0, -1) if rows % k == 0)
  split = lambda x: x.reshape((rows // size, size) + x.shape[1:])
  _, out = jax.lax.scan(lambda c, xs: (c, block(*xs)), None, (split(h), split(target), split(neg)))
  return out.reshape(target.shape)


def _nce_from_logits(pos: Array, negs: Array, temp: float) -> Array:
  logits = jnp.concatenate([pos, negs], -1) / temp
  return -jax.nn.log_softmax(logits, axis=-1)[..., 0]


def domain_loss(per_pos: Array, mask: Array, row_valid: Array) -> Array:
  """ABXI's `(loss * cal_norm_mask(mask)).sum(-1).mean()`: per-sequence mean over the masked
  positions (0 for a sequence without any), then the mean over the (valid) sequences.
  """
  w = mask.astype(per_pos.dtype)
  count = jnp.sum(w, -1)
  per_row = jnp.where(count > 0, jnp.sum(per_pos * w, -1) / jnp.maximum(count, 1.0), 0.0)
  rows = row_valid.astype(per_pos.dtype)
  return jnp.sum(per_row * rows) / jnp.maximum(jnp.sum(rows), 1.0)


def loss_fn(
  module: ABXI,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """ABXI's training objective loss_A + loss_B on one batch; batch["row_valid"] masks padded rows.

  `hparams` {"temp"}: this replica's InfoNCE temperature (a scalar); None = hp.temp.
  """
  temp = (hparams or {}).get("temp", hp.temp)
  r_drop, r_neg = jax.random.split(rng)
  out = module.apply({"params": params, **frozen}, batch, train=True, rngs={"dropout": r_drop})
  neg = sample_train_negatives(r_neg, batch, hp)
  target = batch["target"]
  per_pos = info_nce(out["h"], params["ei"], target, neg, temp, hp.catalog_scoring)
  na = hp.num_items_a
  loss_a = domain_loss(per_pos, (target > 0) & (target <= na), batch["row_valid"])
  loss_b = domain_loss(per_pos, target > na, batch["row_valid"])
  loss = loss_a + loss_b
  return gca_lib.orth_penalty_loss(
    loss, {"loss": loss, "loss_a": loss_a, "loss_b": loss_b}, out["cells"], hparams
  )


def eval_fn(
  module: ABXI, params: Any, frozen: Any, table: Array, batch: dict[str, Array]
) -> task_lib.EvalOutputs:
  """Scores <h, ei(item)> of the frozen candidates and of every item (by global id)."""
  out = module.apply({"params": params, **frozen}, batch, train=False)
  h = out["h"]
  sampled = jnp.einsum("bd,bcd->bc", h, table[batch["cand"]])
  return task_lib.EvalOutputs(sampled_scores=sampled, full_scores=h @ table.T, cells=out["cells"])


# ---------------------------------------------------------------------------------------------
# Assembly


def _catalog_scoring(mode: str) -> bool:
  """model.neg_scoring: "gather" (CPU-friendly), "catalog" (accelerator-friendly) or "auto"."""
  return mode == "catalog" or (mode == "auto" and jax.default_backend() != "cpu")


def make_module(
  num_items_a: int,
  num_items_b: int,
  model_cfg: Any,
  gca_positions: tuple[int, ...] = (),
  gca_kv: str = "other",
  gca: dict[str, Any] | None = None,
) -> ABXI:
  """The ABXI module for a catalog and `config.model`."""
  return ABXI(
    num_items_a=num_items_a,
    num_items_b=num_items_b,
    length=int(model_cfg.max_len) - 3,
    d_embed=int(model_cfg.d_embed),
    n_head=int(model_cfg.n_head),
    d_ffn=int(model_cfg.d_ffn),
    rd=int(model_cfg.rd),
    ri=int(model_cfg.ri),
    dropout=float(model_cfg.dropout),
    gca_positions=tuple(gca_positions),
    gca_kv=gca_kv,
    gca=dict(gca or {}),
  )


def default_config() -> ml_collections.ConfigDict:
  """ABXI's `model.*` keys with the v2.1 defaults for Food-Kitchen (reference/baselines.md §1.3)."""
  m = ml_collections.ConfigDict()
  m.name = "abxi"
  m.d_embed = 256
  m.n_head = 2
  m.d_ffn = 680
  m.dropout = 0.5
  m.temp = 0.75
  m.n_neg = 128
  m.max_len = 50
  # Dataset-dependent LoRA ranks (demo.sh): afk 16/64, abe 64/64, amb 4/4.
  m.rd = 16
  m.ri = 64
  # Quirk of v2 (default = original behaviour; see the module docstring): id nA may be a B negative.
  m.neg_b_off_by_one = True
  # Evaluation domain sequences: "inplace" = the original trainer (seq_x with the other domain's
  # items zeroed), "compact" = the own-domain history left-padded (see data/abxi_windows.py).
  m.eval_domain_seq = "inplace"
  # How negative logits are computed (same numbers): "gather" their embeddings (less compute, CPU),
  # "catalog" = score all items then pick (less memory, GPU/TPU), "auto" = by backend.
  m.neg_scoring = "auto"
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k != "name")


def validate(config: ml_collections.ConfigDict) -> None:
  """ABXI's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions other than 0/1/2, heads that do not divide
      d_embed, an unknown neg_scoring / eval_domain_seq, or a window shorter than 5 (gca.kv is
      checked against GCA_KV with the other gca.* keys).
  """
  dicts.require(config, _KEYS, "ABXI")
  m = config.model
  for key in (
    "model.d_embed",
    "model.n_head",
    "model.d_ffn",
    "model.n_neg",
    "model.rd",
    "model.ri",
  ):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.max_len", 5)  # windows are max_len - 3 long
  dicts.check_divides(config, "model.n_head", "model.d_embed")
  dicts.check_divides(config, "gca.heads", "model.d_embed")
  gca_checks.check_positions(config, GCA_POSITIONS, "ABXI")
  dicts.choice("model.neg_scoring", m.neg_scoring, ("auto", "gather", "catalog"))
  dicts.choice("model.eval_domain_seq", m.eval_domain_seq, ("inplace", "compact"))
  dicts.check_fraction(config, "model.dropout")


def build(ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict) -> task_lib.Task:
  """Builds the ABXI task (module, training and evaluation arrays) for one dataset and config."""
  m = config.model
  task_lib.require_merged_timeline(ds, config, "its mixed stream is the merged sequence")
  if m.n_neg > min(ds.num_items_a, ds.num_items_b):
    raise errors.ConfigError(
      f"config key model.n_neg={m.n_neg}: ABXI draws that many distinct negatives per domain, "
      f"but the domains have {ds.num_items_a} (A) and {ds.num_items_b} (B) items"
    )
  gca = task_lib.gca_settings(config)
  module = make_module(ds.num_items_a, ds.num_items_b, m, gca.positions, gca.kv, gca.cell)
  hp = Hyper(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    n_neg=int(m.n_neg),
    temp=float(m.temp),
    neg_b_off_by_one=bool(m.neg_b_off_by_one),
    catalog_scoring=_catalog_scoring(m.neg_scoring),
  )
  # A saved config without the key predates it: such runs were evaluated with the compact layout.
  layout = m.eval_domain_seq
  task = task_lib.assemble(
    ds,
    config,
    module=module,
    train_data=abxi_windows.train_windows(ds, m.max_len),
    eval_windows=lambda d, split: abxi_windows.eval_windows(d, split, m.max_len, layout),
    loss_fn=lambda p, f, b, r, h=None: loss_fn(module, hp, p, f, b, r, h),
    eval_fn=lambda p, f, t, b: eval_fn(module, p, f, t, b),
    tables_fn=lambda p, f: p["ei"],
    hparams={"temp": hp.temp},
  )
  if gca.positions and layout == "inplace":
    switch = task.eval_data["test"].get("group/switch")
    if switch is not None and len(switch):
      print(
        f"ABXI: in-place evaluation layout (model.eval_domain_seq): {int(switch.sum())} of "
        f"{len(switch)} test cases ({switch.mean():.1%}) are switch cases, whose target-domain "
        "stream ends in padding; the GCA cells cannot reach them (metrics per group 'switch' / "
        "'stay'; the compact layout gives that slot the stream's last own item)",
        flush=True,
      )
  return task
