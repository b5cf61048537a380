"""The run folder's bookkeeping: config.json, written once and compared on resumption."""

from __future__ import annotations

import json
import os
from typing import Any

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
  return [key for key, _, _ in _changes(workdir, config)]


def _changes(workdir: str, config: ml_collections.ConfigDict) -> list[tuple[str, Any, Any]]:
  """(key, the run's value, `config`'s value) of each key `config_changes` lists."""
  if not os.path.isfile(os.path.join(workdir, "config.json")):
    return []
  try:
    with open(os.path.join(workdir, "config.json"), encoding="utf-8") as f:
      raw = json.load(f)
  except (OSError, ValueError):
    raw = None  # upgrade.read_config names the file and what is wrong
  # A click-prediction run's config has its own keys (orthoalign/ctr/config.py), not upgraded.
  saved = raw if isinstance(raw, dict) and raw.get("task") == "ctr" else None
  old = dicts.flatten(saved if saved is not None else upgrade.read_config(workdir).to_dict())
  new = json.loads(json.dumps(dicts.flatten(config.to_dict())))
  return [(k, old.get(k), new.get(k)) for k in dicts.differences(old, new, RESUMABLE_CHANGES)]


def _describe(changes: list[tuple[str, Any, Any]]) -> str:
  """The changes for a message: model.name alone when it differs, else up to 4 keys with values."""
  by_key = {k: (was, now) for k, was, now in changes}
  if "model.name" in by_key:
    was, now = by_key["model.name"]
    return f"a {was} run, and this config is {now}"
  shown = [f"{k}: {was!r} in the run, {now!r} now" for k, was, now in changes[:4]]
  more = f"; and {len(changes) - 4} more" if len(changes) > 4 else ""
  return "a different config (" + "; ".join(shown) + more + ")"


def prepare(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Writes config.json; on resumption refuses a config that would change what was computed.

  Raises:
    RunError: the workdir holds a run with another config, or cannot be written.
  """
  fileio.writable_dir(workdir, "the run's outputs (--workdir)", errors.RunError)
  path = os.path.join(workdir, "config.json")
  if os.path.isdir(os.path.join(workdir, "checkpoints")):
    changes = _changes(workdir, config)
    if changes:
      raise errors.RunError(
        f"{workdir} holds {_describe(changes)}; resume with the same config or use a new --workdir"
      )
  try:
    fileio.write_json(path, config.to_dict())
  except OSError as e:
    raise errors.RunError(f"cannot write {path}: {e.strerror or e}") from None
