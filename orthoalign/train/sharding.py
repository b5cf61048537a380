"""The one place that knows about devices: a 2-D ("data", "model") mesh with Auto axes.

"data" splits each batch along its batch axis (data parallelism); "model" splits the item
catalogue (`train.item_shards`, default 1): every array with a catalogue-sized axis — item
embedding tables, their optimizer moments, frozen LLM tables, the [cases, items] full-ranking
scores — is split along its items over the "model" axis, and everything else is replicated.
With item_shards=1 the mesh is ("data",)-only in effect: the model axis has size 1.
(Auto axes: Explicit axes break the embedding gathers, see reference/jax.md §A2.)
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import jax
from jax.sharding import AxisType
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

DATA, MODEL = "data", "model"


def make_mesh(num_devices: int = 0, item_shards: int = 1) -> Mesh:
  """A ("data", "model") mesh of shape [num_devices / item_shards, item_shards].

  Args:
    num_devices: devices to use, the first ones of `jax.devices()` (0 = all).
    item_shards: size of the "model" axis, over which item tables and scores are split.

  Raises:
    ValueError: more devices asked for than visible, or a device count that item_shards does
      not divide (the messages name the config keys).
  """
  devices = jax.devices()
  n = len(devices) if num_devices <= 0 else num_devices
  if n > len(devices):
    raise ValueError(
      f"train.num_devices={num_devices} but only {len(devices)} "
      f"{devices[0].platform} device(s) are visible"
    )
  if item_shards < 1 or n % item_shards:
    raise ValueError(
      f"train.item_shards={item_shards} must be >= 1 and divide the {n} devices (train.num_devices)"
    )
  return Mesh(
    np.asarray(devices[:n]).reshape(n // item_shards, item_shards),
    (DATA, MODEL),
    axis_types=(AxisType.Auto, AxisType.Auto),
  )


def data_size(mesh: Mesh) -> int:
  """How many ways a batch is split: the size of the "data" axis."""
  return mesh.shape[DATA]


def replicated(mesh: Mesh) -> NamedSharding:
  """The sharding of an array held whole on every device of `mesh`."""
  return NamedSharding(mesh, P())


def batch_axis(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Sharding that splits dimension `axis` over the data axis."""
  return NamedSharding(mesh, P(*([None] * axis), DATA))


def constrain_batch(tree, mesh: Mesh):
  """Inside jit: split every leaf's leading (batch) axis over the data axis; no-op on one device."""
  if mesh.size == 1:
    return tree
  return jax.tree.map(
    lambda x: jax.lax.with_sharding_constraint(x, NamedSharding(mesh, P(DATA))) if x.ndim else x,
    tree,
  )


def constrain_items(scores: jax.Array, mesh: Mesh) -> jax.Array:
  """Inside jit: [cases, items] scores split by cases over "data" and by items over "model".

  A no-op without item shards, so that the unsharded program is unchanged.
  """
  if mesh.shape[MODEL] == 1:
    return scores
  return jax.lax.with_sharding_constraint(scores, NamedSharding(mesh, P(DATA, MODEL)))


def item_shardings(tree: Any, mesh: Mesh, catalogue_rows: Collection[int], axis: int = 0) -> Any:
  """Per-leaf shardings: leaves whose dimension `axis` is a catalogue size are split over "model".

  Catalogue sizes are the row counts of item tables (e.g. nA + 1, nB + 1, nA + nB + 1 with the
  padding row 0). A leaf that only happens to have such a size is split too, which costs
  communication but never changes a value. Without item shards every leaf is replicated.

  Args:
    tree: pytree of arrays or ShapeDtypeStructs (e.g. a TrainState, frozen tables).
    mesh: the mesh.
    catalogue_rows: the row counts that mark an item axis.
    axis: the dimension to look at (1 for replica-stacked trees).
  """
  rows = set(catalogue_rows)

  def one(x) -> NamedSharding:
    shape = getattr(x, "shape", ())
    if mesh.shape[MODEL] > 1 and len(shape) > axis and shape[axis] in rows:
      return NamedSharding(mesh, P(*([None] * axis), MODEL))
    return NamedSharding(mesh, P())

  return jax.tree.map(one, tree)
