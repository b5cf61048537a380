"""The Gated Cross-Attention (GCA) cell: out = LN?(X + alpha * CrossAttn(q=X, k=v=Y)).

What the paper states and what is a flag here (see reference/paper.md §1): the query comes from the
target-domain stream X, key/value from the other stream Y, alpha is learnable, sigmoid or tanh gate,
with or without LayerNorm. Gate shape, gate init, LayerNorm position, heads and the causal
cross-mask are unknown in the paper, so each is a config field (`gca.*`).

The cell returns its input X, the raw cross-attention output X' (before the gate) and Y so that the
train/eval step can compute the orthogonal-alignment statistics in the same compiled program.

Interventions (`gca.intervention`, not in the paper; they test its claim that GCA helps *because*
X' is orthogonal to X): per query token t, with p_t = (<x'_t, x_t> / <x_t, x_t>) x_t the projection
of X' onto X,
  orthogonal: X'_t <- x'_t - p_t   (only the part of X' orthogonal to X is added)
  parallel:   X'_t <- p_t          (only the "residual alignment" part is added)
  shuffled:   Y <- Y of the previous row of the batch (row i reads row i - 1, row 0 the last row:
              the batch rolled by one row), with that row's padding mask and
              no causal cross-mask (its times are another user's): is it the user's *own*
              other-domain
              history that helps?
Gradients flow through the projection. The statistics are those of the X' that is added; the X'
before an orthogonal or parallel intervention is returned too ("x_prime_pre") and reported beside
them (`pre_*` statistics, docs/metrics.md). `orth_penalty_loss` is the optional penalty w * mean
cos^2(X, X') (`gca.orth_penalty`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from orthoalign import errors
from orthoalign.metrics import keys
from orthoalign.models import layers

Array = jax.Array

GATES = ("scalar", "vector", "input")
INTERVENTIONS = ("none", "orthogonal", "parallel", "shuffled")
ACTS = ("sigmoid", "tanh", "none")
LAYERNORMS = ("none", "pre", "post")

# Every gate type owns a parameter with this name; replica sweeps over `gca.gate_init` overwrite it.
GATE_PARAM = "gate_logit"


def _activation(name: str):
  return {"sigmoid": jax.nn.sigmoid, "tanh": jnp.tanh, "none": lambda a: a}[name]


class GatedCrossAttention(nn.Module):
  """One direction of a GCA position (e.g. the A stream querying the B stream).

  Attributes:
    d: model width of both streams.
    heads: cross-attention heads (independent of the backbone's).
    gate: "scalar" (one alpha), "vector" (alpha per channel) or "input" (alpha = act(W[X; X'] + b),
      per token and channel).
    act: gate activation, "sigmoid", "tanh" or "none".
    layernorm: "none", "pre" (LN on the query input) or "post" (LN(X + alpha X')).
    gate_init: initial pre-activation gate value (tanh + 0 starts as the identity).
    causal: a query at merged-sequence time t sees only key/value tokens at time <= t.
    dropout: dropout on the attention weights.
    ffn: expansion factor e of an optional feed-forward block on the cross-attention output,
      X' = W2 GELU(W1 CrossAttn(X, Y)) with W1: d -> e*d, W2: e*d -> d (+ biases); 0 = none. It
      makes the GCA unit's size matchable to the paper's: its Figure 3 implies about 2.1M
      parameters per GCA position for ABXI at d = 256 (e = 6 gives 2 x (4d^2 + 2ed^2) ~ 2.1M) and
      0.47M for CDSRNP (e = 0); reference/paper.md §1.3. The paper does not describe the unit's
      layers, so this block is an inference, named as such. X' (the statistics' X') is then the
      whole unit's output before the gate.
    intervention: "none", "orthogonal", "parallel" or "shuffled" (module docstring).
  """

  d: int
  heads: int = 1
  gate: str = "scalar"
  act: str = "sigmoid"
  layernorm: str = "none"
  gate_init: float = 0.0
  causal: bool = True
  dropout: float = 0.0
  ffn: int = 0
  intervention: str = "none"

  @nn.compact
  def __call__(
    self,
    x: Array,
    y: Array,
    x_time: Array,
    y_time: Array,
    x_valid: Array,
    y_valid: Array,
    *,
    train: bool,
  ) -> tuple[Array, dict[str, Array]]:
    """Applies the cell.

    Args:
      x: query stream [B, Lq, d].
      y: key/value stream [B, Lk, d].
      x_time, y_time: int [B, Lq], [B, Lk] merged-sequence time of each token (for the causal mask).
      x_valid, y_valid: bool [B, Lq], [B, Lk] non-padding tokens.
      train: enables dropout.

    Returns:
      (out [B, Lq, d], intermediates) with intermediates x, x_prime (the X' added), y (the keys and
      values attended to), x_mask (valid queries that saw at least one key), y_mask, alpha (the
      mean gate value over valid queries), and x_prime_pre (X' before an orthogonal or parallel
      intervention, only then). Padding queries (x_valid False) come out unchanged, out = x.

    Raises:
      ValueError: heads that do not divide d, an unknown intervention.
    """
    if self.d % self.heads:
      raise ValueError(f"gca.heads={self.heads} must divide the model width {self.d}")
    if self.intervention not in INTERVENTIONS:
      raise ValueError(f"gca.intervention={self.intervention!r}; expected one of {INTERVENTIONS}")
    causal = self.causal
    if self.intervention == "shuffled":
      y, y_valid = jnp.roll(y, 1, axis=0), jnp.roll(y_valid, 1, axis=0)
      causal = False
    x_in = nn.LayerNorm(name="pre_ln")(x) if self.layernorm == "pre" else x
    q = layers.split_heads(
      nn.Dense(self.d, kernel_init=layers.xavier_normal, name="query")(x_in), self.heads
    )
    k = layers.split_heads(
      nn.Dense(self.d, kernel_init=layers.xavier_normal, name="key")(y), self.heads
    )
    v = layers.split_heads(
      nn.Dense(self.d, kernel_init=layers.xavier_normal, name="value")(y), self.heads
    )
    mask = y_valid[:, None, None, :]
    if causal:
      mask = mask & (y_time[:, None, None, :] <= x_time[:, None, :, None])
    probs, has_key = layers.attention_probs(q, k, mask)
    probs = nn.Dropout(self.dropout, deterministic=not train)(probs)
    attn = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(x.shape)
    x_prime = nn.Dense(self.d, kernel_init=layers.xavier_normal, name="out")(attn)
    if self.ffn:
      hidden = nn.Dense(self.ffn * self.d, kernel_init=layers.xavier_normal, name="ffn_in")(x_prime)
      x_prime = nn.Dense(self.d, kernel_init=layers.xavier_normal, name="ffn_out")(nn.gelu(hidden))
    saw_key = has_key[:, 0, :, 0]
    # A query with nothing to attend to gets no cross-attention update (not the output bias).
    x_prime = x_prime * saw_key[..., None]
    extra = {}
    if self.intervention in ("orthogonal", "parallel"):
      extra["x_prime_pre"] = x_prime
      parallel = project_onto(x_prime, x)
      x_prime = x_prime - parallel if self.intervention == "orthogonal" else parallel

    alpha = gate_value(self, self.gate, self.act, self.gate_init, x, x_prime)
    out = x + alpha * x_prime
    if self.layernorm == "post":
      out = nn.LayerNorm(name="post_ln")(out)
    # A padding query is left as it is (not zeroed): where a backbone keeps a non-zero vector in a
    # padding slot (ABXI's in-place evaluation layout after its FFN stage) the cell is the identity.
    out = jnp.where(x_valid[..., None], out, x)

    x_mask = x_valid & saw_key
    alpha_mean, alpha_sum, alpha_count = gate_statistics(alpha, x_mask, x.dtype)
    return out, dict(
      x=x,
      x_prime=x_prime,
      y=y,
      x_mask=x_mask,
      y_mask=y_valid,
      alpha=alpha_mean,
      alpha_sum=alpha_sum,
      alpha_count=alpha_count,
      **extra,
    )


def gate_value(
  module: nn.Module, gate: str, act: str, gate_init: float, x: Array, x_prime: Array
) -> Array:
  """The gate alpha of a cell (call from inside `module`'s compact method, which owns its params).

  Args:
    module: the cell; the gate's parameter is its `gate_logit` (GATE_PARAM), and the "input" gate's
      projection its `gate_proj`.
    gate: "scalar" (alpha []), "vector" (alpha [d]) or "input" (alpha [B, L, d] = act(W[X; X'] + b),
      W initialised to 0).
    act: "sigmoid", "tanh" or "none".
    gate_init: the initial pre-activation.
    x, x_prime: [B, L, d], the cell's input and update.

  Raises:
    ValueError: an unknown gate.
  """
  f = _activation(act)
  d = x.shape[-1]
  if gate == "scalar":
    return f(module.param(GATE_PARAM, nn.initializers.constant(gate_init), ()))
  if gate == "vector":
    return f(module.param(GATE_PARAM, nn.initializers.constant(gate_init), (d,)))
  if gate == "input":
    bias = module.param(GATE_PARAM, nn.initializers.constant(gate_init), (d,))
    proj = nn.Dense(d, use_bias=False, kernel_init=nn.initializers.zeros, name="gate_proj")
    return f(proj(jnp.concatenate([x, x_prime], -1)) + bias)
  raise ValueError(f"gca.gate={gate!r}; expected one of {GATES}")


def gate_statistics(alpha: Array, x_mask: Array, dtype: Any) -> tuple[Array, Array, Array]:
  """(mean, sum, count) of the gate over the valid queries x_mask (bool [B, L]); a per-channel gate
  counts as its mean over channels. The trainer adds sum and count over batches.
  """
  alpha_tok = jnp.broadcast_to(jnp.mean(alpha, axis=-1) if jnp.ndim(alpha) else alpha, x_mask.shape)
  w = x_mask.astype(dtype)
  total, count = jnp.sum(alpha_tok * w), jnp.sum(w)
  return total / jnp.maximum(count, 1.0), total, count


def project_onto(v: Array, x: Array, eps: float = 1e-12) -> Array:
  """Per token, the projection (<v, x> / <x, x>) x of v onto x; [..., d] -> [..., d], same dtype.

  A zero x gives a zero projection (the denominator is floored at eps); differentiable.
  """
  coef = jnp.sum(v * x, axis=-1, keepdims=True) / jnp.maximum(
    jnp.sum(x * x, axis=-1, keepdims=True), eps
  )
  return coef * x


def mean_cos2(cells: dict[str, dict[str, Array]]) -> Array:
  """Mean of cos^2(x_t, x'_t) over every cell's valid query tokens (x_mask), float32 scalar.

  The X' is the one added (after any intervention); 0 when no token counts. Differentiable.
  """
  total, count = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32)
  for cell in cells.values():
    x, xp = cell["x"].astype(jnp.float32), cell["x_prime"].astype(jnp.float32)
    dot = jnp.sum(x * xp, -1)
    norms = jnp.maximum(jnp.sum(x * x, -1) * jnp.sum(xp * xp, -1), 1e-16)
    w = cell["x_mask"].astype(jnp.float32)
    total += jnp.sum(w * dot * dot / norms)
    count += jnp.sum(w)
  return total / jnp.maximum(count, 1.0)


# The replica hyperparameter that carries gca.orth_penalty into a model's loss (Task.hparams).
ORTH_PENALTY = "orth_penalty"


def orth_penalties(config: Any) -> tuple[float, ...]:
  """The gca.orth_penalty weights of a run's replicas; () when the loss has no penalty term.

  sweep.orth_penalties where it lists values, else (gca.orth_penalty,) where that is not 0.
  """
  listed = tuple(config.sweep.orth_penalties)
  if listed:
    return tuple(float(w) for w in listed)
  weight = config.gca.orth_penalty
  return (float(weight),) if weight != 0 else ()


def orth_penalty_loss(
  loss: Array,
  metrics: dict[str, Array],
  cells: dict[str, dict[str, Array]],
  hparams: dict[str, Array] | None,
) -> tuple[Array, dict[str, Array]]:
  """Adds gca.orth_penalty's w * mean cos^2(X, X') to a model's training loss, where it is set.

  Args:
    loss: the model's loss (scalar).
    metrics: its training metrics; "loss" is updated and "orth_cos2" (the mean cos^2) added.
    cells: the forward pass's cell intermediates (those of GCA cells count).
    hparams: the replica's hyperparameters; without ORTH_PENALTY (the run sets no penalty) loss and
      metrics are returned unchanged. w < 0 rewards alignment.

  Returns:
    (loss, metrics).
  """
  # Only GCA cells: a model's own cross-attentions (Baseline.NATIVE_CELLS) are not penalised.
  cells = {name: cell for name, cell in cells.items() if keys.is_gca_cell(name)}
  if not hparams or ORTH_PENALTY not in hparams or not cells:
    return loss, metrics
  cos2 = mean_cos2(cells)
  loss = loss + hparams[ORTH_PENALTY] * cos2
  return loss, {**metrics, "loss": loss, "orth_cos2": cos2}


def cell_names(
  positions: tuple[int, ...] | list[int], domains: tuple[str, ...] = ("A", "B")
) -> tuple[str, ...]:
  """Names of the cells of GCA positions, one per position and domain: ("gca0_A", "gca0_B",
  "gca1_A", ...). A module's cells are always named by the default A and B (the first and second
  domain), so that their parameter paths do not depend on the data; the trainer reports them
  under the dataset's domain names (`domains`).
  """
  return tuple(keys.cell_name(p, q) for p in sorted(positions) for q in domains)


def make_cells(
  d: int, positions: tuple[int, ...], cell: dict[str, Any]
) -> dict[str, GatedCrossAttention]:
  """The cells of GCA positions at width d (call from a module's setup); `cell` = gca.* settings."""
  return {name: GatedCrossAttention(d, name=name, **cell) for name in cell_names(positions)}


# One stream a cell reads: (features [B, L, d], merged-sequence times int [B, L], valid bool [B,
# L]).
Stream = tuple[Array, Array, Array]


def apply_position(
  cells: dict[str, GatedCrossAttention],
  p: int,
  query: dict[str, Stream],
  key_value: dict[str, Stream],
  *,
  train: bool,
  out: dict[str, Any],
) -> dict[str, Array]:
  """Applies both cells of GCA position p simultaneously: A (stream "a") and B (stream "b").

  Args:
    cells: `make_cells` output.
    p: the position.
    query: {"a": stream, "b": stream}, the streams the cells update.
    key_value: {"a": the stream the A cell attends to, "b": the one the B cell attends to} (the
    other
      domain's stream, or a mixed stream).
    train: enables dropout.
    out: receives each cell's intermediates under its name.

  Returns:
    {"a": new A features, "b": new B features}, each [B, L, d].
  """
  new = {}
  for q, own in (("A", "a"), ("B", "b")):
    x, x_time, x_valid = query[own]
    y, y_time, y_valid = key_value[own]
    new[own], out[f"gca{p}_{q}"] = cells[f"gca{p}_{q}"](
      x, y, x_time, y_time, x_valid, y_valid, train=train
    )
  return new


def exchange(
  cells: dict[str, GatedCrossAttention],
  p: int,
  h: dict[str, Array],
  rows: dict[str, Array],
  *,
  train: bool,
  out: dict[str, Any],
) -> dict[str, Array]:
  """GCA position p between two per-domain streams: A queries B and B queries A, simultaneously.

  Args:
    cells: `make_cells` output.
    p: the position.
    h: {"a": [B, La, d], "b": [B, Lb, d]} the streams' features.
    rows: the windows' "seq_a"/"seq_b" (0 = padding) and "time_a"/"time_b" (merged-sequence times;
      inputs/domain_windows.py).
    train: enables dropout.
    out: receives each cell's intermediates under its name.

  Returns:
    {"a", "b"}: the new features. A row with no token in the other domain keeps its stream exactly
    (also under gca.layernorm="post").
  """
  valid = {s: rows[f"seq_{s}"] > 0 for s in ("a", "b")}
  streams = {s: (h[s], rows[f"time_{s}"], valid[s]) for s in ("a", "b")}
  other = {"a": "b", "b": "a"}
  new = apply_position(
    cells, p, streams, {s: streams[other[s]] for s in streams}, train=train, out=out
  )
  return {s: jnp.where(jnp.any(valid[other[s]], -1)[:, None, None], new[s], h[s]) for s in new}


def encoder_stacks(
  streams: tuple[str, ...],
  settings: Any,
  *,
  causal: bool,
  mask_padding: bool = False,
  pre_ln: bool = False,
  inits: layers.BlockInits = layers.XAVIER_NORMAL_INITS,
) -> tuple[dict[str, list[layers.SASRecBlock]], dict[str, nn.LayerNorm]]:
  """The SASRec encoder stacks of `streams` (call from a module's setup).

  Args:
    streams: the stream names.
    settings: a baseline's Config: its shared `width`, `heads`, `blocks`, `dropout` and `ffn`.
    causal: causal self-attention; mask_padding, pre_ln, inits: as layers.SASRecBlock's.

  Returns:
    ({stream: its blocks, named block_<stream><i> for i = 1..blocks}, {stream: its last
    LayerNorm, named last_ln_<stream>}): the names every Flax parameter path of
    LLM4CDSR, CDSRNP and SASRec has, so their checkpoints and initial weights stay as they are.
  """
  stacks = {
    s: [
      layers.SASRecBlock(
        settings.width,
        settings.heads,
        settings.dropout,
        causal,
        ffn_inner=settings.ffn,
        mask_padding=mask_padding,
        pre_ln=pre_ln,
        inits=inits,
        name=f"block_{s}{i + 1}",
      )
      for i in range(settings.blocks)
    ]
    for s in streams
  }
  last_ln = {s: nn.LayerNorm(epsilon=1e-8, name=f"last_ln_{s}") for s in streams}
  return stacks, last_ln


def run_stacks(
  stacks: dict[str, list[layers.SASRecBlock]],
  h: dict[str, Array],
  valid: dict[str, Array],
  positions: tuple[int, ...],
  cross: Callable[[int, dict[str, Array]], dict[str, Array]],
  *,
  train: bool,
) -> dict[str, Array]:
  """Runs the streams' blocks in step, with the GCA insertion points between them.

  Args:
    stacks: `encoder_stacks`' blocks of every stream in `h`.
    h: {stream: [B, L, d]} the embedded streams.
    valid: {stream: bool [B, L]} their non-padding positions.
    positions: the GCA insertion points: 0 = after the embeddings, i = after block i.
    cross: (p, h) -> h with position p's cells applied (the model's exchange between streams).
    train: enables dropout.

  Returns:
    {stream: [B, L, d]} the features after the last block (before the last LayerNorm).
  """
  if 0 in positions:
    h = cross(0, h)
  for i in range(len(next(iter(stacks.values())))):
    h = {s: stacks[s][i](h[s], valid[s], train=train) for s in h}
    if i + 1 in positions:
      h = cross(i + 1, h)
  return h


def check_stack_positions(positions: tuple[int, ...], blocks: int, title: str) -> None:
  """Guards a module built directly (configs are checked by gca_checks): positions 0..blocks.

  Raises:
    ConfigError: naming the positions and the ones the model has.
  """
  if any(not 0 <= p <= blocks for p in positions):
    raise errors.ConfigError(
      f"gca.positions={list(positions)}: {title} has positions 0..{blocks} "
      "(0 = after the embeddings, i = after block i)"
    )


def unit_params(d: int, ffn: int = 0, gate: str = "scalar", layernorm: str = "none") -> int:
  """Parameters of one GCA position (cells A<-B and B<-A) at width d; see GatedCrossAttention."""
  attn = 4 * (d * d + d)
  ffn_params = (d * ffn * d + ffn * d) + (ffn * d * d + d) if ffn else 0
  gate_params = {"scalar": 1, "vector": d, "input": d + 2 * d * d}[gate]
  ln = 2 * d if layernorm != "none" else 0
  return 2 * (attn + ffn_params + gate_params + ln)


def set_gate_init(params: Any, value: Array | float) -> Any:
  """Returns params with every GCA gate parameter filled with `value` (vmappable over replicas)."""

  def fill(path, leaf):
    if path and getattr(path[-1], "key", None) == GATE_PARAM:
      return jnp.full_like(leaf, value)
    return leaf

  return jax.tree_util.tree_map_with_path(fill, params)
