"""The one place that knows about devices: a 1-D ("data",) mesh with Auto axes.

State and device-resident datasets are replicated; each batch is split along its batch axis.
(Auto axes: Explicit axes break the embedding gathers, see reference/jax.md §A2.)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P


def make_mesh(num_devices: int = 0) -> Mesh:
  """A ("data",) mesh over the first `num_devices` devices (0 = all)."""
  devices = jax.devices()
  n = len(devices) if num_devices <= 0 else num_devices
  if n > len(devices):
    raise ValueError(f"train.num_devices={num_devices} but only {len(devices)} "
                     f"{devices[0].platform} device(s) are visible")
  return Mesh(np.asarray(devices[:n]), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_axis(mesh: Mesh, axis: int = 0) -> NamedSharding:
  """Sharding that splits dimension `axis` over the data axis."""
  return NamedSharding(mesh, P(*([None] * axis), "data"))


def constrain_batch(tree, mesh: Mesh):
  """Inside jit: split every leaf's leading (batch) axis over devices; a no-op on one device."""
  if mesh.size == 1:
    return tree
  return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(
      x, NamedSharding(mesh, P("data"))) if x.ndim else x, tree)
