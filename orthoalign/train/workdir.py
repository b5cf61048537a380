"""The run folder's bookkeeping: config.json, written once and compared on resumption."""

from __future__ import annotations

import json
import os

import ml_collections

from orthoalign import config_lib
from orthoalign import errors
from orthoalign.train import writers


def prepare(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; on resumption refuses a config that would change what was computed.

  Raises:
    ConfigError: the config differs from the workdir's, or the workdir cannot be written.
  """
  writers.writable_dir(workdir, "the run's outputs (--workdir)", errors.ConfigError)
  path = os.path.join(workdir, "config.json")
  new = config_lib.flatten(config.to_dict())
  if os.path.exists(path) and os.path.isdir(os.path.join(workdir, "checkpoints")):
    with open(path) as f:
      old = config_lib.flatten(json.load(f))
    diff = config_lib.differences(old, json.loads(json.dumps(new)))
    if diff:
      raise config_lib.ConfigError(
        f"{workdir} holds a run with a different config (keys: {', '.join(diff)}); resume with the "
        "same config or use a new --workdir"
      )
  try:
    writers.write_json(path, config.to_dict())
  except OSError as e:
    raise errors.ConfigError(f"cannot write {path}: {e.strerror or e}") from None
