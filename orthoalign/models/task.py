"""What a baseline hands to the generic trainer: a `Task`, and the skeleton that assembles one.

A baseline is one folder (`models/<name>/`: config, module, loss, inputs) plus its config file. Its
package exposes, in the spirit of RecML's four-method task (reference/style-review.md):

  default_config()      its `model.*` keys with their documented defaults;
  validate(config)      its config checks, raising ConfigError before anything is traced;
  build(ds, config)     module + loss + scores + its window layout, handed to `assemble` below;
  REPLICA_HPARAMS       the shape-keeping `model.*` keys replicas may vary (optional);
  GCA_KV                the `gca.kv` values it supports (optional; default ("other",));
  check_length_buckets  its check of `train.length_buckets` (optional: it can train in buckets).

`assemble` does the rest every baseline shares: evaluation arrays with the frozen candidates
(`data/eval_inputs.py`), parameter init, GCA cell names, the Task. The trainer in
`orthoalign.train` knows nothing model-specific: it stacks replicas, shards batches, scans epochs
and turns eval scores into ranks, metrics and alignment statistics.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import eval_inputs
from orthoalign.models import gca as gca_lib

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


@dataclasses.dataclass(frozen=True)
class Task:
  """A baseline bound to a dataset.

  Attributes:
    name: model name (`model.name`).
    init_params: rng -> trainable params of one replica.
    frozen: non-trainable variable collections shared by every replica (e.g. frozen LLM tables).
    train_data: host arrays with a common leading dimension (one row per training sequence).
    eval_data: {"valid"|"test": host arrays with a leading dimension of eval cases; they must hold
      "domain" (0 = A, 1 = B), "target" (global id) and "hist" (sorted items excluded from full
      ranking)}.
    loss_fn: (params, frozen, batch, rng, hparams=None) -> (loss, metrics); batch["row_valid"] masks
      padded rows; `hparams` holds this replica's values of the model's replica hyperparameters
      (scalars, traced under vmap), None = the config's values (`hparams` below).
    tables_fn: (params, frozen) -> whatever eval_fn needs once per evaluation (e.g. item tables).
    eval_fn: (params, frozen, tables, batch) -> EvalOutputs.
    num_items_a, num_items_b: catalog sizes.
    cell_names: GCA cells the model reports, e.g. ("gca0_A", "gca0_B").
    hparams: {name: config value} of the shape-keeping hyperparameters the loss reads as arrays
      (e.g. LLM4CDSR's loss weights), so that replicas of one program may differ in them.
    module: the model's Flax module, whose `__call__(batch, train=...)` returns its named
      intermediates (for inspection: tests, analysis); the trainer never calls it directly.
    length_fn: (arrays) -> int32 [rows]: the real (non-padding) positions of each row of
      `train_data`- or `eval_data`-like arrays; what `train.length_buckets` groups rows by. None =
      the model has no length buckets.
    crop_fn: (batch, length) -> the batch with its sequence axis cut to the last `length`
      positions, which must change none of the loss's or eval_fn's values for rows of at most
      `length` real positions (e.g. LLM4CDSR with padding masked out of attention).
    notes: lines saying what the model was built from (tables, layouts, items without text),
      printed once by the trainer after building: models print nothing themselves.
  """

  name: str
  init_params: Callable[[Array], Any]
  frozen: Any
  train_data: dict[str, np.ndarray]
  eval_data: dict[str, dict[str, np.ndarray]]
  loss_fn: Callable[..., tuple[Array, dict[str, Array]]]
  tables_fn: Callable[..., Any]
  eval_fn: Callable[..., EvalOutputs]
  num_items_a: int
  num_items_b: int
  cell_names: tuple[str, ...] = ()
  hparams: dict[str, float] = dataclasses.field(default_factory=dict)
  module: Any = None
  length_fn: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None
  crop_fn: Callable[[dict[str, Any], int], dict[str, Any]] | None = None
  notes: tuple[str, ...] = ()


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


def _with_penalty(
  hparams: dict[str, float] | None, config: ml_collections.ConfigDict
) -> dict[str, float]:
  """The model's replica hyperparameters, plus gca.orth_penalty's weight where the run sets one."""
  out = dict(hparams or {})
  if gca_lib.orth_penalties(config):
    out[gca_lib.ORTH_PENALTY] = float(config.gca.orth_penalty)
  return out


def gca_settings(config: ml_collections.ConfigDict) -> GCASettings:
  """The GCA cell's settings from `config.gca` (the loss terms left out)."""
  cell = dict(config.gca)
  cell.pop("orth_penalty", None)  # a loss term, not a cell setting
  positions = tuple(sorted(int(p) for p in cell.pop("positions")))
  return GCASettings(positions=positions, kv=cell.pop("kv", "other"), cell=cell)


def assemble(
  ds: dataset_lib.CDSRDataset,
  config: ml_collections.ConfigDict,
  *,
  module: nn.Module,
  train_data: dict[str, np.ndarray],
  eval_windows: eval_inputs.WindowsFn,
  loss_fn: Callable[..., tuple[Array, dict[str, Array]]],
  eval_fn: Callable[..., EvalOutputs],
  tables_fn: Callable[..., Any],
  frozen: Any = None,
  init_params: Callable[[Array], Any] | None = None,
  hparams: dict[str, float] | None = None,
  extra_eval: Callable[[str], dict[str, np.ndarray]] | None = None,
  length_fn: Callable[[dict[str, np.ndarray]], np.ndarray] | None = None,
  crop_fn: Callable[[dict[str, Any], int], dict[str, Any]] | None = None,
) -> Task:
  """The Task of a baseline: what every model's `build` shares.

  Args:
    ds: the dataset.
    config: the run's config (model.name, gca.positions and eval.* are read here).
    module: the model's Flax module.
    train_data: host training arrays (one row per training sequence).
    eval_windows: (dataset, split) -> the model's evaluation windows of the split.
    loss_fn, eval_fn, tables_fn: as in `Task`, already bound to the module.
    frozen: non-trainable variable collections ({} = none).
    init_params: rng -> params; default `module.init(...)["params"]` on the first training row with
      `train=True`.
    hparams: the model's replica hyperparameters and their config values (see `Task.hparams`).
    extra_eval: more evaluation arrays per split (see `eval_inputs.eval_inputs`).
    length_fn, crop_fn: what length buckets need (see `Task`); None = no buckets.

  Returns:
    The Task.
  """
  if init_params is None:
    sample = {k: v[:1] for k, v in train_data.items()}
    sample["row_valid"] = np.ones((1,), bool)

    def init_params(rng: Array) -> Any:
      return module.init({"params": rng, "dropout": rng}, sample, train=True)["params"]

  return Task(
    name=config.model.name,
    init_params=init_params,
    frozen=frozen or {},
    train_data=train_data,
    eval_data=eval_inputs.eval_inputs(ds, config.eval, eval_windows, extra_eval),
    loss_fn=loss_fn,
    tables_fn=tables_fn,
    eval_fn=eval_fn,
    num_items_a=ds.num_items_a,
    num_items_b=ds.num_items_b,
    cell_names=gca_lib.cell_names(config.gca.positions),
    hparams=_with_penalty(hparams, config),
    module=module,
    length_fn=length_fn,
    crop_fn=crop_fn,
  )
