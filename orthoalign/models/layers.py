"""Building blocks shared by the baselines: torch-faithful inits and layers, SASRec's block."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

# torch.nn.init.xavier_normal_ on a 2-D weight; every >=2-D parameter of LLM4CDSR is re-initialised
# with it (`BaseModel._init_weights`).
xavier_normal = nn.initializers.glorot_normal()


# torch.nn.LayerNorm's default epsilon (Flax's is 1e-6).
TORCH_LN_EPS = 1e-5

# The `init_weights` of ABXI and MERIT (`models/utils/initialization.py`): every torch Linear
# N(0, 0.02) with a zero bias, every Embedding trunc_normal_(0, 0.02, a=-0.04, b=0.04).
normal_002 = nn.initializers.normal(0.02)


def trunc_normal_002(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch trunc_normal_(mean 0, std 0.02, a=-0.04, b=0.04): +-2 standard deviations."""
  return 0.02 * jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype)


def backward_positions(valid: Array) -> Array:
  """int [B, L]: the most recent valid token = 1, counting backwards over valid tokens; 0 where
  `valid` (bool [B, L]) is False. ABXI's and MERIT's `get_absolute_pos_idx`
  (`models/utils/position.py`).
  """
  v = valid.astype(jnp.int32)
  return jnp.flip(jnp.cumsum(jnp.flip(v, -1), -1), -1) * v


def torch_bias_init(fan_in: int):
  """torch's default Linear/Conv1d bias init U(+-1/sqrt(fan_in)); 1-D params keep it."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def torch_kernel_init(key: Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> Array:
  """torch's default Linear/Conv1d weight init, kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)),
  for a Flax kernel [fan_in, out].
  """
  bound = 1.0 / math.sqrt(shape[0])
  return jax.random.uniform(key, shape, dtype, -bound, bound)


@dataclasses.dataclass(frozen=True)
class BlockInits:
  """The weight initialisers of a SASRec block: the attention's in- and out-projection and the
  feed-forward's 1x1 convolutions (biases keep torch's defaults).
  """

  attn_in: Any = xavier_normal
  attn_out: Any = xavier_normal
  conv: Any = xavier_normal


# SASRec's ports re-initialise every >= 2-D weight with xavier_normal_ (LLM4CDSR, pmixer).
XAVIER_NORMAL_INITS = BlockInits()
# torch's own defaults (C2DSR keeps them): nn.MultiheadAttention's xavier_uniform_ in-projection,
# its out-projection and the convolutions kaiming_uniform_(a=sqrt(5)).
TORCH_DEFAULT_INITS = BlockInits(
  nn.initializers.xavier_uniform(), torch_kernel_init, torch_kernel_init
)


def torch_dense(
  features: int,
  fan_in: int,
  name: str | None = None,
  use_bias: bool = True,
  kernel_init: Any = xavier_normal,
) -> nn.Dense:
  """nn.Dense initialised as a torch Linear after `kernel_init` (default xavier_normal_) on its
  weight, the bias torch's default.
  """
  return nn.Dense(
    features,
    use_bias=use_bias,
    kernel_init=kernel_init,
    bias_init=torch_bias_init(fan_in),
    name=name,
  )


def split_heads(x: Array, heads: int) -> Array:
  """[B, L, d] -> [B, L, heads, d / heads]."""
  b, l, d = x.shape
  return x.reshape(b, l, heads, d // heads)


def attention_probs(q: Array, k: Array, mask: Array | None) -> tuple[Array, Array]:
  """Scaled dot-product attention weights over heads.

  Args:
    q: [B, Lq, H, dh]; k: [B, Lk, H, dh].
    mask: bool broadcastable to [B, H, Lq, Lk]; True = may attend. None = attend everywhere.

  Returns:
    (probs [B, H, Lq, Lk], has_key bool [B, H, Lq, 1]). Queries that may attend to no key get
    all-zero
    weights instead of a softmax over nothing.
  """
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
  if mask is None:
    probs = jax.nn.softmax(logits, axis=-1)
    has_key = jnp.ones(logits.shape[:-1] + (1,), bool)
  else:
    mask = jnp.broadcast_to(mask, logits.shape)
    logits = jnp.where(mask, logits, jnp.finfo(logits.dtype).min)
    has_key = jnp.any(mask, axis=-1, keepdims=True)
    probs = jnp.where(mask & has_key, jax.nn.softmax(logits, axis=-1), 0.0)
  return probs, has_key


class SelfAttention(nn.Module):
  """torch.nn.MultiheadAttention(d, heads, dropout) with a fused in-projection, as in SASRec ports.

  The fused (d, 3d) in-projection matters for fidelity: xavier_normal_ on torch's (3d, d)
  `in_proj_weight` has std sqrt(2/(4d)), not the sqrt(2/(2d)) of three separate layers. The
  initialisers default to the SASRec ports' (xavier_normal_ on both weights); MERIT keeps torch's
  own in-projection init (xavier_uniform_) and N(0, 0.02) on the out-projection. Queries and
  keys/values may come from different streams (cross-attention).
  """

  d: int
  heads: int
  dropout: float
  in_init: Any = xavier_normal
  out_init: Any = xavier_normal

  @nn.compact
  def __call__(self, query: Array, key_value: Array, mask: Array | None, *, train: bool) -> Array:
    w_in = self.param("in_proj_kernel", self.in_init, (self.d, 3 * self.d))
    b_in = self.param("in_proj_bias", nn.initializers.zeros, (3 * self.d,))
    q = query @ w_in[:, : self.d] + b_in[: self.d]
    k = key_value @ w_in[:, self.d : 2 * self.d] + b_in[self.d : 2 * self.d]
    v = key_value @ w_in[:, 2 * self.d :] + b_in[2 * self.d :]
    q, k, v = (split_heads(t, self.heads) for t in (q, k, v))
    probs, _ = attention_probs(q, k, mask)
    probs = nn.Dropout(self.dropout, deterministic=not train)(probs)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v).reshape(query.shape[:2] + (self.d,))
    # torch initialises out_proj.bias to zero.
    return nn.Dense(
      self.d, kernel_init=self.out_init, bias_init=nn.initializers.zeros, name="out_proj"
    )(out)


class SwiGLU(nn.Module):
  """ABXI's `FeedForward` and MERIT's `MLP`: fc_3(silu(fc_2 h) * fc_1 h), no biases, N(0, 0.02)
  weights (residual and norm outside).
  """

  d: int
  d_ffn: int

  @nn.compact
  def __call__(self, h: Array) -> Array:
    dense = lambda f, name: nn.Dense(f, use_bias=False, kernel_init=normal_002, name=name)
    return dense(self.d, "fc_3")(
      nn.silu(dense(self.d_ffn, "fc_2")(h)) * dense(self.d_ffn, "fc_1")(h)
    )


class PointWiseFeedForward(nn.Module):
  """SASRec's conv1x1 -> dropout -> ReLU -> conv1x1 -> dropout, plus residual.

  `inner` is the hidden width (0 = d, SASRec's and LLM4CDSR's); a wider one grows the baseline for
  parameter-matched comparisons (orthoalign/models/param_count.py). `residual=False` leaves out
  the "+ x" (a textbook pre-LN block adds its own).
  """

  d: int
  dropout: float
  inner: int = 0
  residual: bool = True
  kernel_init: Any = xavier_normal

  @nn.compact
  def __call__(self, x: Array, *, train: bool) -> Array:
    inner = self.inner or self.d
    h = torch_dense(inner, self.d, name="conv1", kernel_init=self.kernel_init)(x)
    h = nn.relu(nn.Dropout(self.dropout, deterministic=not train)(h))
    h = torch_dense(self.d, inner, name="conv2", kernel_init=self.kernel_init)(h)
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return h + x if self.residual else h


class SASRecBlock(nn.Module):
  """One pmixer-style SASRec layer: Q = LN(x); x = Q + MHA(Q, x, x); x = FFN(LN(x)); x *= valid.

  `causal=False` reproduces LLM4CDSR, whose causal mask is commented out (and which uses no
  key-padding mask either): position t then sees the items after it during seq2seq training.
  `mask_padding=True` keeps padding positions (valid False) out of the keys, so the outputs at
  valid positions do not depend on how much padding a sequence carries (what length buckets need);
  a query with no valid key gets zero attention output. `pre_ln=True` is the textbook pre-LN
  block instead, x = x + MHA(LN(x)); x = x + FFN(LN(x)), as pmixer/SASRec.pytorch's later
  `--norm_first`.
  """

  d: int
  heads: int
  dropout: float
  causal: bool = False
  eps: float = 1e-8
  ffn_inner: int = 0
  mask_padding: bool = False
  pre_ln: bool = False
  inits: BlockInits = XAVIER_NORMAL_INITS

  @nn.compact
  def __call__(self, x: Array, valid: Array, *, train: bool) -> Array:
    mask = None
    if self.causal:
      l = x.shape[1]
      mask = jnp.tril(jnp.ones((l, l), bool))[None, None]
    if self.mask_padding:
      keys = valid[:, None, None, :]
      mask = keys if mask is None else mask & keys
    q = nn.LayerNorm(epsilon=self.eps, name="attn_ln")(x)
    attn = SelfAttention(
      self.d, self.heads, self.dropout, self.inits.attn_in, self.inits.attn_out, name="attn"
    )
    ffn = PointWiseFeedForward(
      self.d,
      self.dropout,
      self.ffn_inner,
      residual=not self.pre_ln,
      kernel_init=self.inits.conv,
      name="ffn",
    )
    if self.pre_ln:
      x = x + attn(q, q, mask, train=train)
      x = x + ffn(nn.LayerNorm(epsilon=self.eps, name="ffn_ln")(x), train=train)
    else:
      x = q + attn(q, x, mask, train=train)
      x = ffn(nn.LayerNorm(epsilon=self.eps, name="ffn_ln")(x), train=train)
    return x * valid[..., None]
