"""What a baseline is to the trainer: a `Baseline` subclass, bound to a dataset and a config.

A baseline is one folder (`models/<name>/`: config, module, loss, inputs) whose package exposes
`Baseline`, a subclass of the class below, registered by one line in `models/__init__.py`. The
trainer (orthoalign/train/task.py) calls only this interface, in the spirit of RecML's task:

  Config                 the settings dataclass (models/settings.py); `default_config` follows
  check(config)          its checks of its `model.*` values, raising ConfigError before anything
                         is traced (`validate` runs them after checking the keys)
  Baseline(ds, config)   binds it to a dataset: builds the Flax module and its frozen tables
  train_windows()        host arrays, one row per training sequence
  eval_windows(split)    host arrays, one row per evaluation case of a split
  init(rng)              the trainable params of one replica
  loss(...)              the training loss and its metrics on one batch
  tables(...)            what scoring reads once per evaluation (e.g. item tables)
  score(...)             the scores of one evaluation batch (EvalOutputs)

and may declare GCA_KV, REPLICA_HPARAMS, DOMAINS and the LengthBuckets capability. The trainer
adds the rest every baseline shares: the frozen evaluation candidates and user groups, the GCA
cell names, replicas, sharding, ranks and metrics. A baseline prints nothing: what it was built
from goes in `notes`, which the trainer prints once.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import flax.struct
import jax
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import splits
from orthoalign.models import settings

Array = jax.Array


@flax.struct.dataclass
class EvalOutputs:
  """Per-batch evaluation outputs of a model.

  Attributes:
    sampled_scores: [B, 1+N] scores of the frozen candidates, column 0 = the target.
    full_scores: [B, nA+nB+1] scores of every item by global id (the trainer masks the catalog down
      to the target's domain, minus history and the target).
    cells: {cell name: intermediates of a GCA cell} (see models/gca.py).
  """

  sampled_scores: Array
  full_scores: Array
  cells: dict[str, Any]


class Baseline(abc.ABC):
  """A baseline bound to a dataset and a config.

  Class attributes (declared by each baseline):
    TITLE: its name as papers write it ("LLM4CDSR"), for messages.
    Config: its settings dataclass (models/settings.py).
    LABEL: one line saying what the implementation is ("" = none), kept in `model.label`.
    GCA_KV: the `gca.kv` values it supports.
    REPLICA_HPARAMS: its shape-keeping `model.*` keys replicas may vary -> their bounds
      (dicts.ANY / NON_NEGATIVE / POSITIVE / FRACTION); the loss reads them from `hparams`.
    DOMAINS: how many domains it models (two-domain data name them A and B).
    EVAL_SETTINGS: its `model.*` keys that change only how a trained model is scored, which
      `orthoalign.evaluate --set` may change (e.g. ABXI's eval_domain_seq).
    NATIVE_CELLS: names of the model's own cross-attentions that report the alignment statistics
      like GCA cells (in `cells` at every call, whatever gca.positions); a trailing "_A" / "_B"
      is reported under the dataset's domain name.

  Attributes (set by __init__):
    ds: the dataset; config: the run's config; settings: `Config` read from `config.model`.
    module: the Flax module, whose `__call__(batch, train=...)` returns its named intermediates
      (for inspection: tests, analysis); the trainer calls the methods below.
    frozen: non-trainable variable collections shared by every replica (e.g. frozen text tables).
    hparams: {name: config value} of REPLICA_HPARAMS the loss reads as arrays.
    notes: lines saying what the model was built from, printed once by the trainer.
  """

  TITLE: ClassVar[str]
  Config: ClassVar[type]
  LABEL: ClassVar[str] = ""
  GCA_KV: ClassVar[tuple[str, ...]] = ("other",)
  REPLICA_HPARAMS: ClassVar[dict[str, tuple]] = {}
  DOMAINS: ClassVar[int] = 2
  EVAL_SETTINGS: ClassVar[tuple[str, ...]] = ()
  NATIVE_CELLS: ClassVar[tuple[str, ...]] = ()

  def __init__(self, ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict):
    if ds.num_domains != self.DOMAINS:
      raise errors.ConfigError(
        f"config key model.name={config.model.name!r} models {self.DOMAINS} domains, but dataset "
        f"{ds.name!r} has {ds.num_domains} ({', '.join(ds.domain_names)})"
      )
    self.ds, self.config = ds, config
    self.settings = settings.read(self.Config, config.model)
    self.module: Any = None
    self.frozen: Any = {}
    self.hparams = {k: float(getattr(self.settings, k)) for k in self.REPLICA_HPARAMS}
    self.notes: tuple[str, ...] = ()

  @staticmethod
  def learned_gates(config: ml_collections.ConfigDict) -> bool:
    """Whether a run of `config` has gates that gca.gate_init / sweep.gate_inits initialise: its
    GCA cells' (and a model's own learned gates, where it has them).
    """
    return bool(tuple(config.gca.positions))

  @staticmethod
  def check(config: ml_collections.ConfigDict) -> None:
    """The model's own checks of its settings (values, ranges, GCA positions); none by default."""
    del config

  @classmethod
  def validate(cls, config: ml_collections.ConfigDict) -> None:
    """The model's config checks: every key a field of Config, none missing, then `check`.

    Raises:
      ConfigError: naming the key, its value and what is allowed.
    """
    settings.check_keys(cls.Config, config, cls.TITLE)
    dicts.require(config, settings.keys(cls.Config), cls.TITLE)
    cls.check(config)

  @abc.abstractmethod
  def train_windows(self) -> dict[str, np.ndarray]:
    """Host arrays with a common leading dimension, one row per training sequence."""

  @abc.abstractmethod
  def eval_windows(self, split: splits.EvalSplit) -> dict[str, np.ndarray]:
    """Host arrays of the split's cases; they hold "domain" (0 = A, 1 = B), "target" (global id)
    and "hist" (sorted items excluded from full ranking). The trainer adds the candidates ("cand")
    and the user groups (inputs/eval_cases.py).
    """

  def init(self, rng: Array) -> Any:
    """The trainable params of one replica: `module.init` on the first training row."""
    sample = {k: v[:1] for k, v in self.train_windows().items()}
    sample["row_valid"] = np.ones((1,), bool)
    return self.module.init({"params": rng, "dropout": rng}, sample, train=True)["params"]

  @abc.abstractmethod
  def loss(
    self,
    params: Any,
    frozen: Any,
    batch: dict[str, Array],
    rng: Array,
    hparams: dict[str, Array] | None = None,
  ) -> tuple[Array, dict[str, Array]]:
    """(loss, metrics) of one batch; batch["row_valid"] masks padded rows; `hparams` holds this
    replica's values of REPLICA_HPARAMS (scalars, traced under vmap), None = `self.hparams`.
    """

  @abc.abstractmethod
  def tables(self, params: Any, frozen: Any) -> Any:
    """What `score` needs once per evaluation (e.g. the item tables)."""

  @abc.abstractmethod
  def score(self, params: Any, frozen: Any, tables: Any, batch: dict[str, Array]) -> EvalOutputs:
    """The scores and GCA intermediates of one evaluation batch."""


class LengthBuckets(abc.ABC):
  """The capability to train and evaluate in length buckets (`train.length_buckets`).

  The default check below is for a model whose windows are `model.max_len` long and whose
  attention lets padding act as keys unless `model.mask_padding_keys` is set (LLM4CDSR, ABXI).
  """

  TITLE: ClassVar[str]

  @classmethod
  def check_length_buckets(cls, config: ml_collections.ConfigDict) -> None:
    """train.length_buckets (ascending ints >= 1, checked by train/checks.py) must lie below
    model.max_len, which is always the last bucket, and need model.mask_padding_keys=True.

    Raises:
      ConfigError: naming the key and why.
    """
    buckets = tuple(config.train.length_buckets)
    if buckets[-1] >= config.model.max_len:
      raise errors.ConfigError(
        f"config key train.length_buckets={buckets}; expected ints below "
        f"model.max_len={config.model.max_len} (which is always the last bucket)"
      )
    if config.model.mask_padding_keys is not True:
      raise errors.ConfigError(
        f"config key train.length_buckets={buckets} needs model.mask_padding_keys=True: cutting "
        f"padding off a batch must not change the model's outputs, and {cls.TITLE}'s attention "
        "lets padding act as keys unless masked"
      )

  @abc.abstractmethod
  def lengths(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """int32 [rows]: the real (non-padding) positions of each row of window-like arrays."""

  @abc.abstractmethod
  def crop(self, batch: dict[str, Any], length: int) -> dict[str, Any]:
    """The batch with its sequence axis cut to the last `length` positions, which changes none
    of the loss's or score's values for rows of at most `length` real positions.
    """


@dataclasses.dataclass(frozen=True)
class GCASettings:
  """`config.gca` split into what a model module reads.

  Attributes:
    positions: insertion points, sorted.
    kv: the stream the cells attend to ("other" or "mixed").
    cell: keyword arguments of every `gca.GatedCrossAttention` cell.
  """

  positions: tuple[int, ...]
  kv: str
  cell: dict[str, Any]


def gca_settings(config: ml_collections.ConfigDict) -> GCASettings:
  """The GCA cell's settings from `config.gca` (the loss terms left out)."""
  cell = dict(config.gca)
  cell.pop("orth_penalty", None)  # a loss term, not a cell setting
  positions = tuple(sorted(int(p) for p in cell.pop("positions")))
  return GCASettings(positions=positions, kv=cell.pop("kv", "other"), cell=cell)


def require_merged_timeline(
  ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict, reason: str
) -> None:
  """Refuses a dataset without a merged timeline (e.g. open-world CSVs) for a model needing one.

  Raises:
    ConfigError: naming the model, the dataset and why the model needs the timeline.
  """
  if not ds.merged_timeline:
    raise errors.ConfigError(
      f"config key model.name={config.model.name!r} needs a merged timeline of both domains "
      f"({reason}), but dataset {ds.name!r} (data.format={config.data.format!r}) has none: its "
      "domain lists cannot be interleaved. Use a model with per-domain encoders (cdsrnp) or data "
      "with timestamps."
    )
