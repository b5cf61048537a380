"""The run folder's bookkeeping: config.json, written once and compared on resumption."""

from __future__ import annotations

import json
import os

import ml_collections

from orthoalign import errors
from orthoalign import fileio
from orthoalign.config import dicts
from orthoalign.config import upgrade

# Keys that may change between a run and its resumption (they do not change what was computed).
RESUMABLE_CHANGES = ("train.max_epochs", "train.early_stop_patience")


def config_changes(workdir: str, config: ml_collections.ConfigDict) -> list[str]:
  """Dotted keys in which the run in `workdir` (its config.json, upgraded) differs from `config`.

  RESUMABLE_CHANGES do not count. [] when the workdir has no config.json yet.

  Raises:
    DataError: a config.json that is not a JSON object (naming the path and line).
  """
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    return []
  old = dicts.flatten(upgrade.read_config(workdir).to_dict())
  new = json.loads(json.dumps(dicts.flatten(config.to_dict())))
  return dicts.differences(old, new, RESUMABLE_CHANGES)


def prepare(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; on resumption refuses a config that would change what was computed.

  Raises:
    RunError: the workdir holds a run with another config, or cannot be written.
  """
  fileio.writable_dir(workdir, "the run's outputs (--workdir)", errors.RunError)
  path = os.path.join(workdir, "config.json")
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    diff = config_changes(workdir, config)
    if diff:
      raise errors.RunError(
        f"{workdir} holds a run with a different config (keys: {', '.join(diff)}); resume with "
        "the same config or use a new --workdir"
      )
  try:
    fileio.write_json(path, config.to_dict())
  except OSError as e:
    raise errors.RunError(f"cannot write {path}: {e.strerror or e}") from None
