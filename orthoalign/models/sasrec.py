"""SASRec, the single-domain floor of CDSR papers, per domain ("dual") or on the merged timeline.

Faithful to the PyTorch port pmixer/SASRec.pytorch at 72ba89d (2021-06-09, `model.py` and
`main.py`; Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): the block of
layers.SASRecBlock, which LLM4CDSR's and CDSRNP's encoders here use too:
  * inputs E[item] * sqrt(d) + P[slot], slot = 0..L-1 of the left-padded window (padding slots
    included, `model.positions="slot"`), embedding dropout, then padding tokens zeroed;
  * `model.num_blocks` blocks Q = LN(x); x = Q + MHA(Q, x, x) (causal mask, no key-padding mask);
    x = FFN(LN(x)) with FFN(h) = h + conv(ReLU(conv(h))) (1x1 convolutions, dropout after each);
    x *= valid; a last LayerNorm (eps 1e-8 everywhere);
  * training: at every position with a next item, BCE with logits on <f_t, E[pos_t]> (label 1) and
    on <f_t, E[neg_t]> (label 0), one negative per position drawn uniformly from the catalogue
    outside the user's items, each term a mean over those positions; plus `model.l2_emb` times
    the Frobenius norm (not its square) of the item table;
  * scores: <f_last, E[item]>, the item table tied to the input;
  * initialisation: xavier_normal_ on every >= 2-D parameter (the item and position tables, the
    attention in-projection and out-projection, the 1x1 convolutions), torch's defaults for the
    rest (LayerNorm 1/0, attention biases 0, convolution biases U(+-1/sqrt(d))).

`model.streams`:
  * "dual": one such SASRec per domain, nothing shared, each over its own domain's window
    (data/domain_windows.py) with its own item table (local ids). A GCA cell between the two
    streams is then the only path for cross-domain information: cells gca<p>_A (the A stream
    queries B) and gca<p>_B at p = 0 (after the embeddings) and p = i (after block i), under the
    causal mask in merged time. Loss = loss_A + loss_B. A case of domain D is scored by D's
    stream at its last position.
  * "mixed": one SASRec over the merged timeline (data/windows.py) with one table of both domains'
    items (global ids); negatives from the whole catalogue. No second stream, so no GCA cell.

Flags whose defaults reproduce 72ba89d: `model.positions` ("slot"; "item" = orthoalign's own
per-item index 1..n, 1 = the oldest item kept, 0 on padding, as data/domain_windows.py gives it;
pmixer's later code gives a valid slot its slot index + 1 instead, which agrees with "item" only
on a full window), `model.pre_ln` (False;
True = the textbook pre-LN block, pmixer's later `--norm_first`).

Deviations, named:
  * Windows: a dual stream's window holds the last `max_len` items of the domain including the
    last one (whose target is "none"), so it trains max_len - 1 positions where pmixer trains
    max_len once a history is longer than the window; the merged window is pmixer's.
  * pmixer never zeroes the item table's row 0 at 72ba89d (`padding_idx=0` only freezes it); it
    reaches no score or loss there or here, so here it is whatever the initialiser drew.
  * Optimiser: the trainer's Adam(W) with betas (0.9, 0.999); pmixer uses Adam(lr 1e-3, betas
    (0.9, 0.98)). Evaluation: the trainer's protocols, not pmixer's 100 popularity-free negatives.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import domain_windows
from orthoalign.data import negatives
from orthoalign.data import windows
from orthoalign.models import gca as gca_lib
from orthoalign.models import gca_checks
from orthoalign.models import layers
from orthoalign.models import task as task_lib

Array = jax.Array

STREAMS = ("dual", "mixed")
POSITIONS = ("slot", "item")
REPLICA_HPARAMS = {}
_LN_EPS = 1e-8


class SASRec(nn.Module):
  """SASRec per domain or on the merged timeline (module docstring); attributes mirror `model.*`.

  Attributes:
    num_items_a, num_items_b: catalogue sizes (local ids 1..n per domain, 0 = padding).
    hidden, num_blocks, num_heads, dropout, max_len, ffn_size: the SASRec stack(s) (ffn_size 0 =
      hidden).
    streams: "dual" (streams "a" and "b") or "mixed" (stream "m", global ids).
    positions: "slot" or "item".
    pre_ln: textbook pre-LN blocks.
    gca_positions: GCA insertion points ("dual" only).
    gca: keyword arguments of every gca.GatedCrossAttention cell.
  """

  num_items_a: int
  num_items_b: int
  hidden: int = 50
  num_blocks: int = 2
  num_heads: int = 1
  dropout: float = 0.5
  max_len: int = 50
  ffn_size: int = 0
  streams: str = "dual"
  positions: str = "slot"
  pre_ln: bool = False
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def names(self) -> tuple[str, ...]:
    return ("a", "b") if self.streams == "dual" else ("m",)

  def setup(self):
    d = self.hidden
    n = {"a": self.num_items_a, "b": self.num_items_b, "m": self.num_items_a + self.num_items_b}
    names = self.names()
    self.item_emb = {
      s: self.param(f"item_emb_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in names
    }
    rows = self.max_len if self.positions == "slot" else self.max_len + 1
    self.pos_emb = {s: self.param(f"pos_emb_{s}", layers.xavier_normal, (rows, d)) for s in names}
    self.blocks = {
      s: [
        layers.SASRecBlock(
          d,
          self.num_heads,
          self.dropout,
          causal=True,
          ffn_inner=self.ffn_size,
          pre_ln=self.pre_ln,
          name=f"block_{s}{i + 1}",
        )
        for i in range(self.num_blocks)
      ]
      for s in names
    }
    self.last_ln = {s: nn.LayerNorm(epsilon=_LN_EPS, name=f"last_ln_{s}") for s in names}
    self.emb_dropout = nn.Dropout(self.dropout)
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)

  def _embed(self, s: str, ids: Array, positions: Array, train: bool) -> Array:
    if self.positions == "slot":
      positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
    e = self.item_emb[s][ids] * math.sqrt(self.hidden) + self.pos_emb[s][positions]
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def __call__(self, rows: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """Encodes the streams of a batch of windows.

    Args:
      rows: "dual": seq_a/seq_b, positions_a/_b, time_a/_b [B, L] (data/domain_windows.py);
        "mixed": seq, positions [B, L] (data/windows.py).
      train: enables dropout.

    Returns:
      {"f_a", "f_b"} or {"f_m"}: [B, L, d] final features (after the last LayerNorm); "cells": the
      GCA intermediates by cell name.
    """
    key = {"a": "_a", "b": "_b", "m": ""}
    ids = {s: rows[f"seq{key[s]}"] for s in self.names()}
    h = {s: self._embed(s, ids[s], rows[f"positions{key[s]}"], train) for s in self.names()}
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      h.update(gca_lib.exchange(self.cells, 0, h, rows, train=train, out=cells))
    for i in range(self.num_blocks):
      h = {s: self.blocks[s][i](h[s], ids[s] > 0, train=train) for s in self.names()}
      if i + 1 in self.gca_positions:
        h.update(gca_lib.exchange(self.cells, i + 1, h, rows, train=train, out=cells))
    return {**{f"f_{s}": self.last_ln[s](h[s]) for s in self.names()}, "cells": cells}


@dataclasses.dataclass(frozen=True)
class Hyper:
  """What the loss and scoring read besides the params."""

  num_items_a: int
  num_items_b: int
  streams: str
  l2_emb: float


def bce_pair(pos: Array, neg: Array, weight: Array) -> Array:
  """pmixer's loss: BCEWithLogits(pos, 1) + BCEWithLogits(neg, 0), each a mean over weighted tokens.

  Args:
    pos, neg: logits [B, L]; weight: bool [B, L] (positions with a next item).
  """
  w = weight.astype(pos.dtype)
  count = jnp.maximum(jnp.sum(w), 1.0)
  return (jnp.sum(jax.nn.softplus(-pos) * w) + jnp.sum(jax.nn.softplus(neg) * w)) / count


def _stream_ranges(hp: Hyper) -> dict[str, tuple[int, int, str]]:
  """Per stream: (global offset of its local ids, catalogue size, suffix of its window keys)."""
  na, nb = hp.num_items_a, hp.num_items_b
  if hp.streams == "dual":
    return {"a": (0, na, "_a"), "b": (na, nb, "_b")}
  return {"m": (0, na + nb, "")}


def train_negatives(rng: Array, batch: dict[str, Array], hp: Hyper) -> dict[str, Array]:
  """pmixer's `random_neq`: per stream, one negative per position [B, L] (local ids), uniform over
  the stream's catalogue minus the user's training items (batch["hist"]).
  """
  out = {}
  for s, (offset, n, key) in _stream_ranges(hp).items():
    pos = batch[f"pos{key}"]
    neg = negatives.sample_distinct_excluding(
      jax.random.fold_in(rng, offset), pos.shape, offset + 1, offset + n + 1, batch["hist"], 1
    )
    out[s] = neg[..., 0] - offset
  return out


def loss_fn(
  module: SASRec,
  hp: Hyper,
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
  negs: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """SASRec's training loss on one batch (sum over streams); batch["row_valid"] masks padded rows.

  `negs` replaces the drawn negatives (`train_negatives`), for the port check.

  Returns:
    (loss, metrics) with metrics "loss" and "loss_<stream>" (and the GCA penalty's, where set).
  """
  r_drop, r_neg = jax.random.split(rng)
  negs = train_negatives(r_neg, batch, hp) if negs is None else negs
  variables = {"params": params, **frozen}
  out = module.apply(variables, batch, train=True, rngs={"dropout": r_drop})
  row = batch["row_valid"][:, None]
  loss, metrics = 0.0, {}
  for s, (_, _, key) in _stream_ranges(hp).items():
    table = params[f"item_emb_{s}"]
    pos, neg, f = batch[f"pos{key}"], negs[s], out[f"f_{s}"]
    part = bce_pair(jnp.sum(f * table[pos], -1), jnp.sum(f * table[neg], -1), (pos > 0) & row)
    if hp.l2_emb:
      part = part + hp.l2_emb * jnp.sqrt(jnp.sum(jnp.square(table)))
    metrics[f"loss_{s}"] = part
    loss = loss + part
  metrics["loss"] = loss
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_fn(
  module: SASRec, hp: Hyper, params: Any, frozen: Any, tables: Array, batch: dict[str, Array]
) -> task_lib.EvalOutputs:
  """Scores of the frozen candidates and of every item by global id, from the last position.

  `tables` is the [nA+nB+1, d] table by global id (`tables_fn`); "dual" scores a case of domain D
  with D's stream, whose local ids are the global ones minus D's offset.
  """
  out = module.apply({"params": params, **frozen}, batch, train=False)
  cand = batch["cand"]
  if hp.streams == "mixed":
    v = out["f_m"][:, -1]
    sampled = jnp.einsum("bd,bcd->bc", v, tables[cand])
  else:
    is_b = batch["domain"] == 1
    v = jnp.where(is_b[:, None], out["f_b"][:, -1], out["f_a"][:, -1])
    # By global id: the both-domain table (A local j = global j, B local j = global nA + j).
    sampled = jnp.einsum("bd,bcd->bc", v, tables[jnp.clip(cand, 0, tables.shape[0] - 1)])
  return task_lib.EvalOutputs(sampled_scores=sampled, full_scores=v @ tables.T, cells=out["cells"])


# ---------------------------------------------------------------------------------------------
# Assembly


def default_config() -> ml_collections.ConfigDict:
  """SASRec's `model.*` keys with pmixer/SASRec.pytorch's defaults at 72ba89d (`main.py`)."""
  m = ml_collections.ConfigDict()
  m.name = "sasrec"
  m.label = "pmixer/SASRec.pytorch at 72ba89d, per domain (dual) or on the merged timeline (mixed)"
  # "dual": one SASRec per domain, no shared parameters (GCA cells are the only cross-domain path);
  # "mixed": one SASRec over the merged timeline (no GCA cells).
  m.streams = "dual"
  m.hidden_size = 50
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.5
  m.max_len = 50
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size (pmixer's). Parameter-matched
  # comparisons grow it (models/param_count.py).
  m.ffn_size = 0
  # Position index: "slot" (0..L-1 of the padded window, pmixer 72ba89d) or "item" (1..n over the
  # valid items, 1 = the oldest kept, 0 on padding; orthoalign's own).
  m.positions = "slot"
  # Textbook pre-LN blocks (x + MHA(LN x), x + FFN(LN x)) instead of pmixer's Q = LN(x); Q + MHA.
  m.pre_ln = False
  # Weight of the item table's Frobenius norm in the loss (pmixer's l2_emb).
  m.l2_emb = 0.0
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k not in ("name", "label"))


def validate(config: ml_collections.ConfigDict) -> None:
  """SASRec's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, an unknown choice, GCA positions on "mixed" or outside
      0..num_blocks, heads that do not divide the width, a value out of
      range (naming the key, its value and what is allowed).
  """
  dicts.require(config, _KEYS, "SASRec")
  m = config.model
  for key, choices in (("streams", STREAMS), ("positions", POSITIONS)):
    if m[key] not in choices:
      raise errors.ConfigError(f"config key model.{key}={m[key]!r}; valid choices: {list(choices)}")
  for key in ("model.hidden_size", "model.num_blocks", "model.num_heads", "model.max_len"):
    dicts.check_int(config, key, 1)
  dicts.check_int(config, "model.ffn_size", 0)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  if m.streams == "mixed" and config.gca.positions:
    raise errors.ConfigError(
      f"config key gca.positions={tuple(config.gca.positions)}: model.streams='mixed' has one "
      "stream and so no GCA cell; use model.streams='dual' or gca.positions=()"
    )
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"SASRec with model.num_blocks={m.num_blocks}"
  )
  if not isinstance(m.pre_ln, bool):
    raise errors.ConfigError(f"config key model.pre_ln={m.pre_ln!r} must be True or False")
  dicts.check_fraction(config, "model.dropout")
  if not dicts.is_finite_number(m.l2_emb) or m.l2_emb < 0:
    raise errors.ConfigError(f"config key model.l2_emb={m.l2_emb!r} must be a finite number >= 0")


def make_module(
  ds: dataset_lib.CDSRDataset,
  m: Any,
  gca_positions: tuple[int, ...] = (),
  gca: dict[str, Any] | None = None,
) -> SASRec:
  """The SASRec module for a catalogue and `config.model`."""
  return SASRec(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    hidden=int(m.hidden_size),
    num_blocks=int(m.num_blocks),
    num_heads=int(m.num_heads),
    dropout=float(m.dropout),
    max_len=int(m.max_len),
    ffn_size=int(m.ffn_size),
    streams=m.streams,
    positions=m.positions,
    pre_ln=bool(m.pre_ln),
    gca_positions=tuple(gca_positions),
    gca=dict(gca or {}),
  )


def build(ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict) -> task_lib.Task:
  """Builds the SASRec task (module, training and evaluation windows).

  Raises:
    ConfigError: model.streams="mixed" on data without a merged timeline.
  """
  m = config.model
  dual = m.streams == "dual"
  if not dual:
    task_lib.require_merged_timeline(ds, config, "model.streams='mixed' reads the merged sequence")
  gca = task_lib.gca_settings(config)
  module = make_module(ds, m, gca.positions, gca.cell)
  hp = Hyper(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    streams=m.streams,
    l2_emb=float(m.l2_emb),
  )
  if dual:
    train = domain_windows.train_windows(ds, m.max_len)
    eval_windows = lambda d, split: domain_windows.eval_windows(d, split, m.max_len)
  else:
    full = windows.train_windows(ds, m.max_len)
    train = {k: full[k] for k in ("seq", "pos", "positions", "hist", "user")}
    eval_windows = lambda d, split: windows.eval_windows(d, split, m.max_len)

  def tables_fn(params: Any, frozen: Any) -> Array:
    del frozen
    if dual:  # concatenated once per evaluation, not per batch of scores (train.item_shards)
      return jnp.concatenate([params["item_emb_a"], params["item_emb_b"][1:]])
    return params["item_emb_m"]

  return task_lib.assemble(
    ds,
    config,
    module=module,
    train_data=train,
    eval_windows=eval_windows,
    loss_fn=lambda p, f, b, r, h=None: loss_fn(module, hp, p, f, b, r, h),
    eval_fn=lambda p, f, t, b: eval_fn(module, hp, p, f, t, b),
    tables_fn=tables_fn,
  )
