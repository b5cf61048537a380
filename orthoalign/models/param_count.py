"""Parameter counts of a config without training, and parameter matching for the scaling experiment.

The paper's Figure 3 (reference/paper.md §4) compares baseline + GCA with bigger baselines of about
the same total parameter count. The paper does not say which dimension it grew; orthoalign grows
the feed-forward width (GROW_KEY, `model.ffn`): it leaves the embedding tables, the sequence length
and the number of attention blocks -- and so the model's structure -- as they are, and it moves
the count in small steps, so a target can be met within 1 %. (An unverified secondary source,
cited in paper.md §4.1, says the paper added the extra parameters to the FFNs.) Counts include
frozen tables, as the paper's do (`sum(p.numel() for p in model.parameters())` in the baselines'
code).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign import models
from orthoalign.config import dicts
from orthoalign.config import validation
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load

# The config key parameter matching grows, the same for every baseline (models/settings.py's shared
# `ffn`: LLM4CDSR's, CDSRNP's and SASRec's blocks' FFNs, ABXI's SwiGLU FFN and three projectors),
# and its smallest value.
GROW_KEY, GROW_MIN = "model.ffn", 1


# Users kept for counting: a model's parameters depend on the item catalog (and its text), never on
# the users, so counting builds the model on a few users instead of assembling every window.
_COUNT_USERS = 64


@functools.lru_cache(maxsize=8)
def _dataset(data_json: str) -> dataset_lib.CDSRDataset:
  """The configured dataset's catalog and item text with a few users spread over its user range."""
  ds = data_load.load(ml_collections.ConfigDict(json.loads(data_json)))
  users = np.unique(np.linspace(0, ds.num_users - 1, min(_COUNT_USERS, ds.num_users)).astype(int))
  span = lambda a, u: None if a is None else a[ds.offsets[u] : ds.offsets[u + 1]]
  pick = lambda a: None if a is None else a[users]
  return dataset_lib.CDSRDataset.from_sequences(
    ds.name,
    ds.num_items_a,
    ds.num_items_b,
    [ds.sequence(u) for u in users],
    timestamps=None if ds.timestamps is None else [span(ds.timestamps, u) for u in users],
    item_text_emb=ds.item_text_emb,
    user_ids=pick(ds.user_ids),
    user_split=pick(ds.user_split),
    item_keys=ds.item_keys,
    item_titles=ds.item_titles,
  )


def _key(tree: Any) -> str:
  return json.dumps(tree, sort_keys=True, default=list)


def count(config: ml_collections.ConfigDict) -> tuple[int, int]:
  """(total, trainable) parameters of one replica of `config`'s model, without initialising it.

  Total = trainable + frozen tables (e.g. LLM4CDSR's frozen text-embedding tables). Loads the
  dataset (cached per data config) and builds the model on its catalog with a few of its users
  (the counts do not depend on the users); nothing is compiled or trained.

  Raises:
    ConfigError: for an invalid config (see validation.validate).
  """
  return _count(_key(config.to_dict()))


@functools.lru_cache(maxsize=256)
def _count(config_json: str) -> tuple[int, int]:
  config = ml_collections.ConfigDict(json.loads(config_json))
  validation.validate(config)
  ds = _dataset(_key(config.data.to_dict()))
  model = models.baseline_class(config.model.name)(ds, config)
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  trainable = int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))
  frozen = int(sum(np.size(x) for x in jax.tree.leaves(model.frozen)))
  return trainable + frozen, trainable


@dataclasses.dataclass(frozen=True)
class Match:
  """The result of `match`: the grown key's value and the counts it gives."""

  key: str
  value: int
  target: int
  total: int
  trainable: int

  @property
  def rel_error(self) -> float:
    return (self.total - self.target) / self.target

  def to_dict(self) -> dict[str, Any]:
    return {**dataclasses.asdict(self), "rel_error": self.rel_error}


def with_values(
  config: ml_collections.ConfigDict, updates: dict[str, Any]
) -> ml_collections.ConfigDict:
  """A copy of `config` with dotted keys set, e.g. {"model.ffn": 96, "gca.positions": ()}."""
  out = ml_collections.ConfigDict(config.to_dict())
  for key, value in updates.items():
    dicts.parent_of(out, key)[key.rsplit(".", 1)[-1]] = value
  return out


def match(
  config: ml_collections.ConfigDict,
  target_total: int,
  key: str | None = None,
  max_value: int = 1 << 20,
) -> Match:
  """The value of `key` (default GROW_KEY) whose total count is nearest to `target_total`.

  The count is affine in a feed-forward width, so two counts predict the value; the prediction and
  its neighbours are then counted for real and the nearest is returned (ties: the smaller value).
  The result is within one step of the target; check `rel_error` (the scaling grids require
  |rel_error| <= 1 % and say so where a target is unreachable, e.g. below the smallest width).

  Args:
    config: the baseline's config (GCA positions as wanted for the counted model, usually none).
    target_total: the total parameter count to reach (frozen tables included).
    key: the integer config key to grow; default GROW_KEY.
    max_value: the largest value considered.

  Raises:
    ConfigError: a key the config lacks or that is not an int in it.
  """
  key, low = key or GROW_KEY, GROW_MIN
  if not isinstance(dicts.get(config, key), int):
    raise errors.ConfigError(
      f"parameter matching grows config key {key}, which must be an int "
      f"(is {dicts.get(config, key)!r})"
    )
  at = lambda value: count(with_values(config, {key: value}))

  c0, c1 = at(low)[0], at(low + 1)[0]
  slope = max(c1 - c0, 1)
  guess = int(np.clip(round(low + (target_total - c0) / slope), low, max_value))
  candidates = [v for v in (guess - 1, guess, guess + 1) if low <= v <= max_value]
  best = min(candidates, key=lambda v: (abs(at(v)[0] - target_total), v))
  total, trainable = at(best)
  return Match(key=key, value=best, target=int(target_total), total=total, trainable=trainable)
