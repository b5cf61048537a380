"""orbax checkpoints of a run: the latest train state, the per-replica best params, loop metadata.

One checkpoint per evaluated epoch (step = epoch), keeping the newest `keep`; every checkpoint holds
both the latest state and the best-so-far params of each replica, so "latest" and "best" are always
consistent with each other and with the metadata (early-stopping counters, history).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores {state, best, meta} under <workdir>/checkpoints."""

  def __init__(self, workdir: str, keep: int = 1):
    self._mngr = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                             enable_async_checkpointing=False))

  def latest_epoch(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, epoch: int, state: Any, best: Any, meta: dict[str, Any]) -> None:
    self._mngr.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), best=ocp.args.StandardSave(best),
        meta=ocp.args.JsonSave(meta)), force=True)
    self._mngr.wait_until_finished()

  def restore(self, epoch: int, state_like: Any, best_like: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Restores into the shapes and shardings of the given (freshly initialised) pytrees."""
    abstract = lambda tree: jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree)
    out = self._mngr.restore(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract(state_like)),
        best=ocp.args.StandardRestore(abstract(best_like)), meta=ocp.args.JsonRestore()))
    return out.state, out.best, dict(out.meta)

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
