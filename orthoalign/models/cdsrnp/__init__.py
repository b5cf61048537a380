"""CDSRNP as a SPECIFICATION-LEVEL REIMPLEMENTATION, in Flax Linen, with GCA insertion points.

CDSRNP ("Cross-Domain Sequential Recommendation via Neural Process", Li, Cao, Gao, Liu, Pang;
arXiv 2410.13588) has no public code and only its abstract could be read. This module implements
the specification in reference/cdsrnp.md ("The specification orthoalign implements"), built from
the abstract and its open-source relatives (TaNP's neural process, C2DSR's encoders); it is NOT the
paper's model and claims no parity with the paper's numbers.

Model (spec items 1-6; d = model.width):
  * Encoders: one causal SASRec stack per domain (layers.SASRecBlock, pmixer style) over that
    domain's own window (inputs/domain_windows.py) with its own item table E_A [nA+1, d] / E_B
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
mask in merged time (no merged timeline: every query sees every key, see inputs/domain_windows.py).
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

from typing import Any
import warnings

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.inputs import domain_windows
from orthoalign.models import baseline
from orthoalign.models.cdsrnp import config as config_lib
from orthoalign.models.cdsrnp.config import Config
from orthoalign.models.cdsrnp.inputs import person_ids
from orthoalign.models.cdsrnp.inputs import support_sets
from orthoalign.models.cdsrnp.loss import Hyper
from orthoalign.models.cdsrnp.loss import eval_fn
from orthoalign.models.cdsrnp.loss import loss_fn
from orthoalign.models.cdsrnp.module import CDSRNP

__all__ = ["Baseline", "Config"]


Array = jax.Array


class Baseline(baseline.Baseline):
  """CDSRNP bound to a dataset: per-domain windows, its support sets, the episode loss.

  Raises (on construction):
    ConfigError: `model.mixed_encoder` on data without a merged timeline, `model.n_neg` larger
      than a domain's catalog with `model.loss="sampled"`, or no overlapped training user.
  """

  TITLE = "CDSRNP"
  Config = Config
  LABEL = config_lib.LABEL
  REPLICA_HPARAMS = config_lib.REPLICA_HPARAMS

  check = staticmethod(config_lib.validate)

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    super().__init__(ds, config)
    cfg = self.settings
    timeline = domain_windows.has_merged_timeline(ds)
    if cfg.mixed_encoder and not timeline:
      raise errors.ConfigError(
        f"config key model.mixed_encoder=True: dataset {ds.name!r} has no "
        "merged timeline; valid choices here: [False]"
      )
    if cfg.loss == "sampled" and cfg.n_neg > min(ds.num_items_a, ds.num_items_b):
      raise errors.ConfigError(
        f"config key model.n_neg={cfg.n_neg}: the domains have "
        f"{ds.num_items_a} (A) and {ds.num_items_b} (B) items"
      )
    gca = baseline.gca_settings(config)
    if not timeline and len(gca.positions) > 1:
      warnings.warn(
        f"dataset {ds.name!r} has no merged timeline, so GCA cells see every key; with "
        f"{len(gca.positions)} GCA positions training positions can see their own "
        "domain's later items through the other stream (inputs/domain_windows.py)",
        stacklevel=2,
      )
    self.module = CDSRNP(ds.num_items_a, ds.num_items_b, cfg, gca.positions, gca.cell)
    train = domain_windows.train_windows(ds, cfg.max_len, mixed=cfg.mixed_encoder)
    person = person_ids(ds)
    train["person"] = person[train["user"]]
    held_out = (
      person[ds.user_split != dataset_lib.USER_TRAIN]
      if ds.user_split is not None
      else np.zeros(0, np.int64)
    )
    self.pool, self.eval_support = support_sets(train, config.model, held_out)
    self._train = train
    self.hp = Hyper(
      config=cfg,
      num_items_a=ds.num_items_a,
      num_items_b=ds.num_items_b,
      support_drawn=min(cfg.support_size, len(self.pool["person"])),
    )

  def train_windows(self) -> dict[str, np.ndarray]:
    return self._train

  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    cfg = self.settings
    return domain_windows.eval_windows(self.ds, split, cfg.max_len, mixed=cfg.mixed_encoder)

  def init(self, rng: Array) -> Any:
    query = {k: v[:1] for k, v in self._train.items()}
    support = {k: jnp.asarray(v) for k, v in self.eval_support.items()}
    n = len(self.eval_support["seq_a"])
    variables = self.module.init(
      {"params": rng, "dropout": rng, "latent": rng},
      query,
      support,
      jnp.ones((n,), bool),
      jnp.ones((1,), bool),
      train=True,
      method=CDSRNP.episode,
    )
    return variables["params"]

  def loss(self, params, frozen, batch, rng, hparams=None):
    return loss_fn(self.module, self.hp, self.pool, params, frozen, batch, rng, hparams)

  def tables(self, params: Any, frozen: Any) -> Any:
    variables = {"params": params, **frozen}
    support = {k: jnp.asarray(v) for k, v in self.eval_support.items()}
    summary = self.module.apply(variables, support, method=CDSRNP.support_summary)
    tables = self.module.apply(variables, method=CDSRNP.tables)
    (w_a, b_a), (w_b, b_b) = tables["a"], tables["b"]
    # Concatenated once here, not per batch of scores: keeps the scores' item axis in place when
    # it is split over devices (train.item_shards).
    all_ids = (jnp.concatenate([w_a, w_b[1:]]), jnp.concatenate([b_a, b_b[1:]]))
    return summary, {**tables, "all": all_ids}

  def score(self, params, frozen, tables, batch):
    return eval_fn(self.module, self.hp, params, frozen, tables, batch)
