"""CDSRNP as a SPECIFICATION-LEVEL REIMPLEMENTATION, in Flax Linen, with GCA insertion points.

CDSRNP ("Cross-Domain Sequential Recommendation via Neural Process", Li, Cao, Gao, Liu, Pang;
arXiv 2410.13588) has no public code and only its abstract could be read. This module implements
the specification in reference/cdsrnp.md ("The specification orthoalign implements"), built from
the abstract and its open-source relatives (TaNP's neural process, C2DSR's encoders); it is NOT the
paper's model and claims no parity with the paper's numbers.

Model (spec items 1-6; d = model.hidden_size):
  * Encoders: one causal SASRec stack per domain (layers.SASRecBlock, pmixer style) over that
    domain's own window (data/domain_windows.py) with its own item table E_A [nA+1, d] / E_B
    [nB+1, d] (inputs scaled by sqrt(d), learned positions, final LayerNorm). Optional mixed
    encoder (`model.mixed_encoder`, default False; merged-timeline data only) over the merged
    window with a global table; its state before each target is added to the user vector (C2DSR's
    h_mix + h_X).
  * Context pairs: for every user row i and direction A->B, x = h_i^A (the A encoder's last state)
    and y = B-side information: h_i^B (`model.pair_y="sequence"`, default) or E_B[last B item]
    ("next_item"); B->A likewise. Each pair is encoded twice by 3-layer ReLU MLPs (TaNP): s_i for
    the latent path and u_i for the deterministic (adaptive-layer) path, one MLP pair per direction.
  * Latent z: a Gaussian from a permutation-invariant pooling of pair encodings (`model.pooling`,
    "mean" or "attention" = softmax over a learned score of each element), then (mu, log sigma^2)
    = Heads(ReLU(W r)) (TaNP). `model.latent="shared"` (default): one z from both directions' pairs
    scores both domains; "directional": z_{A->B} (from A->B pairs) scores A and z_{B->A} scores B,
    each with its own pooling and heads.
  * Adaptive layer on each query token of stream D, reading the support set's u of direction
    D->D' (whose x lives in D's space): `model.adapt="attention"` (default; spec 4b)
    H~ = H + softmax((H W_q)(U_S W_k)^T / sqrt(d)) (U_S W_v), then v = h~ + W_z z;
    "film" (spec 4a) t = mean_S u, optionally through a K-slot memory (`model.memory_slots`, 0 =
    none; Student-t assignment with `model.memory_tau`), H~ = H * tanh(Gamma t) + tanh(B t),
    then v = MLP([h~; z]).
  * Scoring of domain D: <v, E_D[j]> (`model.scoring="dot"`, default, tied to the input table) or a
    separate output table plus bias per domain ("linear", C2DSR's lin_X).

Episode (spec item 2), every training step: the support set S is `model.support_size` users drawn
without replacement, with the step's rng, from the OVERLAPPED training users (the pool,
optionally capped at `model.support_pool` users); the batch is the query set. A support user who is
also in the batch is dropped from that episode's support set, so no query user's data reaches S.

Which targets feed the latent (the leakage argument):
  * Prior p(z | S): the support set's pairs only.
  * Posterior of query user i, q_i(z | S, Q+ \\ {i}): S plus the pairs of the OTHER query users in
    Q+. Q+ holds the overlapped query users (their pair is as above) and, with
    `model.posterior_single_domain=True` (default False), the single-domain query users, whose
    D->D' pair then takes y = E_D[their last D item] (their own-domain next-item target, the
    spec's reading). User i's own pair, which holds its own loss targets (every item of a seq2seq
    window but the first is the target of some position, and the last states read them all), never
    feeds the z that scores user i: the posterior is leave-one-out, one per query user (a masked
    pooling over the same element set). Everything else user i's scores read is its own causal
    encoder state (self-attention masked by position, GCA by merged time), S (which never holds a
    query user) and the parameters. Other query users' targets do feed q_i: they are not user i's.
    Exception, warned about in `build`: on data without a merged timeline every GCA query sees
    every key, so with two or more GCA positions a training position can read its own domain's
    later items through the other stream (evaluation inputs never hold the target).
  * Evaluation: an evaluated user may be in the frozen support set (leave-one-out splits evaluate
    training users); the set holds training prefixes only, which never contain a valid or test
    target.
  * z_i = mu_q,i + sigma_q,i * eps in training (reparameterised); the prior mean at evaluation
    (never sampled: evaluation reads no rng).
  * Departure from the neural-process ELBO, deliberate: there the posterior contains the very
    targets it helps predict (and the KL pays for it); here it never does.

Loss (spec item 6): sum over domains of the next-item loss at every position of the domain stream
(`model.loss="full"`, default: softmax cross-entropy over the domain's items, averaged over target
tokens; "sampled": softmax over the target and `model.n_neg` negatives of the domain that avoid the
user's training prefix) + beta * mean over query users of KL(q_i || p), the closed form for
diagonal Gaussians summed over latent dimensions (and over the two latents when directional).
beta (`model.beta`, default 1) is a replica hyperparameter. No auxiliary term (the spec's
optional gamma term; TaNP's clustering loss is not used).

Evaluation: one support set, frozen: `model.support_size` overlapped TRAINING users drawn with numpy
seed `model.eval_support_seed`, their training prefixes encoded once per evaluation (`tables_fn`);
z = the prior mean from them. Scores: the target domain's stream at its last position.

GCA (not in the original): cells `gca<p>_A` / `gca<p>_B` at p = 0 (right after the embeddings) and
p = i (after encoder block i); the A stream queries the B stream and vice versa, under the causal
mask in merged time (no merged timeline: every query sees every key, see data/domain_windows.py).
A row with no token in the other domain (a single-domain user) has nothing to attend to: its
stream leaves the cell exactly unchanged (gca.py gives a query without keys no update; the
`where` below also covers `gca.layernorm="post"`). Such rows' tokens have x_mask False in the
cell's intermediates, so the alignment statistics (|cos(X, X')|, alpha) describe only tokens that
saw at least one key of the other domain, i.e. overlapped users; single-domain users are counted
in the ranking metrics only. Support users are encoded with the same encoders, cells included, but
only the query batch's cell intermediates are returned.

Fixed choices (not keys): dropout `model.dropout` on embeddings, blocks and the pair MLPs; the
pair MLPs have width d; TaNP's memory unit uses ||t - M_k|| as the spec writes it; the set
encoders see encoder states with gradients (support users are re-encoded every step); the training
support pool and the eval support set are compile-time constants of the programs (cap large
datasets' pools with `model.support_pool`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import domain_windows
from orthoalign.data import negatives
from orthoalign.models import gca as gca_lib
from orthoalign.models import gca_checks
from orthoalign.models import layers
from orthoalign.models import task as task_lib

Array = jax.Array

ADAPTS = ("attention", "film")
LATENTS = ("shared", "directional")
POOLINGS = ("mean", "attention")
PAIR_YS = ("sequence", "next_item")
LOSSES = ("full", "sampled")
SCORINGS = ("dot", "linear")
DIRECTIONS = ("ab", "ba")  # A->B: x = h^A, y = B side (read by the A stream); B->A likewise
_OTHER = {"a": "b", "b": "a"}
_DIR_OF = {"a": "ab", "b": "ba"}
_LN_EPS = 1e-8


def stream_keys(mixed: bool) -> tuple[str, ...]:
  """The per-row input arrays the encoders read."""
  keys = tuple(f"{k}_{s}" for s in ("a", "b") for k in ("seq", "positions", "time"))
  return keys + (("seq_m", "positions_m") if mixed else ())


class SetMLP(nn.Module):
  """TaNP's pair encoder: Dense-ReLU-Dropout, Dense-ReLU-Dropout, Dense (width d)."""

  d: int
  dropout: float

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    for i in range(2):
      x = nn.relu(layers.torch_dense(self.d, x.shape[-1], name=f"dense_{i}")(x))
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return layers.torch_dense(self.d, self.d, name="dense_2")(x)


class GaussianHead(nn.Module):
  """(mu, log sigma^2) = Heads(ReLU(W r)) (TaNP's latent encoder); optional attention pooling."""

  d: int
  latent_dim: int
  pooling: str = "mean"

  def setup(self):
    self.hidden = layers.torch_dense(self.d, self.d, name="hidden")
    self.mu = layers.torch_dense(self.latent_dim, self.d, name="mu")
    self.logvar = layers.torch_dense(self.latent_dim, self.d, name="logvar")
    if self.pooling == "attention":
      self.score_hidden = layers.torch_dense(self.d, self.d, name="score_hidden")
      self.score = layers.torch_dense(1, self.d, name="score")

  def pool(self, elems: Array, mask: Array) -> Array:
    """Permutation-invariant pooling of elems [M, d] for each row of mask [R, M] -> [R, d].

    Rows without any element pool to 0.
    """
    w = mask.astype(elems.dtype)
    if self.pooling == "mean":
      return (w @ elems) / jnp.maximum(jnp.sum(w, -1, keepdims=True), 1.0)
    a = self.score(jnp.tanh(self.score_hidden(elems)))[:, 0]  # [M]
    logits = jnp.where(mask, a[None, :], jnp.finfo(elems.dtype).min)
    probs = jnp.where(mask, jax.nn.softmax(logits, -1), 0.0)
    return probs @ elems

  def __call__(self, elems: Array, mask: Array) -> tuple[Array, Array]:
    h = nn.relu(self.hidden(self.pool(elems, mask)))
    return self.mu(h), self.logvar(h)


def gaussian_kl(mu_q: Array, logvar_q: Array, mu_p: Array, logvar_p: Array) -> Array:
  """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) of diagonal Gaussians, summed over the last axis.

  The closed form TaNP codes: 1/2 sum[(sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1 + log sigma_p^2
  - log sigma_q^2]. Shapes broadcast; returns [...] (the last axis summed).
  """
  var_q, var_p = jnp.exp(logvar_q), jnp.exp(logvar_p)
  return 0.5 * jnp.sum((var_q + (mu_q - mu_p) ** 2) / var_p - 1.0 + logvar_p - logvar_q, -1)


class CDSRNP(nn.Module):
  """The CDSRNP specification (see the module docstring); attributes mirror `config.model`.

  Attributes:
    num_items_a, num_items_b: catalog sizes (local ids 1..n per domain, 0 = padding).
    hidden: model width d.
    num_blocks, num_heads, dropout, max_len, ffn_size: the SASRec stacks (ffn_size 0 = d).
    latent_dim: width of z.
    latent: "shared" or "directional".
    pooling: "mean" or "attention".
    pair_y: "sequence" or "next_item".
    adapt: "attention" or "film".
    memory_slots, memory_tau: FiLM's memory unit (0 slots = none).
    scoring: "dot" or "linear".
    mixed: build the mixed encoder.
    gca_positions: GCA insertion points (0 = after the embeddings, i = after block i).
    gca: keyword arguments of every gca.GatedCrossAttention cell.
  """

  num_items_a: int
  num_items_b: int
  hidden: int = 64
  num_blocks: int = 2
  num_heads: int = 1
  dropout: float = 0.2
  max_len: int = 20
  ffn_size: int = 0
  latent_dim: int = 64
  latent: str = "shared"
  pooling: str = "mean"
  pair_y: str = "sequence"
  adapt: str = "attention"
  memory_slots: int = 0
  memory_tau: float = 1.0
  scoring: str = "dot"
  mixed: bool = False
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    d = self.hidden
    n = {"a": self.num_items_a, "b": self.num_items_b, "m": self.num_items_a + self.num_items_b}
    streams = ("a", "b", "m") if self.mixed else ("a", "b")
    self.item_emb = {
      s: self.param(f"item_emb_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in streams
    }
    self.pos_emb = {
      s: nn.Embed(self.max_len + 1, d, embedding_init=layers.xavier_normal, name=f"pos_emb_{s}")
      for s in streams
    }
    self.blocks = {
      s: [
        layers.SASRecBlock(
          d,
          self.num_heads,
          self.dropout,
          causal=True,
          ffn_inner=self.ffn_size,
          name=f"block_{s}{i + 1}",
        )
        for i in range(self.num_blocks)
      ]
      for s in streams
    }
    self.last_ln = {s: nn.LayerNorm(epsilon=_LN_EPS, name=f"last_ln_{s}") for s in streams}
    self.emb_dropout = nn.Dropout(self.dropout)
    bad = [p for p in self.gca_positions if not 0 <= p <= self.num_blocks]
    if bad:  # `validate` names this for configs; this guards direct use
      raise errors.ConfigError(
        f"gca.positions={list(self.gca_positions)}: CDSRNP has positions 0..{self.num_blocks} "
        "(0 = after the embeddings, i = after block i)"
      )
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)
    self.pair_enc = {k: SetMLP(d, self.dropout, name=f"pair_{k}") for k in DIRECTIONS}
    self.task_enc = {k: SetMLP(d, self.dropout, name=f"task_{k}") for k in DIRECTIONS}
    names = ("z",) if self.latent == "shared" else ("z_ab", "z_ba")
    self.heads = {
      k: GaussianHead(d, self.latent_dim, self.pooling, name=f"head_{k}") for k in names
    }
    if self.adapt == "attention":
      self.attn = {
        s: {
          k: nn.Dense(d, kernel_init=layers.xavier_normal, name=f"adapt_{k}_{s}")
          for k in ("q", "k", "v")
        }
        for s in ("a", "b")
      }
      self.z_proj = {
        s: layers.torch_dense(d, self.latent_dim, name=f"z_proj_{s}") for s in ("a", "b")
      }
    else:
      self.film = {
        s: {k: layers.torch_dense(d, d, name=f"film_{k}_{s}") for k in ("gamma", "beta")}
        for s in ("a", "b")
      }
      if self.memory_slots:
        self.memory = {
          s: self.param(f"memory_{s}", layers.xavier_normal, (self.memory_slots, d))
          for s in ("a", "b")
        }
      self.fuse = {
        s: [
          layers.torch_dense(d, d + self.latent_dim, name=f"fuse_0_{s}"),
          layers.torch_dense(d, d, name=f"fuse_1_{s}"),
        ]
        for s in ("a", "b")
      }
    if self.scoring == "linear":
      self.out_table = {
        s: self.param(f"out_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in ("a", "b")
      }
      self.out_bias = {
        s: self.param(f"out_bias_{s}", nn.initializers.zeros, (n[s] + 1,)) for s in ("a", "b")
      }

  # -- encoders -------------------------------------------------------------------------------
  def _embed(self, s: str, ids: Array, positions: Array, train: bool) -> Array:
    e = self.item_emb[s][ids] * math.sqrt(self.hidden) + self.pos_emb[s](positions)
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def _cross(
    self, p: int, h: dict[str, Array], rows: dict[str, Array], train: bool, cells: dict[str, Any]
  ) -> None:
    """GCA position p: A queries B and B queries A (simultaneously), in place."""
    h.update(gca_lib.exchange(self.cells, p, h, rows, train=train, out=cells))

  def encode(
    self, rows: dict[str, Array], *, train: bool
  ) -> tuple[dict[str, Array], dict[str, Any]]:
    """Encodes the per-domain streams (and the mixed one) of a set of rows.

    Args:
      rows: seq_*, positions_*, time_* [N, L] (see data/domain_windows.py).
      train: enables dropout.

    Returns:
      ({"a", "b"[, "m"]: [N, L, d] final states, 0 on padding}, GCA intermediates by cell name).
    """
    streams = ("a", "b", "m") if self.mixed else ("a", "b")
    valid = {s: rows[f"seq_{s}"] > 0 for s in streams}
    h = {s: self._embed(s, rows[f"seq_{s}"], rows[f"positions_{s}"], train) for s in streams}
    cells: dict[str, Any] = {}
    if 0 in self.gca_positions:
      self._cross(0, h, rows, train, cells)
    for i in range(self.num_blocks):
      for s in streams:
        h[s] = self.blocks[s][i](h[s], valid[s], train=train)
      if i + 1 in self.gca_positions:
        self._cross(i + 1, h, rows, train, cells)
    return {s: self.last_ln[s](h[s]) * valid[s][..., None] for s in streams}, cells

  # -- neural-process parts -------------------------------------------------------------------
  def pair_features(self, states: dict[str, Array], rows: dict[str, Array]) -> dict[str, Array]:
    """[x; y] per direction for every row, [N, 2d]; see the module docstring.

    For a single-domain row the A->B (B->A) pair takes y = E_A[last A item] (E_B[...]): only read
    when `posterior_single_domain` admits such rows to Q+.
    """
    last = {s: states[s][:, -1] for s in ("a", "b")}  # right-aligned: last = most recent
    item = {s: self.item_emb[s][rows[f"seq_{s}"][:, -1]] for s in ("a", "b")}
    has = {s: rows[f"seq_{s}"][:, -1] > 0 for s in ("a", "b")}
    y_other = last if self.pair_y == "sequence" else item
    out = {}
    for s in ("a", "b"):
      o = _OTHER[s]
      y = jnp.where(has[o][:, None], y_other[o], item[s])
      out[_DIR_OF[s]] = jnp.concatenate([last[s], y], -1)
    return out

  def encode_pairs(
    self, states: dict[str, Array], rows: dict[str, Array], *, train: bool
  ) -> tuple[dict[str, Array], dict[str, Array]]:
    """(s, u): latent-path and deterministic-path encodings per direction, [N, d] each."""
    phi = self.pair_features(states, rows)
    s = {k: self.pair_enc[k](phi[k], train=train) for k in DIRECTIONS}
    u = {k: self.task_enc[k](phi[k], train=train) for k in DIRECTIONS}
    return s, u

  def latents(self, s: dict[str, Array], masks: dict[str, Array]) -> dict[str, tuple[Array, Array]]:
    """{latent name: (mu, logvar) [R, dz]} from element encodings s[dir] [N, d] and membership
    masks[dir] [R, N] (which rows' pairs each of the R distributions reads).
    """
    if self.latent == "shared":
      elems = jnp.concatenate([s["ab"], s["ba"]], 0)
      return {"z": self.heads["z"](elems, jnp.concatenate([masks["ab"], masks["ba"]], -1))}
    return {f"z_{k}": self.heads[f"z_{k}"](s[k], masks[k]) for k in DIRECTIONS}

  def latent_of(self, stream: str) -> str:
    return "z" if self.latent == "shared" else f"z_{_DIR_OF[stream]}"

  def adapt_tokens(
    self, stream: str, h: Array, valid: Array, z: Array, u_support: Array, support_ok: Array
  ) -> Array:
    """User vectors v [B, T, d] of stream tokens h [B, T, d] given z [B, dz] and the support set's
    deterministic encodings u_support [S, d] (of direction stream->other), support_ok bool [S].
    """
    d = self.hidden
    if self.adapt == "attention":
      p = self.attn[stream]
      q = p["q"](h)  # [B, T, d]
      k, v = p["k"](u_support), p["v"](u_support)  # [S, d]
      logits = jnp.einsum("btd,sd->bts", q, k) / math.sqrt(d)
      mask = jnp.broadcast_to(support_ok[None, None, :], logits.shape)
      logits = jnp.where(mask, logits, jnp.finfo(h.dtype).min)
      probs = jnp.where(mask, jax.nn.softmax(logits, -1), 0.0)
      h_tilde = h + probs @ v
      out = h_tilde + self.z_proj[stream](z)[:, None, :]
    else:
      w = support_ok.astype(h.dtype)
      t = (w @ u_support) / jnp.maximum(jnp.sum(w), 1.0)  # [d]
      if self.memory_slots:
        m = self.memory[stream]
        tau = self.memory_tau
        dist = jnp.sqrt(jnp.sum((t[None, :] - m) ** 2, -1) + 1e-12)  # [K]
        c = (1.0 + dist / tau) ** (-(tau + 1.0) / 2.0)
        t = t + (c / jnp.sum(c)) @ m
      f = self.film[stream]
      h_tilde = h * jnp.tanh(f["gamma"](t)) + jnp.tanh(f["beta"](t))
      zz = jnp.broadcast_to(z[:, None, :], h.shape[:2] + z.shape[-1:])
      fuse = self.fuse[stream]
      out = fuse[1](nn.relu(fuse[0](jnp.concatenate([h_tilde, zz], -1))))
    return out * valid[..., None]

  def output_table(self, stream: str) -> tuple[Array, Array]:
    """Output vectors [n+1, d] and biases [n+1] of a domain's items (local ids)."""
    if self.scoring == "linear":
      return self.out_table[stream], self.out_bias[stream]
    table = self.item_emb[stream]
    return table, jnp.zeros(table.shape[:1], table.dtype)

  def tables(self) -> dict[str, tuple[Array, Array]]:
    return {s: self.output_table(s) for s in ("a", "b")}

  def __call__(self, batch: dict[str, Array], *, train: bool) -> dict[str, Any]:
    """The encoders alone (named intermediates for inspection; training uses `episode`).

    Args:
      batch: stream arrays (see `stream_keys`) [B, L].
      train: enables dropout (rng "dropout").

    Returns:
      {"h_a", "h_b"[, "h_m"]: [B, L, d] per-token encoder states (0 on padding); "cells": the GCA
      intermediates by cell name}.
    """
    states, cells = self.encode(batch, train=train)
    return {**{f"h_{s}": h for s, h in states.items()}, "cells": cells}

  # -- training forward -----------------------------------------------------------------------
  def episode(
    self,
    query: dict[str, Array],
    support: dict[str, Array],
    support_ok: Array,
    row_valid: Array,
    posterior_single_domain: bool = False,
    person: Array | None = None,
    *,
    train: bool,
  ) -> dict[str, Any]:
    """One episode: the query batch scored with the support set.

    Args:
      query: stream arrays (stream_keys) of the B query rows, plus mix_idx_a/b with the mixed
        encoder.
      support: stream arrays of the S support rows (overlapped users).
      support_ok: bool [S]; False drops a support row (e.g. a user who is also in the batch).
      row_valid: bool [B]; padding rows are excluded from every posterior.
      posterior_single_domain: single-domain query users join Q+ (see the module docstring).
      person: int [B] the person of each query row (`person_ids`); query rows of the same person
        (the open-world CSVs repeat a user with the other target domain) never feed each other's
        posterior. None = every row its own person.
      train: dropout and a sampled z (rng "latent") vs. no dropout and z = posterior mean.

    Returns:
      {"v_a", "v_b": [B, L, d] user vectors per token; "mu_q", "logvar_q": {latent: [B, dz]};
       "mu_p", "logvar_p": {latent: [1, dz]}; "kl": [B]; "z": {latent: [B, dz]}; "cells"}.
    """
    b = query["seq_a"].shape[0]
    n_sup = support["seq_a"].shape[0]
    keys = stream_keys(self.mixed)
    rows = {k: jnp.concatenate([query[k], support[k]], 0) for k in keys}
    states, cells = self.encode(rows, train=train)
    s, u = self.encode_pairs(states, rows, train=train)
    has = {x: rows[f"seq_{x}"][:, -1] > 0 for x in ("a", "b")}
    is_query = jnp.arange(b + n_sup) < b
    ok = jnp.concatenate([row_valid, support_ok], 0)
    prior, post = {}, {}
    for x in ("a", "b"):
      k = _DIR_OF[x]
      pair = has[x] & has[_OTHER[x]]
      if posterior_single_domain:
        pair = pair | (has[x] & is_query)
      elem = ok & pair
      prior[k] = (elem & ~is_query)[None, :]  # [1, N]
      # Leave-one-out: query row i's posterior never reads its own pair.
      post[k] = elem[None, :] & (jnp.arange(b)[:, None] != jnp.arange(b + n_sup)[None, :])
      if person is not None:
        same = person[:, None] == person[None, :]  # [B, B]
        post[k] = post[k] & ~jnp.pad(same, ((0, 0), (0, n_sup)))
    p_stats = self.latents(s, prior)
    q_stats = self.latents(s, post)
    kl = 0.0
    z = {}
    for name, (mu_q, lv_q) in q_stats.items():
      mu_p, lv_p = p_stats[name]
      kl = kl + gaussian_kl(mu_q, lv_q, mu_p, lv_p)
      if train:
        eps = jax.random.normal(self.make_rng("latent"), mu_q.shape, mu_q.dtype)
        z[name] = mu_q + jnp.exp(0.5 * lv_q) * eps
      else:
        z[name] = mu_q
    out = {"kl": kl, "z": z, "cells": cells}
    for tag, stats in (("q", q_stats), ("p", p_stats)):
      out[f"mu_{tag}"] = {k: v[0] for k, v in stats.items()}
      out[f"logvar_{tag}"] = {k: v[1] for k, v in stats.items()}
    for x in ("a", "b"):
      h = states[x][:b]
      v = self.adapt_tokens(
        x, h, query[f"seq_{x}"] > 0, z[self.latent_of(x)], u[_DIR_OF[x]][b:], support_ok
      )
      if self.mixed:
        idx = query[f"mix_idx_{x}"]
        mix = jnp.take_along_axis(states["m"][:b], jnp.maximum(idx, 0)[..., None], 1)
        v = v + mix * (idx >= 0)[..., None]
      out[f"v_{x}"] = v
    return out

  # -- evaluation -----------------------------------------------------------------------------
  def support_summary(self, support: dict[str, Array]) -> dict[str, Any]:
    """The frozen evaluation support set, encoded once: u per direction [S, d] and the prior mean
    per latent [dz].
    """
    states, _ = self.encode(support, train=False)
    s, u = self.encode_pairs(states, support, train=False)
    n = support["seq_a"].shape[0]
    full = {k: jnp.ones((1, n), bool) for k in DIRECTIONS}  # support rows are overlapped
    mu = {name: m[0] for name, (m, _) in self.latents(s, full).items()}
    return {"u": u, "mu_p": mu, "ok": jnp.ones((n,), bool)}

  def eval_vectors(self, batch: dict[str, Array], summary: dict[str, Any]) -> dict[str, Any]:
    """User vectors at the last position of each domain stream, z = the prior mean: v_a, v_b
    [B, d] and the GCA intermediates.
    """
    states, cells = self.encode(batch, train=False)
    out = {"cells": cells}
    b = batch["seq_a"].shape[0]
    for x in ("a", "b"):
      z = jnp.broadcast_to(summary["mu_p"][self.latent_of(x)], (b, self.latent_dim))
      h = states[x][:, -1:]
      v = self.adapt_tokens(
        x, h, jnp.ones((b, 1), bool), z, summary["u"][_DIR_OF[x]], summary["ok"]
      )[:, 0]
      if self.mixed:
        v = v + states["m"][:, -1]
      out[f"v_{x}"] = v
    return out


# ---------------------------------------------------------------------------------------------
# Loss

# Shape-keeping hyperparameters that replicas of one program may vary (config.sweep.model.<k>),
# with the values they may take: beta weighs a loss term.
REPLICA_HPARAMS = {"beta": dicts.NON_NEGATIVE}


@dataclasses.dataclass(frozen=True)
class Hyper:
  """Static settings of one CDSRNP run (not vmapped); beta is the config's value (the default of
  the replica hyperparameter).
  """

  num_items_a: int
  num_items_b: int
  beta: float = 1.0
  support_size: int = 32
  loss: str = "full"
  n_neg: int = 100
  posterior_single_domain: bool = False


def next_item_loss(
  v: Array,
  table: Array,
  bias: Array,
  target: Array,
  weight: Array,
  hp: Hyper,
  rng: Array,
  hist: Array,
  offset: int,
) -> Array:
  """Mean over weighted tokens of the next-item softmax loss of one domain.

  Args:
    v: user vectors [B, L, d]; table/bias: the domain's output vectors [n+1, d] and biases [n+1].
    target: local ids [B, L] (0 = none); weight: bool [B, L].
    hp: loss "full" (softmax over items 1..n) or "sampled" (target + hp.n_neg distinct negatives of
      the domain outside `hist`).
    rng: negatives' key; hist: [B, H] sorted global ids; offset: the domain's global offset.
  """
  if hp.loss == "full":
    logits = v @ table.T + bias
    logits = logits.at[..., 0].set(jnp.finfo(logits.dtype).min)  # padding is no item
    per = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), target[..., None], -1)[..., 0]
  else:
    n = table.shape[0] - 1
    neg = (
      negatives.sample_distinct_excluding(
        rng, target.shape, offset + 1, offset + n + 1, hist, hp.n_neg
      )
      - offset
    )
    ids = jnp.concatenate([target[..., None], neg], -1)  # [B, L, 1+N]
    logits = jnp.einsum("bld,blnd->bln", v, table[ids]) + bias[ids]
    per = -jax.nn.log_softmax(logits, -1)[..., 0]
  per = jnp.where(weight, per, 0.0)  # positions without a target score the padding id
  return jnp.sum(per) / jnp.maximum(jnp.sum(weight.astype(per.dtype)), 1.0)


def draw_support(
  rng: Array, pool: dict[str, np.ndarray], size: int, batch: dict[str, Array]
) -> tuple[dict[str, Array], Array]:
  """An episode's support set: `size` pool rows without replacement; a row whose person (user) is
  in the batch (a valid row) is dropped (support_ok False).
  """
  n_pool = len(pool["person"])
  idx = jax.random.choice(rng, n_pool, (size,), replace=False)
  support = {k: jnp.asarray(v)[idx] for k, v in pool.items()}
  clash = (support["person"][:, None] == batch["person"][None, :]) & batch["row_valid"][None, :]
  return support, ~jnp.any(clash, -1)


def loss_fn(
  module: CDSRNP,
  hp: Hyper,
  pool: dict[str, np.ndarray],
  params: Any,
  frozen: Any,
  batch: dict[str, Array],
  rng: Array,
  hparams: dict[str, Array] | None = None,
) -> tuple[Array, dict[str, Array]]:
  """CDSRNP's training loss on one batch (the query set); batch["row_valid"] masks padded rows.

  `hparams` {"beta"}: this replica's KL weight (a scalar); None = hp.beta.
  """
  beta = (hparams or {}).get("beta", hp.beta)
  r_sup, r_drop, r_z, r_neg = jax.random.split(rng, 4)
  support, support_ok = draw_support(r_sup, pool, hp.support_size, batch)
  variables = {"params": params, **frozen}
  out = module.apply(
    variables,
    batch,
    support,
    support_ok,
    batch["row_valid"],
    hp.posterior_single_domain,
    batch["person"],
    train=True,
    rngs={"dropout": r_drop, "latent": r_z},
    method=CDSRNP.episode,
  )
  tables = module.apply(variables, method=CDSRNP.tables)
  row = batch["row_valid"][:, None]
  metrics = {}
  rec = 0.0
  for x, key, offset in (("a", "A", 0), ("b", "B", hp.num_items_a)):
    target = batch[f"pos_{x}"]
    part = next_item_loss(
      out[f"v_{x}"],
      *tables[x],
      target,
      (target > 0) & row,
      hp,
      jax.random.fold_in(r_neg, offset),
      batch["hist"],
      offset,
    )
    metrics[f"loss_{key}"] = part
    rec = rec + part
  w = batch["row_valid"].astype(rec.dtype)
  kl = jnp.sum(out["kl"] * w) / jnp.maximum(jnp.sum(w), 1.0)
  loss = rec + beta * kl
  metrics.update(
    rec_loss=rec, kl=kl, loss=loss, support_used=jnp.sum(support_ok.astype(jnp.float32))
  )
  return gca_lib.orth_penalty_loss(loss, metrics, out["cells"], hparams)


def eval_fn(
  module: CDSRNP, hp: Hyper, params: Any, frozen: Any, tables: Any, batch: dict[str, Array]
) -> task_lib.EvalOutputs:
  """Scores of the frozen candidates and of every item (by global id); reads no rng."""
  summary, out_tables = tables
  out = module.apply({"params": params, **frozen}, batch, summary, method=CDSRNP.eval_vectors)
  na = hp.num_items_a
  (w_a, b_a), (w_b, b_b) = out_tables["a"], out_tables["b"]
  is_b = batch["domain"] == 1
  v = jnp.where(is_b[:, None], out["v_b"], out["v_a"])
  cand = batch["cand"]
  local_a = jnp.clip(cand, 0, na)
  local_b = jnp.clip(cand - na, 0, w_b.shape[0] - 1)
  score_a = jnp.einsum("bd,bcd->bc", v, w_a[local_a]) + b_a[local_a]
  score_b = jnp.einsum("bd,bcd->bc", v, w_b[local_b]) + b_b[local_b]
  sampled = jnp.where(is_b[:, None], score_b, score_a)
  # By global id (A local j = global j, B local j >= 1 = global nA + j): the both-domain table that
  # `tables_fn` concatenates once per evaluation; the trainer masks the other domain's columns out.
  w_all, b_all = out_tables["all"]
  full = v @ w_all.T + b_all
  return task_lib.EvalOutputs(sampled_scores=sampled, full_scores=full, cells=out["cells"])


# ---------------------------------------------------------------------------------------------
# Assembly


def default_config() -> ml_collections.ConfigDict:
  """CDSRNP's `model.*` keys with their defaults (every choice the specification leaves open).

  Defaults follow C2DSR's lineage where it has one (2 causal blocks, 1 head, dropout 0.2,
  full-softmax cross-entropy) and the specification otherwise (beta = 1, 32 support users).
  """
  m = ml_collections.ConfigDict()
  m.name = "cdsrnp"
  m.label = "specification-level reimplementation (reference/cdsrnp.md); no paper code exists"
  # Per-domain causal SASRec encoders (C2DSR: d = 256, maxlen 15).
  m.hidden_size = 64
  m.num_blocks = 2
  m.num_heads = 1
  m.dropout = 0.2
  m.max_len = 20
  # Inner width of the blocks' feed-forward layers; 0 = hidden_size.
  m.ffn_size = 0
  # Mixed-sequence encoder whose state before each target is added to the user vector (C2DSR's
  # h_mix); needs a merged timeline. Off by default: the open-world data has none.
  m.mixed_encoder = False
  # Latent z: width; "shared" (one z from both directions' pairs) or "directional" (z_{A->B} for
  # the A stream, z_{B->A} for the B stream).
  m.latent_dim = 64
  m.latent = "shared"
  # Permutation-invariant pooling of pair encodings: "mean" or "attention".
  m.pooling = "mean"
  # y of a context pair: "sequence" (the other domain's encoder state) or "next_item" (the
  # embedding of the user's last item in the other domain).
  m.pair_y = "sequence"
  # Single-domain query users join the posterior Q+ with y = their own-domain last item (the
  # spec's "or"); never in their own z (the posterior is leave-one-out).
  m.posterior_single_domain = False
  # Fine-grained interest adaptive layer: "attention" (each token attends over the support set) or
  # "film" (TaNP FiLM from the support set's task vector); FiLM's memory unit: slots (0 = none)
  # and Student-t temperature.
  m.adapt = "attention"
  m.memory_slots = 0
  m.memory_tau = 1.0
  # Item scores: "dot" (tied to the input item table) or "linear" (output table + bias, C2DSR).
  m.scoring = "dot"
  # Episode: support users per step (overlapped training users; spec: 32-128), the pool they are
  # drawn from (0 = every overlapped training user), and the numpy seed of the frozen evaluation
  # support set (and of the pool when capped).
  m.support_size = 32
  m.support_pool = 0
  m.eval_support_seed = 0
  # Next-item loss: "full" (softmax over the domain's items) or "sampled" (the target and n_neg
  # negatives of its domain); beta weighs KL(posterior || prior) (a replica hyperparameter).
  m.loss = "full"
  m.n_neg = 100
  m.beta = 1.0
  return m


_KEYS = tuple(f"model.{k}" for k in default_config() if k not in ("name", "label"))


def validate(config: ml_collections.ConfigDict) -> None:
  """CDSRNP's config checks, before anything is built or traced.

  Raises:
    ConfigError: a missing model key, GCA positions outside 0..num_blocks, heads that do not divide
      the width, an unknown choice or an out-of-range value (naming the
      key, its value and what is allowed).
  """
  dicts.require(config, _KEYS, "CDSRNP")
  m = config.model
  for key in (
    "model.hidden_size",
    "model.num_blocks",
    "model.num_heads",
    "model.max_len",
    "model.latent_dim",
    "model.support_size",
    "model.n_neg",
  ):
    dicts.check_int(config, key, 1)
  for key in (
    "model.ffn_size",
    "model.memory_slots",
    "model.support_pool",
    "model.eval_support_seed",
  ):
    dicts.check_int(config, key, 0)
  dicts.check_divides(config, "model.num_heads", "model.hidden_size")
  dicts.check_divides(config, "gca.heads", "model.hidden_size")
  gca_checks.check_positions(
    config, range(m.num_blocks + 1), f"CDSRNP with model.num_blocks={m.num_blocks}"
  )
  for key, choices in (
    ("latent", LATENTS),
    ("pooling", POOLINGS),
    ("pair_y", PAIR_YS),
    ("adapt", ADAPTS),
    ("scoring", SCORINGS),
    ("loss", LOSSES),
  ):
    if m[key] not in choices:
      raise errors.ConfigError(f"config key model.{key}={m[key]!r}; valid choices: {list(choices)}")
  for key in ("mixed_encoder", "posterior_single_domain"):
    if not isinstance(m[key], bool):
      raise errors.ConfigError(f"config key model.{key}={m[key]!r} must be True or False")
  dicts.check_fraction(config, "model.dropout")
  dicts.check_number(config, "model.memory_tau", dicts.POSITIVE)


def make_module(
  ds: dataset_lib.CDSRDataset,
  m: Any,
  gca_positions: tuple[int, ...] = (),
  gca: dict[str, Any] | None = None,
) -> CDSRNP:
  """The CDSRNP module for a catalog and `config.model`."""
  return CDSRNP(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    hidden=int(m.hidden_size),
    num_blocks=int(m.num_blocks),
    num_heads=int(m.num_heads),
    dropout=float(m.dropout),
    max_len=int(m.max_len),
    ffn_size=int(m.ffn_size),
    latent_dim=int(m.latent_dim),
    latent=m.latent,
    pooling=m.pooling,
    pair_y=m.pair_y,
    adapt=m.adapt,
    memory_slots=int(m.memory_slots),
    memory_tau=float(m.memory_tau),
    scoring=m.scoring,
    mixed=bool(m.mixed_encoder),
    gca_positions=tuple(gca_positions),
    gca=dict(gca or {}),
  )


def person_ids(ds: dataset_lib.CDSRDataset) -> np.ndarray:
  """int64 [U]: one id per person. Rows of the open-world CSVs that share an original user id
  (`ds.user_ids`, with a user-level split) are one person: the same lists with the other target
  domain, so one row holds the other's target. Otherwise every user is its own person.
  """
  if ds.user_ids is None or ds.user_split is None:
    return np.arange(ds.num_users, dtype=np.int64)
  return np.unique(np.asarray(ds.user_ids), return_inverse=True)[1].astype(np.int64).reshape(-1)


def support_sets(
  train: dict[str, np.ndarray], m: Any, held_out: np.ndarray
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """(training pool, frozen evaluation support set): rows of the OVERLAPPED training users.

  The pool is every overlapped training row, or `model.support_pool` of them (0 = all); the eval
  set is `min(model.support_size, #eligible)` of them, drawn with numpy seed
  `model.eval_support_seed` from the overlapped training rows whose person is not held out (with a
  user-level split a held-out person's training rows may hold its test target: the IM-VAE files'
  "seen" test users); with a leave-one-out split every user is held out and training prefixes
  never hold a valid or test target, so all overlapped training rows are eligible.

  Args:
    train: `domain_windows.train_windows` arrays plus "person".
    m: config.model.
    held_out: int [P] persons with a valid or test row under a user-level split (empty otherwise).

  Raises:
    ConfigError: no training user is overlapped.
  """
  rows = np.nonzero(train["overlapped"])[0]
  if not len(rows):
    raise errors.ConfigError(
      f"config key model.name={m.name!r}: CDSRNP needs overlapped training users (items in both "
      "domains) for its support sets; this dataset has none"
    )
  eligible = rows[~np.isin(train["person"][rows], held_out)]
  rng = np.random.default_rng(int(m.eval_support_seed))
  eval_rows = np.sort(rng.choice(eligible, min(int(m.support_size), len(eligible)), replace=False))
  pool_rows = rows
  if m.support_pool and len(rows) > m.support_pool:
    pool_rows = np.sort(rng.choice(rows, int(m.support_pool), replace=False))
  keys = stream_keys(bool(m.mixed_encoder))
  pool = {k: train[k][pool_rows] for k in keys + ("person",)}
  return pool, {k: train[k][eval_rows] for k in keys}


def build(ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict) -> task_lib.Task:
  """Builds the CDSRNP task (module, support sets, training and evaluation arrays).

  Raises:
    ConfigError: `model.mixed_encoder` on data without a merged timeline, `model.n_neg` larger
      than a domain's catalog with `model.loss="sampled"`, or no overlapped training user.
  """
  m = config.model
  mixed = bool(m.mixed_encoder)
  timeline = domain_windows.has_merged_timeline(ds)
  if mixed and not timeline:
    raise errors.ConfigError(
      f"config key model.mixed_encoder=True: dataset {ds.name!r} has no "
      "merged timeline; valid choices here: [False]"
    )
  if m.loss == "sampled" and m.n_neg > min(ds.num_items_a, ds.num_items_b):
    raise errors.ConfigError(
      f"config key model.n_neg={m.n_neg}: the domains have "
      f"{ds.num_items_a} (A) and {ds.num_items_b} (B) items"
    )
  gca = task_lib.gca_settings(config)
  if not timeline and len(gca.positions) > 1:
    warnings.warn(
      f"dataset {ds.name!r} has no merged timeline, so GCA cells see every key; with "
      f"{len(gca.positions)} GCA positions training positions can see their own "
      "domain's later items through the other stream (data/domain_windows.py)",
      stacklevel=2,
    )
  module = make_module(ds, m, gca.positions, gca.cell)
  train = domain_windows.train_windows(ds, m.max_len, mixed=mixed)
  person = person_ids(ds)
  train["person"] = person[train["user"]]
  held_out = (
    person[ds.user_split != dataset_lib.USER_TRAIN]
    if ds.user_split is not None
    else np.zeros(0, np.int64)
  )
  pool, eval_support = support_sets(train, m, held_out)
  hp = Hyper(
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    beta=float(m.beta),
    support_size=min(int(m.support_size), len(pool["person"])),
    loss=m.loss,
    n_neg=int(m.n_neg),
    posterior_single_domain=bool(m.posterior_single_domain),
  )

  def init_params(rng: Array) -> Any:
    query = {k: v[:1] for k, v in train.items()}
    support = {k: jnp.asarray(v) for k, v in eval_support.items()}
    n = len(eval_support["seq_a"])
    variables = module.init(
      {"params": rng, "dropout": rng, "latent": rng},
      query,
      support,
      jnp.ones((n,), bool),
      jnp.ones((1,), bool),
      train=True,
      method=CDSRNP.episode,
    )
    return variables["params"]

  def tables_fn(params: Any, frozen: Any) -> Any:
    variables = {"params": params, **frozen}
    summary = module.apply(
      variables, {k: jnp.asarray(v) for k, v in eval_support.items()}, method=CDSRNP.support_summary
    )
    tables = module.apply(variables, method=CDSRNP.tables)
    (w_a, b_a), (w_b, b_b) = tables["a"], tables["b"]
    # Concatenated once here, not per batch of scores: keeps the scores' item axis in place when
    # it is split over devices (train.item_shards).
    all_ids = (jnp.concatenate([w_a, w_b[1:]]), jnp.concatenate([b_a, b_b[1:]]))
    return summary, {**tables, "all": all_ids}

  return task_lib.assemble(
    ds,
    config,
    module=module,
    train_data=train,
    eval_windows=lambda d, split: domain_windows.eval_windows(d, split, m.max_len, mixed=mixed),
    loss_fn=lambda p, f, b, r, h=None: loss_fn(module, hp, pool, p, f, b, r, h),
    eval_fn=lambda p, f, t, b: eval_fn(module, hp, p, f, t, b),
    tables_fn=tables_fn,
    init_params=init_params,
    hparams={"beta": hp.beta},
  )
