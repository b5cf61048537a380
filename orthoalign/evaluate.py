r"""Evaluates a run's best parameters again, optionally under other evaluation settings.

  python -m orthoalign.evaluate --workdir=runs/abxi_afk/abxi \
      --set=model.eval_domain_seq=compact --out=runs/abxi_afk/abxi/eval_compact.jsonl

Rebuilds the run from its config.json, applies the `--set key=value` overrides (keys under eval.*
and the model's scoring-only keys, e.g. ABXI's model.eval_domain_seq and MERIT's
model.eval_stream: they change what is measured, never the parameters), restores
every replica's best parameters from the newest checkpoint and evaluates the valid and test splits.
Prints one line per replica, split, protocol and domain; --out writes one JSON row per replica
(atomically). Without overrides it reproduces the test metrics of the run's results.jsonl. It
holds the run folder's lock while it reads the checkpoint: not while the run trains there.
"""

from __future__ import annotations

from collections.abc import Sequence
import os
from typing import Any

from absl import app
from absl import flags
from absl import logging
import jax
import ml_collections

from orthoalign import compile_cache
from orthoalign import errors
from orthoalign import fileio
from orthoalign import models
from orthoalign import run_lock
from orthoalign.config import dicts
from orthoalign.config import flags as flag_checks
from orthoalign.config import upgrade
from orthoalign.metrics import keys
from orthoalign.metrics import table
from orthoalign.train import build
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import results

_WORKDIR = flags.DEFINE_string("workdir", None, "A run folder written by orthoalign.main.")
_SET = flags.DEFINE_multi_string("set", [], "key=value: an evaluation setting to change.")
_OUT = flags.DEFINE_string("out", None, "Write the rows as JSON lines here.")

# Settings that change what is measured but not the trained parameters: every eval.* key, and the
# model.* keys a baseline declares (Baseline.EVAL_SETTINGS, e.g. ABXI's eval_domain_seq).
EVAL_KEYS = ("eval.",)


def eval_keys(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The keys `--set` may change for a run of `config` (a trailing "." = a whole section)."""
  name = config.model.name if "model" in config and "name" in config.model else None
  own = models.baseline_class(name).EVAL_SETTINGS if name in models.names() else ()
  return EVAL_KEYS + tuple(f"model.{k}" for k in own)


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> list[str]:
  """Applies "key=value" strings (parsed as --config.<key> flags are); returns the keys."""
  keys = []
  allowed = eval_keys(config)
  for item in overrides:
    key, sep, text = item.partition("=")
    if not sep:
      raise errors.ConfigError(f"--set {item!r}: expected key=value")
    if key in keys:
      raise errors.ConfigError(f"--set {key} is given twice; give each key once")
    if not any(key == k or (k.endswith(".") and key.startswith(k)) for k in allowed):
      shown = ", ".join(k + "*" if k.endswith(".") else k for k in allowed)
      raise errors.ConfigError(
        f"--set {key}: only evaluation settings may change ({shown}); the parameters were "
        "trained under the rest"
      )
    where = f" (in --set {item})"
    node, leaf = dicts.parent_of(config, key, where), key.rsplit(".", 1)[-1]
    node[leaf] = dicts.parse_value(key, text, node[leaf], where)
    keys.append(key)
  return keys


def evaluate(workdir: str, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
  """Rows (one per replica) of valid and test metrics of the run's best parameters."""
  fileio.local_folder(workdir, "--workdir")
  config = upgrade.read_config(workdir)
  changed = apply_overrides(config, overrides)
  with run_lock.acquire(workdir, "evaluation"):  # not while a run trains or writes there
    with errors.interrupts_held():  # it cleans up an interrupted save's folders
      ckpt = checkpoint_lib.Checkpointer(workdir)
    epoch = ckpt.latest_epoch()
    if epoch is None:
      raise errors.DataError("no checkpoint yet", path=os.path.join(workdir, "checkpoints"))
    run = build.setup(config)
    with errors.interrupts_held():
      _, best, meta = ckpt.restore(epoch, run.state, run.state.params)
      ckpt.close()
  selection = upgrade.checkpoint_meta(meta, len(run.reps))["selection"]
  sums = {
    s: jax.device_get(run.eval_fn(best, run.frozen, run.eval_data[s])) for s in ("valid", "test")
  }
  rows = []
  for r, rep in enumerate(run.reps):
    row = {
      "run": os.path.basename(os.path.abspath(workdir)),
      "replica": r,
      **rep,
      "checkpoint_epoch": epoch,
      "best_epoch": selection["best_epoch"][r],
      "overrides": {k: dicts.get(config, k) for k in changed},
    }
    for split, s in sums.items():
      row.update(
        {
          k: v
          for k, v in results.finalize_split(s, r, split).items()
          if not keys.parse_align(k) or split == "valid"
        }
      )
    rows.append(row)
  return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
  """Per replica, split, protocol and domain: HR@5, HR@10, NDCG@10, MRR and AUC."""
  return table.replica_table(
    rows, ("hr@5", "hr@10", "ndcg@10", "mrr", "auc"), splits=("valid", "test")
  )


# The files a run writes: --out must not replace them.
_RUN_FILES = ("results.jsonl", "history.jsonl", "config.json")


def check_out(workdir: str, out: str) -> None:
  """--out must be a new file's place: not one of the run's own files, not through a file.

  Raises:
    ConfigError: naming the path and why, before anything is evaluated.
  """
  target = os.path.abspath(out)
  if os.path.dirname(target) == os.path.abspath(workdir) and os.path.basename(out) in _RUN_FILES:
    raise errors.ConfigError(
      f"--out={out} would replace the run's own {os.path.basename(out)}; "
      "write the rows to another file, e.g. --out="
      f"{os.path.join(workdir, 'eval.jsonl')}"
    )
  if os.path.isdir(target):
    raise errors.ConfigError(f"--out={out} is a folder; give a file name, e.g. {out}/eval.jsonl")
  fileio.writable_dir(os.path.dirname(target), "the evaluation rows (--out)", errors.RunError)


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  compile_cache.enable()
  logging.set_verbosity(logging.WARNING)
  if _OUT.value:
    check_out(_WORKDIR.value, _OUT.value)
  rows = evaluate(_WORKDIR.value, _SET.value)
  print(
    f"best parameters of {_WORKDIR.value} (checkpoint of epoch {rows[0]['checkpoint_epoch']}), "
    f"overrides: {rows[0]['overrides'] or 'none'}"
  )
  print(format_rows(rows), flush=True)
  if _OUT.value:
    fileio.write_jsonl(_OUT.value, rows)


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
