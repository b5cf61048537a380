"""The CDSRNP Flax module: domain encoders with GCA insertion points, set encoders, latents."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign.models import gca as gca_lib
from orthoalign.models import layers
from orthoalign.models.cdsrnp.config import DIRECTIONS
from orthoalign.models.cdsrnp.config import Config

Array = jax.Array


_OTHER = {"a": "b", "b": "a"}


_DIR_OF = {"a": "ab", "b": "ba"}


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
  """The CDSRNP specification (see the package docstring).

  Attributes:
    num_items_a, num_items_b: catalog sizes (local ids 1..n per domain, 0 = padding).
    config: the `model.*` settings (config.py); width = d.
    gca_positions: GCA insertion points (0 = after the embeddings, i = after block i).
    gca: keyword arguments of every gca.GatedCrossAttention cell.
  """

  num_items_a: int
  num_items_b: int
  config: Config
  gca_positions: tuple[int, ...] = ()
  gca: dict[str, Any] = dataclasses.field(default_factory=dict)

  def setup(self):
    d = self.config.width
    n = {"a": self.num_items_a, "b": self.num_items_b, "m": self.num_items_a + self.num_items_b}
    streams = ("a", "b", "m") if self.config.mixed_encoder else ("a", "b")
    self.item_emb = {
      s: self.param(f"item_emb_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in streams
    }
    self.pos_emb = {
      s: nn.Embed(
        self.config.max_len + 1, d, embedding_init=layers.xavier_normal, name=f"pos_emb_{s}"
      )
      for s in streams
    }
    cfg = self.config
    self.stacks, self.last_ln = gca_lib.encoder_stacks(streams, cfg, causal=True)
    self.emb_dropout = nn.Dropout(cfg.dropout)
    gca_lib.check_stack_positions(self.gca_positions, cfg.blocks, "CDSRNP")
    self.cells = gca_lib.make_cells(d, self.gca_positions, self.gca)
    self.pair_enc = {k: SetMLP(d, self.config.dropout, name=f"pair_{k}") for k in DIRECTIONS}
    self.task_enc = {k: SetMLP(d, self.config.dropout, name=f"task_{k}") for k in DIRECTIONS}
    names = ("z",) if self.config.latent == "shared" else ("z_ab", "z_ba")
    self.heads = {
      k: GaussianHead(d, self.config.latent_dim, self.config.pooling, name=f"head_{k}")
      for k in names
    }
    if self.config.adapt == "attention":
      self.attn = {
        s: {
          k: nn.Dense(d, kernel_init=layers.xavier_normal, name=f"adapt_{k}_{s}")
          for k in ("q", "k", "v")
        }
        for s in ("a", "b")
      }
      self.z_proj = {
        s: layers.torch_dense(d, self.config.latent_dim, name=f"z_proj_{s}") for s in ("a", "b")
      }
    else:
      self.film = {
        s: {k: layers.torch_dense(d, d, name=f"film_{k}_{s}") for k in ("gamma", "beta")}
        for s in ("a", "b")
      }
      if self.config.memory_slots:
        self.memory = {
          s: self.param(f"memory_{s}", layers.xavier_normal, (self.config.memory_slots, d))
          for s in ("a", "b")
        }
      self.fuse = {
        s: [
          layers.torch_dense(d, d + self.config.latent_dim, name=f"fuse_0_{s}"),
          layers.torch_dense(d, d, name=f"fuse_1_{s}"),
        ]
        for s in ("a", "b")
      }
    if self.config.scoring == "linear":
      self.out_table = {
        s: self.param(f"out_{s}", layers.xavier_normal, (n[s] + 1, d)) for s in ("a", "b")
      }
      self.out_bias = {
        s: self.param(f"out_bias_{s}", nn.initializers.zeros, (n[s] + 1,)) for s in ("a", "b")
      }

  # -- encoders -------------------------------------------------------------------------------
  def _embed(self, s: str, ids: Array, positions: Array, train: bool) -> Array:
    e = self.item_emb[s][ids] * math.sqrt(self.config.width) + self.pos_emb[s](positions)
    return self.emb_dropout(e, deterministic=not train) * (ids > 0)[..., None]

  def encode(
    self, rows: dict[str, Array], *, train: bool
  ) -> tuple[dict[str, Array], dict[str, Any]]:
    """Encodes the per-domain streams (and the mixed one) of a set of rows.

    Args:
      rows: seq_*, positions_*, time_* [N, L] (see inputs/domain_windows.py).
      train: enables dropout.

    Returns:
      ({"a", "b"[, "m"]: [N, L, d] final states, 0 on padding}, GCA intermediates by cell name).
    """
    streams = ("a", "b", "m") if self.config.mixed_encoder else ("a", "b")
    valid = {s: rows[f"seq_{s}"] > 0 for s in streams}
    h = {s: self._embed(s, rows[f"seq_{s}"], rows[f"positions_{s}"], train) for s in streams}
    cells: dict[str, Any] = {}
    # GCA position p: A queries B and B queries A, simultaneously (the mixed stream as it is).
    cross = lambda p, h: {**h, **gca_lib.exchange(self.cells, p, h, rows, train=train, out=cells)}
    h = gca_lib.run_stacks(self.stacks, h, valid, self.gca_positions, cross, train=train)
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
    y_other = last if self.config.pair_y == "sequence" else item
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
    if self.config.latent == "shared":
      elems = jnp.concatenate([s["ab"], s["ba"]], 0)
      return {"z": self.heads["z"](elems, jnp.concatenate([masks["ab"], masks["ba"]], -1))}
    return {f"z_{k}": self.heads[f"z_{k}"](s[k], masks[k]) for k in DIRECTIONS}

  def latent_of(self, stream: str) -> str:
    return "z" if self.config.latent == "shared" else f"z_{_DIR_OF[stream]}"

  def adapt_tokens(
    self, stream: str, h: Array, valid: Array, z: Array, u_support: Array, support_ok: Array
  ) -> Array:
    """User vectors v [B, T, d] of stream tokens h [B, T, d] given z [B, dz] and the support set's
    deterministic encodings u_support [S, d] (of direction stream->other), support_ok bool [S].
    """
    d = self.config.width
    if self.config.adapt == "attention":
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
      if self.config.memory_slots:
        m = self.memory[stream]
        tau = self.config.memory_tau
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
    if self.config.scoring == "linear":
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
    keys = stream_keys(self.config.mixed_encoder)
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
      if self.config.mixed_encoder:
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
      z = jnp.broadcast_to(summary["mu_p"][self.latent_of(x)], (b, self.config.latent_dim))
      h = states[x][:, -1:]
      v = self.adapt_tokens(
        x, h, jnp.ones((b, 1), bool), z, summary["u"][_DIR_OF[x]], summary["ok"]
      )[:, 0]
      if self.config.mixed_encoder:
        v = v + states["m"][:, -1]
      out[f"v_{x}"] = v
    return out
