"""The seed's scenario, synthetic: a sparse ads domain with rare clicks, helped by dense logs of
the same users in two other apps (post views with dwell seconds, post likes).

Each user u has a latent taste z_u ~ N(0, I_k). Items of every domain have latent factors v_i ~
N(0, I_k). The source domains show the taste densely: a user's post views and likes pick items
by a softmax over z_u . v_i / sqrt(k) (scaled by `source_sharpness`), and a view's dwell time
grows with the match (log dwell ~ N(log 20 s + 0.5 m, 0.5), m the scaled match). The ads
domain shows it sparsely: each impression shows a uniformly drawn ad a, and the user clicks
with probability sigmoid(b + c_a + lambda * z_u . v_a / sqrt(k)), lambda = `cross_strength`
(the planted cross-domain preference), c_a ~ N(0, 0.5) the ad's own appeal, b solved so that the
mean click rate is `ctr`. With lambda = 0 the sources say nothing about clicks; with lambda > 0
what predicts a click is mostly visible in the source domains (a user has few clicks). Times are
uniform over `days` days. Everything is a deterministic function of the config.

  events = generate(AdsConfig())           # an events.Events with labels and values
  write_csv(events, "ads_log.csv")         # the same as an events table (docs/data.md)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os

import numpy as np

from orthoalign.datasets import events as events_lib
from orthoalign.errors import DataError
from orthoalign.fileio import atomic_write_text

TARGET, DWELL, LIKES = "ads", "posts", "likes"
DOMAINS = (TARGET, DWELL, LIKES)
_START = 1_700_000_000  # unix seconds of the log's first day


@dataclasses.dataclass(frozen=True)
class AdsConfig:
  """Knobs of the ads scenario (equations in the module docstring).

  Attributes:
    num_users: users (every one has impressions and source events).
    num_ads, num_posts, num_liked: items of the ads, dwell-time and likes domains.
    mean_impressions, mean_views, mean_likes: events per user in each domain (Poisson, at least
      one impression).
    ctr: the mean click rate of impressions, in (0, 0.5].
    cross_strength: lambda, the weight of the taste in a click's logit; 0 = no cross-domain signal.
    source_sharpness: how strongly the taste picks source items.
    latent_dim: k.
    days: the log's span; event times are uniform over it.
    seed: the random seed.
  """

  num_users: int = 3000
  num_ads: int = 200
  num_posts: int = 400
  num_liked: int = 300
  mean_impressions: float = 25.0
  mean_views: float = 60.0
  mean_likes: float = 20.0
  ctr: float = 0.02
  cross_strength: float = 2.0
  source_sharpness: float = 2.0
  latent_dim: int = 8
  days: int = 30
  seed: int = 0

  def __post_init__(self):
    for field in ("num_users", "num_ads", "num_posts", "num_liked", "latent_dim", "days"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DataError(f"expected an integer >= 1, got {value!r}", key=f"ads config {field}")
    for field in ("mean_impressions", "mean_views", "mean_likes", "source_sharpness"):
      if not getattr(self, field) > 0:
        raise DataError(f"expected > 0, got {getattr(self, field)!r}", key=f"ads config {field}")
    if not 0 < self.ctr <= 0.5:
      raise DataError(f"expected 0 < ctr <= 0.5, got {self.ctr!r}", key="ads config ctr")
    if not self.cross_strength >= 0:
      raise DataError(
        f"expected >= 0, got {self.cross_strength!r}", key="ads config cross_strength"
      )


def _choose(rng: np.random.Generator, logits: np.ndarray) -> np.ndarray:
  """One index per row of `logits` [n, m], drawn by softmax (Gumbel-max)."""
  return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def _bias_for(ctr: float, logits: np.ndarray) -> float:
  """b with mean(sigmoid(b + logits)) = ctr, by bisection."""
  lo, hi = -30.0, 30.0
  for _ in range(100):
    mid = (lo + hi) / 2
    if np.mean(1 / (1 + np.exp(-(mid + logits)))) < ctr:
      lo = mid
    else:
      hi = mid
  return (lo + hi) / 2


def generate(config: AdsConfig | None = None) -> events_lib.Events:
  """The scenario's log as events (domains ads, posts, likes; read order = time order).

  Returns:
    Events with a label (ads: 0/1 clicks; posts and likes: 1) and a value (posts: dwell seconds;
    ads and likes: NaN), user ids u00000.., item ids a0000.. / p0000.. / l0000...
  """
  return generate_with_truth(config)[0]


def generate_with_truth(config: AdsConfig | None = None) -> tuple[events_lib.Events, np.ndarray]:
  """`generate`, and each event's true click probability (float64 [n]; NaN for source events):
  what a model that knew every taste would predict (for tests and for a model's ceiling).
  """
  cfg = config or AdsConfig()
  rng = np.random.default_rng(cfg.seed)
  k, scale = cfg.latent_dim, 1 / math.sqrt(cfg.latent_dim)
  taste = rng.normal(size=(cfg.num_users, k))
  factors = {
    TARGET: rng.normal(size=(cfg.num_ads, k)),
    DWELL: rng.normal(size=(cfg.num_posts, k)),
    LIKES: rng.normal(size=(cfg.num_liked, k)),
  }
  appeal = rng.normal(0, 0.5, size=cfg.num_ads)
  span_ms = cfg.days * 86_400_000
  rows = []  # (user, domain, item, ts_ms, label, value) per domain
  # Sources: dense, their items picked by the taste.
  for domain, mean in ((DWELL, cfg.mean_views), (LIKES, cfg.mean_likes)):
    n = rng.poisson(mean, cfg.num_users)
    user = np.repeat(np.arange(cfg.num_users), n)
    match = cfg.source_sharpness * scale * taste[user] @ factors[domain].T
    item = _choose(rng, match)
    chosen = match[np.arange(user.size), item] / cfg.source_sharpness
    value = np.full(user.size, np.nan)
    if domain == DWELL:
      value = np.round(np.exp(rng.normal(math.log(20) + 0.5 * chosen, 0.5)), 1)
    rows.append(
      (user, domain, item, rng.integers(0, span_ms, user.size), np.ones(user.size), value)
    )
  # Ads: sparse impressions of uniformly drawn ads, clicked by the taste (cross_strength).
  n = np.maximum(rng.poisson(cfg.mean_impressions, cfg.num_users), 1)
  user = np.repeat(np.arange(cfg.num_users), n)
  ad = rng.integers(0, cfg.num_ads, user.size)
  logit = appeal[ad] + cfg.cross_strength * scale * np.einsum(
    "ij,ij->i", taste[user], factors[TARGET][ad]
  )
  p = 1 / (1 + np.exp(-(_bias_for(cfg.ctr, logit) + logit)))
  click = (rng.random(user.size) < p).astype(np.int8)
  rows.append(
    (user, TARGET, ad, rng.integers(0, span_ms, user.size), click, np.full(user.size, np.nan))
  )
  truth = np.concatenate([np.full(r[0].size, np.nan) for r in rows[:-1]] + [p])

  names = (TARGET, DWELL, LIKES)
  prefix = {TARGET: "a", DWELL: "p", LIKES: "l"}
  sizes = {TARGET: cfg.num_ads, DWELL: cfg.num_posts, LIKES: cfg.num_liked}
  item_keys, item_domain, first = [], [], {}
  for code, name in enumerate(names):
    first[name] = len(item_keys)
    item_keys += [f"{prefix[name]}{i:04d}" for i in range(sizes[name])]
    item_domain += [code] * sizes[name]
  cat = lambda i: np.concatenate([r[i] for r in rows])
  user, ts = cat(0), cat(3) + _START * 1000
  domain = np.concatenate([np.full(r[0].size, names.index(r[1]), np.int8) for r in rows])
  item = np.concatenate([r[2] + first[r[1]] for r in rows])
  order = np.lexsort((np.arange(user.size), ts))  # a log is in time order
  ts = (ts // 1000) * 1000  # whole seconds, as a log's times usually are
  events = events_lib.Events(
    user=user[order].astype(np.int64),
    item=item[order].astype(np.int64),
    domain=domain[order],
    ts_ms=ts[order].astype(np.int64),
    label=cat(4)[order].astype(np.int8),
    value=cat(5)[order].astype(np.float32),
    user_keys=[f"u{u:05d}" for u in range(cfg.num_users)],
    item_keys=item_keys,
    item_domain=np.asarray(item_domain, np.int8),
    domain_names=names,
  )
  return events, truth[order]


def write_csv(events: events_lib.Events, path: str) -> None:
  """Writes events with labels and values as an events table: user_id, item_id, ts (unix
  seconds), app, clicked, dwell (empty = none); atomically.
  """
  lines = [["user_id", "item_id", "ts", "app", "clicked", "dwell"]]
  for u, i, d, t, c, v in zip(
    events.user, events.item, events.domain, events.ts_ms, events.label, events.value
  ):
    value = "" if np.isnan(v) else f"{v:g}"
    lines.append(
      [events.user_keys[u], events.item_keys[i], t // 1000, events.domain_names[d], int(c), value]
    )
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  text = io.StringIO()
  csv.writer(text, lineterminator="\n").writerows(lines)
  atomic_write_text(path, text.getvalue())
