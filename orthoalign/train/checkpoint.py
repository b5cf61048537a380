"""orbax checkpoints of a run: the latest train state, the per-replica best params, loop metadata.

One checkpoint per evaluated epoch (step = epoch), keeping the newest `keep`; every checkpoint holds
both the latest state and the best-so-far params of each replica, so "latest" and "best" are always
consistent with each other and with the metadata (early-stopping counters, history).

Resumption takes the newest checkpoint that restores (`restore_latest`): a step folder left
incomplete (an interrupted copy, a full disk) is moved aside to <workdir>/checkpoints_incomplete/
and the previous checkpoint is used. Temporary folders of an interrupted save (orbax's
`<step>.orbax-checkpoint-tmp-*`) are deleted when the manager opens.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from typing import Any

import jax
import orbax.checkpoint as ocp

from orthoalign import errors
from orthoalign import fileio

ITEMS = ("state", "best", "meta")
INCOMPLETE_DIR = "checkpoints_incomplete"


@dataclasses.dataclass
class Restored:
  """What `restore_latest` found: the epoch, the restored trees and the skipped folders."""

  epoch: int
  state: Any
  best: Any
  meta: dict[str, Any]
  skipped: list[str]  # one line per incomplete step folder moved aside


def saved_epochs(workdir: str) -> list[int]:
  """The epochs whose checkpoint folders exist under <workdir>/checkpoints, ascending (without
  opening orbax: for messages, e.g. after Ctrl-C).
  """
  try:
    names = os.listdir(os.path.join(workdir, "checkpoints"))
  except OSError:
    return []
  return sorted(int(n) for n in names if n.isdigit())


class Checkpointer:
  """Saves and restores {state, best, meta} under <workdir>/checkpoints."""

  def __init__(self, workdir: str, keep: int = 1):
    self._workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self._workdir, "checkpoints")
    self._options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, cleanup_tmp_directories=True, enable_async_checkpointing=False
    )
    self._mngr = self._open()

  def _open(self) -> ocp.CheckpointManager:
    """The orbax manager; its cleanup of leftover tmp folders is done before this returns."""
    fileio.writable_dir(self.directory, "checkpoints", errors.RunError)
    try:
      mngr = ocp.CheckpointManager(self.directory, options=self._options)
      if hasattr(mngr, "_maybe_await_cleanup_tmp_directory"):  # else orbax cleans before a save
        mngr._maybe_await_cleanup_tmp_directory()  # pylint: disable=protected-access
    except OSError as e:
      raise errors.RunError(
        f"cannot write checkpoints to {self.directory}: {e.strerror or e}"
      ) from None
    return mngr

  def latest_epoch(self) -> int | None:
    return self._mngr.latest_step()

  def save(self, epoch: int, state: Any, best: Any, meta: dict[str, Any]) -> None:
    try:
      self._mngr.save(
        epoch,
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(state),
          best=ocp.args.StandardSave(best),
          meta=ocp.args.JsonSave(meta),
        ),
        force=True,
      )
      self._mngr.wait_until_finished()
    except OSError as e:
      raise errors.RunError(
        f"cannot write the epoch-{epoch} checkpoint to {self.directory}: {e.strerror or e}"
      ) from None

  def restore(self, epoch: int, state_like: Any, best_like: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Restores into the shapes and shardings of the given (freshly initialised) pytrees."""
    abstract = lambda tree: jax.tree.map(
      lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=a.sharding), tree
    )
    missing = [
      item for item in ITEMS if not os.path.isdir(os.path.join(self.step_dir(epoch), item))
    ]
    if missing:
      raise KeyError(f"missing item(s) {', '.join(missing)}")
    out = self._mngr.restore(
      epoch,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract(state_like)),
        best=ocp.args.StandardRestore(abstract(best_like)),
        meta=ocp.args.JsonRestore(),
      ),
    )
    meta = dict(out.meta)
    if "selection" not in meta and "tracker" not in meta:  # "tracker": before selection and timing
      raise KeyError("the meta item has no 'selection'")
    return out.state, out.best, meta

  def step_dir(self, epoch: int) -> str:
    return os.path.join(self.directory, str(epoch))

  def restore_latest(self, state_like: Any, best_like: Any) -> Restored | None:
    """Restores the newest checkpoint that is complete; None when there is none at all.

    Newer step folders that fail to restore (an item missing or unreadable) are moved aside to
    <workdir>/checkpoints_incomplete/<step>-<unix time>, so that the resumed run can save that
    step again; `Restored.skipped` says which and why.

    Raises:
      RunError: when checkpoints exist but none restores, naming the folder to delete.
    """
    steps = sorted(self._mngr.all_steps(), reverse=True)
    if not steps:
      return None
    failures: list[tuple[int, str]] = []
    for epoch in steps:
      try:
        state, best, meta = self.restore(epoch, state_like, best_like)
      except Exception as e:  # pylint: disable=broad-except  # any unreadable folder: try older
        failures.append((epoch, " ".join(f"{type(e).__name__}: {e}".splitlines())[:300]))
        continue
      skipped = [self._move_aside(e, why) for e, why in failures]
      if failures:
        self._mngr.reload()
      return Restored(epoch, state, best, meta, skipped)
    epoch, why = failures[0]
    raise errors.RunError(
      f"no checkpoint in {self.directory} can be restored (epoch {epoch}: {why}); delete the "
      f"folder {self.directory} to start the run afresh"
    )

  def _move_aside(self, epoch: int, why: str) -> str:
    src = self.step_dir(epoch)
    dst = os.path.join(self._workdir, INCOMPLETE_DIR, f"{epoch}-{int(time.time())}")
    if jax.process_index() == 0 and os.path.isdir(src):
      try:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.move(src, dst)
      except OSError as e:
        raise errors.RunError(
          f"the checkpoint {src} is incomplete ({why}) and cannot be moved aside to {dst} "
          f"({e.strerror or e}); delete the folder {src}"
        ) from None
    return f"skipped the incomplete checkpoint {src} ({why}); moved it to {dst}"

  def close(self) -> None:
    self._mngr.wait_until_finished()
    self._mngr.close()
