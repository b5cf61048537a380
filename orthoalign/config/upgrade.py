"""Saved runs -> today's keys: the one upgrade, applied wherever a saved run is read.

A run folder written by an older orthoalign lacks the keys added since. Every reader upgrades
what it reads here, once, and then reads keys directly; no other module keeps a default for a
key that old runs may lack. Each added key gets the value that reproduces what the old run
computed (which is not always today's default: runs from before `eval.ties` ranked ties
pessimistically, runs from before `model.missing_text` zeroed text-less items). Renamed keys
(RENAMED_MODEL_KEYS: the baselines' shared names) are read under today's names.

  config.json       `config` (resume, orthoalign.evaluate, the grid runner's skip check)
  results.jsonl     `result_row` (its flattened `config`; the analysis loaders)
  grid.json         `grid` (each run's name, workdir and axes)
  checkpoint meta   `checkpoint_meta` (model selection, timing; older runs had one `tracker`)

history.jsonl rows need no upgrade: every key they ever had is still written, and a key absent
on a row (epochs without evaluation) is absent by design.

Imports nothing of orthoalign but `errors`: the tables below are data, kept here so that one
file says what changed.
"""

from __future__ import annotations

from collections.abc import Mapping
import copy
import json
import os
from typing import Any

import ml_collections

from orthoalign import errors

# Keys of every config added after runs were written -> the value that reproduces those runs.
ADDED: dict[str, Any] = {
  "data.on_bad_line": "error",
  "data.cache_dir": "",
  "data.titles": (),
  "data.text_emb": "none",
  "data.text_dim": 384,
  "data.reader_options": {},
  "data.synthetic.planted": True,
  "eval.ties": "pessimistic",
  "eval.extra_negatives": (),
  "eval.track_test": False,
  "gca.ffn": 0,
  "gca.intervention": "none",
  "gca.orth_penalty": 0.0,
  "sweep.orth_penalties": (),
  "train.compute_dtype": "float32",
  "train.item_shards": 1,
  "train.length_buckets": (),
}

# `model.*` keys renamed when every baseline's shared concepts got shared names -> today's name
# (no model had one of these keys with another meaning).
RENAMED_MODEL_KEYS: dict[str, str] = {
  "hidden_size": "width",  # LLM4CDSR, CDSRNP, SASRec
  "d_embed": "width",  # ABXI
  "num_heads": "heads",
  "n_head": "heads",
  "num_blocks": "blocks",
  "ffn_size": "ffn",
  "d_ffn": "ffn",
  "causal_self_attention": "causal",  # LLM4CDSR
  "freeze_emb": "freeze_global",  # LLM4CDSR: it freezes the mixed path's (global) table only
}

# ABXI's max_len was upstream's `len_max` (the user's last items kept, targets included) before the
# renaming; today it is the window length like every model's, len_max - 3. A saved ABXI config
# holding this old key is converted.
_ABXI_OLD_KEY, _ABXI_WINDOW_SHIFT = "d_embed", -3

# model.name -> its `model.*` keys added after runs were written, as ADDED (today's names).
MODEL_ADDED: dict[str, dict[str, Any]] = {
  "abxi": {"neg_scoring": "auto", "eval_domain_seq": "compact", "mask_padding_keys": False},
  "llm4cdsr": {
    "ffn": 0,
    "reg_pool": "history",
    "missing_text": "zero",
    "llm_emb_dir": "none",
    "llm_emb_file": "itm_emb_np",
    "user_emb_file": "usr_profile_emb",
    "mask_padding_keys": False,
  },
}


def added_keys(model_name: str) -> dict[str, Any]:
  """Dotted key -> value for every key added since the first runs, for a config of `model_name`."""
  return {**ADDED, **{f"model.{k}": v for k, v in MODEL_ADDED.get(model_name, {}).items()}}


def _fill(tree: dict[str, Any], dotted: str, value: Any) -> None:
  """Sets `value` at `dotted` in a nested dict unless the key is there (or its section is not)."""
  *sections, leaf = dotted.split(".")
  node = tree
  for section in sections:
    node = node.get(section)
    if not isinstance(node, dict):
      return  # a section the config does not have: the section's own check reports it
  if leaf not in node:
    node[leaf] = copy.deepcopy(list(value) if isinstance(value, tuple) else value)


def config_dict(saved: Mapping[str, Any]) -> dict[str, Any]:
  """A saved config (the nested dict of config.json) with every added key filled in.

  Returns a new dict; tuples are filled in as lists, as JSON holds them.
  """
  tree = json.loads(json.dumps(saved))
  model = tree.get("model")
  name = model.get("name", "") if isinstance(model, dict) else ""
  if isinstance(model, dict):
    tree["model"] = _renamed(model, name)
  for dotted, value in added_keys(name).items():
    _fill(tree, dotted, value)
  return tree


def config(saved: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """`config_dict` as a ConfigDict, the type every reader of a config takes."""
  return ml_collections.ConfigDict(config_dict(saved))


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """`<workdir>/config.json`, upgraded.

  Raises:
    DataError: no config.json (not a run folder), or a file that cannot be read or is not a
      JSON object (naming the path, and the line where JSON says).
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.isfile(path):
    raise errors.DataError("no config.json: not an orthoalign run folder", path=path)
  try:
    with open(path, encoding="utf-8") as f:
      saved = json.load(f)
  except json.JSONDecodeError as e:
    raise errors.DataError(f"expected a JSON object ({e.msg})", path=path, line=e.lineno) from None
  except UnicodeDecodeError as e:
    raise errors.DataError(
      f"byte {e.start} is not UTF-8; expected a JSON object", path=path
    ) from None
  except OSError as e:
    raise errors.DataError(f"cannot read it ({e.strerror or e})", path=path) from None
  if not isinstance(saved, dict):
    raise errors.DataError("expected a JSON object (a saved config)", path=path)
  return config(saved)


def flat_config(flat: Mapping[str, Any]) -> dict[str, Any]:
  """A flattened saved config (dotted keys, lists for tuples) with every added key filled in."""
  name = str(flat.get("model.name", ""))
  model = {k[len("model.") :]: v for k, v in flat.items() if k.startswith("model.")}
  out = {k: v for k, v in flat.items() if not k.startswith("model.")}
  out.update({f"model.{k}": v for k, v in _renamed(model, name).items()})
  for dotted, value in added_keys(str(flat.get("model.name", ""))).items():
    if dotted in out:
      continue
    if isinstance(value, dict):  # an empty section flattens to no key at all
      continue
    section = dotted.rsplit(".", 1)[0]
    if section.count(".") and not any(k.startswith(section + ".") for k in out):
      continue  # a subsection (data.synthetic) the config does not have
    out[dotted] = list(value) if isinstance(value, tuple) else value
  return out


def _renamed(model: dict[str, Any], name: str) -> dict[str, Any]:
  """A saved `model` section (or its flattened keys without "model.") under today's key names."""
  out = {RENAMED_MODEL_KEYS.get(k, k): v for k, v in model.items()}
  if name == "abxi" and _ABXI_OLD_KEY in model and isinstance(out.get("max_len"), int):
    out["max_len"] += _ABXI_WINDOW_SHIFT
  return out


def renamed_key(dotted: str) -> str:
  """Today's name of a dotted key (`model.hidden_size` -> `model.width`); others as they are."""
  section, _, leaf = dotted.partition(".")
  if section == "model" and leaf in RENAMED_MODEL_KEYS:
    return f"model.{RENAMED_MODEL_KEYS[leaf]}"
  return dotted


def result_row(row: Mapping[str, Any]) -> dict[str, Any]:
  """A results.jsonl row with its flattened `config` upgraded (`flat_config`)."""
  out = dict(row)
  if isinstance(out.get("config"), Mapping):
    out["config"] = flat_config(out["config"])
  return out


def grid(meta: dict[str, Any]) -> dict[str, Any]:
  """grid.json: each run gets `name` and `workdir` (older files had one of them) and `axes`.

  The caller has checked that every run is a dict with a string `name` or `workdir`.
  """
  for run in meta["runs"]:
    run.setdefault("name", run.get("workdir"))
    run.setdefault("workdir", run["name"])  # the runner names each workdir after its run
    run.setdefault("axes", {})
    run["axes"] = {renamed_key(k): v for k, v in run["axes"].items()}
  return meta


# An old checkpoint's `tracker` time counters -> today's timing phases (train/timing.py).
_PHASE_COUNTERS = {
  "compile": "compile_time_s",
  "train": "train_time_s",
  "eval": "eval_time_s",
  "checkpoint": "checkpoint_time_s",
}
_SELECTION_FIELDS = ("best_value", "best_epoch", "bad_evals", "stopped", "best_metrics")


def checkpoint_meta(meta: Mapping[str, Any], replicas: int) -> dict[str, Any]:
  """A checkpoint's meta item as today's trainer writes it: `selection` (train/selection.py),
  `timing` (train/timing.py) and `last_train` (each replica's last training metrics).

  Checkpoints written before selection and timing were split hold one `tracker` record; runs
  from before the learning-rate schedule lack `lr_scale` / `plateau_bad` (a factor of 1, no bad
  validations: what they trained with), runs from before a time counter count 0 s.
  """
  if "tracker" not in meta:
    return dict(meta)
  old = meta["tracker"]
  selection = {k: old[k] for k in _SELECTION_FIELDS}
  selection["lr_scale"] = old.get("lr_scale") or [1.0] * replicas
  selection["plateau_bad"] = old.get("plateau_bad") or [0] * replicas
  timing = {
    "seconds": {phase: old.get(key, 0.0) for phase, key in _PHASE_COUNTERS.items()},
    "train_steps": old.get("train_steps", 0),
    "wall_s": old.get("wall_time_s", 0.0),
  }
  return {"selection": selection, "timing": timing, "last_train": old.get("last_train", [])}
