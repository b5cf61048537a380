"""The `train.*`, `eval.*` and replica-sweep checks (run by orthoalign.config.validation).

Each raises `errors.ConfigError` naming the key, its value and what is allowed, before anything
is written or traced.
"""

from __future__ import annotations

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.config import replica_axes
from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.train import step as step_lib

ConfigError = errors.ConfigError

_POSITIVE_INTS = (
  "train.batch_size",
  "train.max_epochs",
  "train.eval_every",
  "eval.num_negatives",
  "eval.batch_size",
  "train.early_stop_patience",
  "train.checkpoint_every",
)


# Every train.*, eval.* and common sweep key the trainer reads (configs/base.py has them all).
_KEYS = (
  tuple(
    f"train.{k}"
    for k in (
      "batch_size",
      "checkpoint_every",
      "compute_dtype",
      "early_stop_patience",
      "eval_every",
      "item_shards",
      "learning_rate",
      "length_buckets",
      "max_epochs",
      "num_devices",
      "plateau_factor",
      "plateau_patience",
      "select_metric",
      "warmup_epochs",
      "warmup_start_factor",
      "weight_decay",
    )
  )
  + tuple(
    f"eval.{k}"
    for k in (
      "batch_size",
      "candidate_seed",
      "extra_negatives",
      "num_negatives",
      "ties",
      "track_test",
    )
  )
  + replica_axes.sweep_keys("train")
)


def check_config(config: ml_collections.ConfigDict) -> None:
  """The trainer's and the evaluation's settings, and the seed, learning-rate, weight-decay lists.

  Raises:
    ConfigError: naming the first missing or invalid key.
  """
  dicts.require(config, _KEYS, "the trainer", "configs/base.py")
  dicts.choice("eval.ties", config.eval.ties, ranking.TIES)
  dicts.choice("train.compute_dtype", config.train.compute_dtype, step_lib.COMPUTE_DTYPES)
  dicts.check_int(config, "train.num_devices", 0)
  shards = config.train.item_shards
  if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
    raise ConfigError(
      f"config key train.item_shards={shards!r} must be an int >= 1 (1 = item tables not "
      "split; k splits them over k devices of train.num_devices)"
    )
  _check_length_buckets(config)
  for key in _POSITIVE_INTS:
    value = dicts.get(config, key)
    if not isinstance(value, int) or value <= 0:
      raise ConfigError(f"config key {key}={value!r} must be a positive int")
  extra = config.eval.extra_negatives
  if (
    not isinstance(extra, (tuple, list))
    or len(set(extra)) != len(extra)
    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in extra)
  ):
    raise ConfigError(
      f"config key eval.extra_negatives={extra!r}; expected a tuple of distinct positive ints "
      "(each N adds the protocol sampled<N>), e.g. '(999,)'"
    )
  _check_select_metric(config)
  for key in ("train.warmup_epochs", "train.plateau_patience"):
    if not isinstance(dicts.get(config, key), int) or dicts.get(config, key) < 0:
      raise ConfigError(f"config key {key}={dicts.get(config, key)!r} must be an int >= 0")
  if config.train.warmup_epochs >= config.train.max_epochs:
    raise ConfigError(
      f"config key train.warmup_epochs={config.train.warmup_epochs} leaves no validated epoch "
      f"within train.max_epochs={config.train.max_epochs} (no validation during warm-up, so no "
      "best epoch); lower it or train longer"
    )
  dicts.check_int(config, "eval.candidate_seed", 0, dicts.SEED_LIMIT - 1)
  for key in ("train.warmup_start_factor", "train.plateau_factor"):
    value = dicts.get(config, key)
    if not dicts.is_finite_number(value) or not 0 < value <= 1:
      raise ConfigError(f"config key {key}={value!r} must be a number in (0, 1]")
  _check_sweep(config)


def _check_select_metric(config: ml_collections.ConfigDict) -> None:
  """train.select_metric: a validation metric key of a declared protocol, or a '+'-joined sum."""
  declared = keys.protocols(config.eval)
  if not isinstance(config.train.select_metric, str):
    raise ConfigError(
      f"config key train.select_metric={config.train.select_metric!r} must be a metric key, "
      "e.g. 'valid/sampled/all/ndcg@10'"
    )
  for term in config.train.select_metric.split("+"):
    match = keys.SELECT_RE.match(term)
    if not match or match.group(1) not in declared:
      raise ConfigError(
        f"config key train.select_metric={config.train.select_metric!r}; expected "
        f"valid/<{'|'.join(declared)}>/<A|B|all>/<ndcg@1|5|10, hr@1|5|10, mrr, auc> "
        "(a protocol this config evaluates: eval.extra_negatives declares "
        "sampled<N>), or a '+'-joined sum of such keys"
      )


def _check_length_buckets(config: ml_collections.ConfigDict) -> None:
  """train.length_buckets: strictly ascending ints >= 1 (the model checks them against max_len)."""
  buckets = config.train.length_buckets
  if not buckets:
    return
  if (
    not isinstance(buckets, (tuple, list))
    or not all(isinstance(b, int) and not isinstance(b, bool) for b in buckets)
    or list(buckets) != sorted(set(buckets))
    or buckets[0] < 1
  ):
    raise ConfigError(
      f"config key train.length_buckets={buckets!r}; expected strictly ascending ints >= 1 and "
      "below the model's max_len (which is always the last bucket), e.g. '(25, 50, 100)', or () "
      "for none"
    )


def _check_sweep(config: ml_collections.ConfigDict) -> None:
  """The seed, learning-rate and weight-decay lists, and the single values they replace."""
  dicts.check_number_list(
    "sweep.seeds",
    config.sweep.seeds,
    dicts.NON_NEGATIVE,
    integer=True,
    high=dicts.SEED_LIMIT,
    at_least=1,
    what="each seed trains one replica",
  )
  for key, bound in (("learning_rate", dicts.POSITIVE), ("weight_decay", dicts.NON_NEGATIVE)):
    dicts.check_number(config, f"train.{key}", bound)
    dicts.check_number_list(f"sweep.{key}s", config.sweep[f"{key}s"], bound)
