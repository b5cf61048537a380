"""Embedded synthetic CDSR dataset with a planted, tunable cross-domain signal.

Each user's next item in a domain is drawn from a softmax over the domain's
unseen items whose logit adds item popularity, the user's taste in that domain,
a transition from the user's last item in the SAME domain, and, scaled by
`cross_strength` (lambda), a transition from the user's last item in the OTHER
domain. With lambda = 0 a user's A and B subsequences are independent; with
lambda > 0 part of what predicts the next A item is visible only in the B
history (and vice versa). The exact process is in docs/data.md.
"""

from collections.abc import Mapping
import dataclasses
import math
from typing import Any

import numpy as np

from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.errors import DataError

# Per-step domain probability of overlapped users: P(B) ~ U(lo, hi) per user.
_B_RATE_RANGE = (0.2, 0.8)
# Users simulated together; bounds memory at O(block * items) and is fixed so
# that the output does not depend on the machine.
_USER_BLOCK = 4096
_TIME_ORIGIN = 1_600_000_000  # Unix seconds of the earliest first event.
_TIME_SPREAD = 365 * 86_400  # First events are spread over a year.
_MEAN_GAP = 86_400  # Mean seconds between a user's events.


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
  """Knobs of the synthetic generator (see docs/data.md for the equations).

  Attributes:
    num_users: U.
    num_items_a: nA; must be >= max_length (items never repeat in a user).
    num_items_b: nB; must be >= max_length.
    mean_length: expected sequence length. L = min_length + min(X, max_length
      - min_length) with X geometric on {0, 1, ...}, its parameter solved so
      that E[L] = mean_length exactly (after clipping).
    min_length: shortest sequence; >= 3 so every user is evaluated.
    max_length: longest sequence.
    overlap_share: share of users with items in both domains; the rest are
      A-only or B-only, half each (counts rounded, then assigned at random).
    cross_strength: lambda, weight of the planted cross-domain transition;
      0 makes a user's A and B subsequences independent.
    latent_dim: k, dimension of item factors and user tastes.
    text_dim: dimension of the synthetic item "text embedding".
    text_noise: std of the Gaussian noise added to the projected factors.
    temperature: tau; logits are divided by it. 1.0 with unit-variance terms
      leaves the next item far from determined (learnable, not trivial).
    taste_strength: alpha, weight of the user's per-domain taste.
    sequential_strength: beta, weight of the same-domain transition.
    popularity_std: std of the per-item log-popularity bias.
    seed: everything is a deterministic function of the config.
    planted: False switches to the light catalogue generator (`_draw_by_popularity`):
      each next item is drawn by its popularity alone (no tastes, transitions or
      planted cross-domain signal) and text embeddings are random unit rows, in
      O(users x max_length + items x text_dim) memory, so that catalogues of
      millions of items fit (the planted process holds [4096 x items] float64
      per user block: 32 GiB at 1M items). For speed and memory benchmarks only.
  """

  num_users: int = 2000
  num_items_a: int = 400
  num_items_b: int = 400
  mean_length: float = 20.0
  min_length: int = 5
  max_length: int = 60
  overlap_share: float = 0.8
  cross_strength: float = 1.0
  latent_dim: int = 16
  text_dim: int = 64
  text_noise: float = 0.5
  temperature: float = 1.0
  taste_strength: float = 1.0
  sequential_strength: float = 1.0
  popularity_std: float = 0.5
  seed: int = 0
  planted: bool = True

  def __post_init__(self):
    def bad(key: str, expected: str) -> DataError:
      return DataError(
        f"expected {expected}, got {getattr(self, key)!r}", key=f"synthetic config {key}"
      )

    for key in ("num_users", "latent_dim", "text_dim"):
      if getattr(self, key) < 1:
        raise bad(key, ">= 1")
    if self.min_length < 3:
      raise bad("min_length", ">= 3 (leave-one-out needs 3 items)")
    if self.max_length < self.min_length:
      raise bad("max_length", f">= min_length = {self.min_length}")
    if not self.min_length <= self.mean_length <= self.max_length:
      raise bad(
        "mean_length", f"in [min_length, max_length] = [{self.min_length}, {self.max_length}]"
      )
    for key in ("num_items_a", "num_items_b"):
      if getattr(self, key) < self.max_length:
        raise bad(key, f">= max_length = {self.max_length} (items never repeat within a user)")
    if not 0.0 <= self.overlap_share <= 1.0:
      raise bad("overlap_share", "a share in [0, 1]")
    if not self.temperature > 0:
      raise bad("temperature", "> 0")
    for key in (
      "cross_strength",
      "text_noise",
      "taste_strength",
      "sequential_strength",
      "popularity_std",
    ):
      value = getattr(self, key)
      if not (math.isfinite(value) and value >= 0):
        raise bad(key, "a finite value >= 0")
    if self.seed < 0:
      raise bad("seed", ">= 0")


_FIELDS = {f.name: f for f in dataclasses.fields(SyntheticConfig)}


def from_config_dict(d: Mapping[str, Any] | Any) -> SyntheticConfig:
  """Builds a `SyntheticConfig` from a dict or ml_collections ConfigDict.

  Missing keys take their defaults; ints are accepted for float keys.

  Args:
    d: mapping (or object with `to_dict()`) of SyntheticConfig field names.

  Returns:
    The config.

  Raises:
    DataError: on an unknown key (listing the valid ones), a value of the
      wrong type, or an invalid value.
  """
  if hasattr(d, "to_dict"):
    d = d.to_dict()
  kwargs = {}
  for key, value in d.items():
    field = _FIELDS.get(key)
    if field is None:
      raise DataError(
        f"unknown key; valid keys are {', '.join(sorted(_FIELDS))}", key=f"synthetic config {key!r}"
      )
    if field.type is bool:
      if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"expected True or False, got {value!r}", key=f"synthetic config {key}")
      kwargs[key] = bool(value)
      continue
    is_number = isinstance(value, (int, float, np.integer, np.floating))
    if isinstance(value, (bool, np.bool_)) or not is_number or not math.isfinite(float(value)):
      raise DataError(f"expected a finite number, got {value!r}", key=f"synthetic config {key}")
    if field.type is int:
      if float(value) != int(value):
        raise DataError(f"expected an int, got {value!r}", key=f"synthetic config {key}")
      value = int(value)
    else:
      value = float(value)
    kwargs[key] = value
  return SyntheticConfig(**kwargs)


def _geometric_q(mean_extra: float, cap: int) -> float:
  """Solves E[min(X, cap)] = mean_extra for X ~ Geometric on {0, 1, ...}.

  With P(X >= j) = q^j, E[min(X, cap)] = sum_{j=1..cap} q^j, increasing in q.
  """
  if mean_extra <= 0 or cap == 0:
    return 0.0
  if mean_extra >= cap:
    return 1.0
  clipped_mean = lambda q: q * (1 - q**cap) / (1 - q)
  lo, hi = 0.0, 1.0 - 1e-12
  for _ in range(100):
    mid = 0.5 * (lo + hi)
    lo, hi = (mid, hi) if clipped_mean(mid) < mean_extra else (lo, mid)
  return 0.5 * (lo + hi)


def _lengths(cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
  cap = cfg.max_length - cfg.min_length
  q = _geometric_q(cfg.mean_length - cfg.min_length, cap)
  if q <= 0.0:
    extra = np.zeros(cfg.num_users, np.int64)
  elif q >= 1.0:
    extra = np.full(cfg.num_users, cap, np.int64)
  else:
    extra = np.minimum(rng.geometric(1.0 - q, cfg.num_users) - 1, cap)
  return cfg.min_length + extra


def _domain_plan(cfg: SyntheticConfig, lengths: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """bool [U, max_length]: True where step t of user u is in domain B."""
  num_users = cfg.num_users
  num_over = int(round(cfg.overlap_share * num_users))
  num_a_only = (num_users - num_over) // 2
  kind = np.full(num_users, 2, np.int8)  # 0 = A-only, 1 = B-only, 2 = both.
  kind[num_over : num_over + num_a_only] = 0
  kind[num_over + num_a_only :] = 1
  kind = rng.permutation(kind)
  rate = rng.uniform(*_B_RATE_RANGE, size=num_users)
  is_b = rng.random((num_users, cfg.max_length)) < rate[:, None]
  is_b[kind == 0] = False
  is_b[kind == 1] = True
  # An overlapped user whose coin flips all landed on one side gets one
  # random step flipped, so that "overlapped" holds by construction.
  active = np.arange(cfg.max_length)[None, :] < lengths[:, None]
  num_b = np.sum(is_b & active, axis=1)
  one_sided = np.flatnonzero((kind == 2) & ((num_b == 0) | (num_b == lengths)))
  flip_at = (rng.random(one_sided.shape[0]) * lengths[one_sided]).astype(int)
  is_b[one_sided, flip_at] = ~is_b[one_sided, flip_at]
  return is_b


@dataclasses.dataclass(frozen=True)
class _Domain:
  """Fixed parameters of one domain's next-item logits, pre-scaled by 1/tau."""

  factors: np.ndarray  # [n, k] item factors e_i (for the text embedding).
  logit_items: np.ndarray  # [k, n] e_i / (sqrt(k) tau), transposed.
  bias: np.ndarray  # [n] c_i / tau.
  same: np.ndarray  # [n+1, k] beta W e_j for last same-domain item j.
  cross: np.ndarray  # [m+1, k] lambda M e_j for last other-domain j.


def _make_domains(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[_Domain, _Domain]:
  k = cfg.latent_dim
  e_a = rng.standard_normal((cfg.num_items_a, k))
  e_b = rng.standard_normal((cfg.num_items_b, k))
  # Entries N(0, 1/k) keep W e (and M e) at unit variance per coordinate.
  w_a, w_b, m_ba, m_ab = (rng.standard_normal((k, k)) / math.sqrt(k) for _ in range(4))
  c_a = cfg.popularity_std * rng.standard_normal(cfg.num_items_a)
  c_b = cfg.popularity_std * rng.standard_normal(cfg.num_items_b)

  def pad(x: np.ndarray) -> np.ndarray:  # Row 0 stands for "no last item".
    return np.concatenate([np.zeros((1, k)), x])

  def domain(e, c, w, e_other, m) -> _Domain:
    return _Domain(
      factors=e,
      logit_items=np.ascontiguousarray(e.T) / (math.sqrt(k) * cfg.temperature),
      bias=c / cfg.temperature,
      same=pad(cfg.sequential_strength * e @ w.T),
      cross=pad(cfg.cross_strength * e_other @ m.T),
    )

  return domain(e_a, c_a, w_a, e_b, m_ba), domain(e_b, c_b, w_b, e_a, m_ab)


def _sample_unseen(logits: np.ndarray, seen: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """One draw per row from softmax(logits) restricted to ~seen (0-based).

  Inverse-CDF sampling in float64, so that the chance of a last-bit difference
  between machines flipping a draw is negligible. Overwrites `logits` and works
  in place: fresh [users, items] temporaries cost more than the arithmetic.
  """
  np.putmask(logits, seen, -np.inf)
  logits -= logits.max(axis=1, keepdims=True)
  cdf = np.exp(logits, out=logits)
  np.cumsum(cdf, axis=1, out=cdf)
  r = rng.random(cdf.shape[0]) * cdf[:, -1]
  choice = np.sum(cdf <= r[:, None], axis=1)
  # r can round up to the total; take the last unseen item then.
  for i in np.flatnonzero(choice >= cdf.shape[1]):
    choice[i] = np.flatnonzero(~seen[i])[-1]
  return choice


def _simulate_block(
  cfg: SyntheticConfig,
  doms: tuple[_Domain, _Domain],
  lengths: np.ndarray,
  is_b: np.ndarray,
  rng: np.random.Generator,
) -> np.ndarray:
  """Returns int32 [block, max_length] local ids (1-based), 0 past the end."""
  num_users = lengths.shape[0]
  k = cfg.latent_dim
  taste = cfg.taste_strength * rng.standard_normal((2, num_users, k))
  sizes = (cfg.num_items_a, cfg.num_items_b)
  seen = [np.zeros((num_users, n), bool) for n in sizes]
  buffers = [np.empty((num_users, n)) for n in sizes]
  # Last local id per domain and user, 0 = none yet.
  last = np.zeros((2, num_users), np.int64)
  out = np.zeros((num_users, cfg.max_length), np.int32)
  for t in range(int(lengths.max())):
    active = lengths > t
    for d in (0, 1):
      users = np.flatnonzero(active & (is_b[:, t] == bool(d)))
      if users.size == 0:
        continue
      dom = doms[d]
      query = taste[d, users] + dom.same[last[d, users]] + dom.cross[last[1 - d, users]]
      # einsum's own loops, not BLAS: at k ~ 16 a multithreaded BLAS call costs
      # more in thread hand-off than it saves, badly so on a busy machine.
      logits = np.einsum("uk,kn->un", query, dom.logit_items, out=buffers[d][: users.size])
      logits += dom.bias
      choice = _sample_unseen(logits, seen[d][users], rng)
      seen[d][users, choice] = True
      last[d, users] = choice + 1
      out[users, t] = choice + 1
  return out


def _draw_by_popularity(
  cfg: SyntheticConfig,
  lengths: np.ndarray,
  is_b: np.ndarray,
  param_rng: np.random.Generator,
  rng: np.random.Generator,
) -> np.ndarray:
  """The light process: int32 [U, max_length] local ids (1-based), 0 past the end.

  Each step's item is drawn from its domain by popularity (log-normal weights,
  log-std `popularity_std`) through an inverse CDF; a draw that repeats an
  item of the same user and domain is drawn again (whole rounds, vectorised),
  so items never repeat within a user, as in the planted process.
  """
  out = np.zeros((cfg.num_users, cfg.max_length), np.int32)
  active = np.arange(cfg.max_length)[None, :] < lengths[:, None]
  for d, n in enumerate((cfg.num_items_a, cfg.num_items_b)):
    cdf = np.cumsum(np.exp(cfg.popularity_std * param_rng.standard_normal(n)))
    cdf /= cdf[-1]
    where = active & (is_b == bool(d))
    todo = where.copy()
    while todo.any():
      draws = np.minimum(np.searchsorted(cdf, rng.random(int(todo.sum())), side="right"), n - 1)
      out[todo] = draws + 1
      # A repeat within the user's row (this domain only): keep the first, draw the rest again.
      ids = np.where(where, out, 0).astype(np.int64)
      order = np.argsort(ids, axis=1, kind="stable")
      ranked = np.take_along_axis(ids, order, axis=1)
      repeat = np.zeros_like(where)
      dup = (ranked[:, 1:] == ranked[:, :-1]) & (ranked[:, 1:] > 0)
      np.put_along_axis(repeat, order[:, 1:], dup, axis=1)
      todo = repeat
  return out


def generate(cfg: SyntheticConfig) -> CDSRDataset:
  """Generates the synthetic dataset described by `cfg`.

  Args:
    cfg: the config; the same config always gives identical arrays.

  Returns:
    A validated `CDSRDataset` named 'synthetic' with timestamps and item text
    embeddings.
  """
  seq_seed, param_seed, text_seed = np.random.SeedSequence(cfg.seed).spawn(3)
  # Item-side parameters get their own stream so they do not change with
  # num_users or the length settings.
  param_rng = np.random.default_rng(param_seed)
  rng = np.random.default_rng(seq_seed)
  text_rng = np.random.default_rng(text_seed)
  if cfg.planted:
    doms = _make_domains(cfg, param_rng)
  lengths = _lengths(cfg, rng)
  is_b = _domain_plan(cfg, lengths, rng)

  if cfg.planted:
    local = np.zeros((cfg.num_users, cfg.max_length), np.int32)
    for lo in range(0, cfg.num_users, _USER_BLOCK):
      hi = min(lo + _USER_BLOCK, cfg.num_users)
      local[lo:hi] = _simulate_block(cfg, doms, lengths[lo:hi], is_b[lo:hi], rng)
  else:
    local = _draw_by_popularity(cfg, lengths, is_b, param_rng, rng)

  active = np.arange(cfg.max_length)[None, :] < lengths[:, None]
  items = np.where(is_b, local + cfg.num_items_a, local)[active]
  domains = is_b[active].astype(np.int8)
  offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)

  # Strictly increasing per user: a random start plus gaps of >= 1 second.
  start = rng.integers(0, _TIME_SPREAD, cfg.num_users) + _TIME_ORIGIN
  gaps = 1 + np.floor(rng.exponential(_MEAN_GAP, items.shape[0])).astype(np.int64)
  gaps[offsets[:-1]] = start
  # Cumulative sum restarted at each user: subtract the total before the user.
  csum = np.cumsum(gaps)
  timestamps = csum - np.repeat(csum[offsets[:-1]] - start, lengths)

  if cfg.planted:
    proj = text_rng.standard_normal((cfg.latent_dim, cfg.text_dim)) / math.sqrt(cfg.latent_dim)
    factors = np.concatenate([doms[0].factors, doms[1].factors])
    text = factors @ proj + cfg.text_noise * text_rng.standard_normal(
      (factors.shape[0], cfg.text_dim)
    )
  else:
    text = text_rng.standard_normal(
      (cfg.num_items_a + cfg.num_items_b, cfg.text_dim), dtype=np.float32
    )
  # Unit rows, like the sentence-encoder outputs (ada-002, MiniLM) the baselines feed on.
  text /= np.linalg.norm(text, axis=1, keepdims=True)
  text = np.concatenate([np.zeros((1, cfg.text_dim)), text]).astype(np.float32)

  return CDSRDataset(
    name="synthetic",
    num_items_a=cfg.num_items_a,
    num_items_b=cfg.num_items_b,
    offsets=offsets,
    items=items.astype(np.int32),
    domains=domains,
    timestamps=timestamps,
    item_text_emb=text,
  )
