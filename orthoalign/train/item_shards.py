"""Item tables split over the mesh's "model" axis (`train.item_shards`).

A jax.Array split over k devices needs a multiple of k along the split axis, and catalogue sizes
(nA + 1, nB + 1, nA + nB + 1 rows with the padding row 0) rarely are one. So with k > 1 the
trainer holds every catalogue-sized leaf of the params and frozen tables padded with zero rows up
to the next multiple of k, and the model never sees them: its loss, tables and eval functions get
the leaves sliced back to their own shapes first. The padding rows get zero gradients, so Adam(W)
leaves them at zero; the model's values, its initialisation (drawn at the unpadded shapes, then
padded) and every metric are those of the unsharded run.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from orthoalign.train import task as task_lib


def catalogue_rows(task: task_lib.Task) -> tuple[int, int, int]:
  """Row counts of item tables: A (nA + 1), B (nB + 1) and both (nA + nB + 1), row 0 = padding."""
  na, nb = task.num_items_a, task.num_items_b
  return na + 1, nb + 1, na + nb + 1


def padded_rows(task: task_lib.Task, multiple: int) -> tuple[int, ...]:
  """The catalogue row counts rounded up to a multiple of `multiple`."""
  return tuple(-(-r // multiple) * multiple for r in catalogue_rows(task))


@dataclasses.dataclass(frozen=True)
class Padded:
  """A Task whose catalogue-sized leaves are padded, and the shapes the model sees.

  Attributes:
    task: the wrapped Task (its model's init, frozen, loss, tables and score act on padded trees).
    params: ShapeDtypeStructs of one replica's unpadded params; None when nothing is padded
      (multiple 1: the run takes them from its state rather than trace the init a second time).
    frozen: ShapeDtypeStructs of the unpadded frozen tables.
  """

  task: task_lib.Task
  params: Any
  frozen: Any


def _pad_leaf(x: Any, rows: set[int], multiple: int, xp: Any) -> Any:
  if x.ndim and x.shape[0] in rows and x.shape[0] % multiple:
    extra = -x.shape[0] % multiple
    return xp.concatenate([x, xp.zeros((extra,) + x.shape[1:], x.dtype)])
  return x


def _slice_to(x: jax.Array, like: jax.ShapeDtypeStruct) -> jax.Array:
  if x.shape == like.shape:
    return x
  return jax.lax.slice(x, (0,) * x.ndim, like.shape)


class PaddedModel:
  """A model's interface on padded trees: init pads, loss / tables / score slice back first."""

  def __init__(self, model: Any, params: Any, frozen: Any, rows: set[int], multiple: int):
    self.inner, self._params, self._frozen = model, params, frozen
    self.ds, self.config, self.module = model.ds, model.config, model.module
    self._pad = lambda tree, xp: jax.tree.map(lambda x: _pad_leaf(x, rows, multiple, xp), tree)
    self.frozen = self._pad(model.frozen, np)

  def _unpad(self, p: Any, f: Any) -> tuple[Any, Any]:
    return jax.tree.map(_slice_to, p, self._params), jax.tree.map(_slice_to, f, self._frozen)

  def init(self, rng: jax.Array) -> Any:
    return self._pad(self.inner.init(rng), jnp)

  def loss(self, p, f, batch, rng, hparams=None):
    return self.inner.loss(*self._unpad(p, f), batch, rng, hparams)

  def tables(self, p, f):
    return self.inner.tables(*self._unpad(p, f))

  def score(self, p, f, tables, batch):
    return self.inner.score(*self._unpad(p, f), tables, batch)

  def crop(self, batch: dict[str, Any], length: int) -> dict[str, Any]:
    return self.inner.crop(batch, length)


def pad_task(task: task_lib.Task, multiple: int) -> Padded:
  """`task` with its catalogue-sized param and frozen leaves padded to a multiple of `multiple`.

  Args:
    task: the model's Task.
    multiple: the number of item shards (`train.item_shards`); 1 returns the task unchanged.
  """
  model = task.model
  frozen = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype), model.frozen)
  if multiple == 1:
    return Padded(task, None, frozen)
  params = jax.eval_shape(model.init, jax.random.key(0))
  padded = PaddedModel(model, params, frozen, set(catalogue_rows(task)), multiple)
  return Padded(dataclasses.replace(task, model=padded), params, frozen)
