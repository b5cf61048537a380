"""A run's results: metric sums -> result rows (results.jsonl) and the printed results table."""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import ml_collections
import numpy as np

import orthoalign
from orthoalign import fileio
from orthoalign.config import dicts
from orthoalign.config import replica_axes
from orthoalign.metrics import alignment
from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.metrics import table
from orthoalign.train import build
from orthoalign.train import progress as progress_lib


def finalize_split(sums: dict[str, np.ndarray], r: int, split: str) -> dict[str, float]:
  """Replica r's sums -> flat metric dict (metrics/keys.py): "<split>/<protocol>/<dom>/<metric>"
  per evaluated protocol, the same per user or case group with cases in the split,
  "<split>/<group>/<protocol>/<dom>/<metric>" (plus its number of cases,
  "<split>/<group>/sampled/all/count"), and "align/<cell>/<stat>". The metrics follow the
  evaluation's tie rule (config.eval.ties, recorded in the row's config) and include "tie_share",
  the share of cases with at least one negative tied with the target.
  """
  one = {k: np.asarray(v)[r] for k, v in sums.items()}
  out = {}
  parts: dict[tuple[str, str], dict[str, Any]] = {}
  for k, v in one.items():
    if (key := keys.parse(k, with_split=False)) is not None:
      part = parts.setdefault((key.group, key.protocol), {})
      part[keys.domain_metric(key.domain, key.metric)] = v
  for (group, protocol), part in sorted(
    parts.items(), key=lambda gp: (gp[0][0] != "", gp[0][0], keys.protocol_order(gp[0][1]))
  ):
    if group and not float(part["all/count"]):
      continue  # no case of this group in the split
    out.update(
      {
        keys.metric_key(split, protocol, *keys.split_domain_metric(k), group=group): v
        for k, v in ranking.finalize(part).items()
      }
    )
    if group and protocol == keys.SAMPLED:
      out[keys.count_key(split, group)] = float(part["all/count"])
  for cell in keys.align_cells(one):
    part = {
      stat: v for k, v in one.items() for c, stat in [keys.parse_align(k) or ("", "")] if c == cell
    }
    stats = alignment.finalize_alignment(part)
    count = float(part["alpha_count"])
    stats["alpha"] = float(part["alpha_sum"]) / count if count else math.nan
    out.update({keys.align_key(cell, k): v for k, v in stats.items()})
  return out


def test_metrics(sums: dict[str, np.ndarray], r: int) -> dict[str, float]:
  """Replica r's test metrics: `finalize_split(sums, r, "test")` without the alignment
  statistics, which are reported on validation inputs only.
  """
  return {k: v for k, v in finalize_split(sums, r, "test").items() if not keys.parse_align(k)}


def result_rows(
  run: build.Run,
  config: ml_collections.ConfigDict,
  workdir: str,
  progress: progress_lib.Progress,
  test_sums: dict[str, np.ndarray],
  params: tuple[int, int],
) -> list[dict[str, Any]]:
  """The rows of results.jsonl, one per replica: what ran (model, data, hyperparameters, config),
  its cost (parameters, timing, devices) and what it scored (last training metrics, validation
  and alignment at the best epoch, test metrics of the best parameters).

  Args:
    run: the run's `build.Run`.
    config: the run's config.
    workdir: the run folder (its name is the row's "run").
    progress: the run's `progress.Progress` after its last epoch.
    test_sums: the test evaluation's sums of each replica's best parameters.
    params: (total, trainable) parameters of one replica (`build.param_counts`).
  """
  flat_config = dicts.flatten(config.to_dict())
  timing = progress.timing.row()
  rows = []
  for r, rep in enumerate(run.reps):
    rows.append(
      {
        "run": os.path.basename(os.path.abspath(workdir)),
        "replica": r,
        "model": run.task.name,
        "dataset": run.ds.name,
        **rep,
        "gca_positions": list(config.gca.positions),
        "params/total": params[0],
        "params/trainable": params[1],
        "best_epoch": progress.selection.best_epoch[r],
        "epochs_trained": progress.epoch,
        **timing,
        "backend": jax.default_backend(),
        "num_devices": run.mesh.size,
        "num_processes": jax.process_count(),
        "num_replicas": run.num_replicas,
        "orthoalign_version": orthoalign.__version__,
        "config": flat_config,
        **(progress.last_train[r] if progress.last_train else {}),
        **progress.selection.best_metrics[r],
        **test_metrics(test_sums, r),
      }
    )
  return rows


def short_key(key: str) -> str:
  """'valid/sampled/A/mrr+valid/sampled/B/mrr' -> 'sampled/A/mrr+sampled/B/mrr'."""
  return "+".join(k.split("/", 1)[1] for k in key.split("+"))


def _swept_columns(rows: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
  """A column per other replica axis whose value differs between the rows (weight decay, gate
  init, orthogonality penalty, a model's swept hyperparameters), named by its last part.
  """
  fields = [a.field for a in replica_axes.COMMON if a.field not in ("seed", "learning_rate")]
  fields += sorted(k for k in rows[0] if k.startswith("model."))
  varying = [f for f in fields if len({repr(row.get(f)) for row in rows}) > 1]
  return [
    (f.rsplit(".", 1)[-1], 8, lambda row, f=f: "-" if row.get(f) is None else f"{row[f]:.3g}")
    for f in varying
  ]


def results_table(rows: list[dict[str, Any]], config: ml_collections.ConfigDict) -> str:
  """A readable summary: per replica and domain, the test metrics; per GCA cell, |cos| and alpha."""
  n = config.eval.num_negatives
  ties = config.eval.ties
  lines = [
    f"\nTest results at each replica's best validation epoch ({config.train.select_metric})",
    f"protocol: sampled = target vs {n} negatives from its domain; "
    + "".join(
      f"{p} = target vs {p[len(keys.SAMPLED) :]} (own frozen set, items scored as in full "
      "ranking); "
      for p in keys.protocols(config.eval)[1:-1]
    )
    + "full = whole domain catalog",
    f"ties: {ties} ({table.TIE_RULES.get(ties, '?')}); TIE_SHARE = share of cases with a "
    "negative scoring exactly as the target",
    table.replica_table(
      rows,
      ("ndcg@1", "ndcg@10", "hr@10", "mrr", "auc", "tie_share"),
      columns=(
        ("lr", 8, lambda row: f"{row['learning_rate']:.2g}"),
        *_swept_columns(rows),
        ("best", 4, lambda row: row["best_epoch"]),
      ),
    ),
  ]
  groups = table.group_table(rows, ("ndcg@1", "ndcg@10", "hr@10", "mrr", "auc"), domains=("all",))
  if groups:
    lines += [
      "\nThe same by user and case group (overlapped = the user has items of both domains; switch "
      "= the target's domain differs from the last input's; docs/metrics.md)",
      groups,
    ]
  cells = keys.align_cells(k for row in rows for k in row)
  if cells:
    lines.append(
      "\nOrthogonal alignment at the best epoch (validation inputs): |mean cos(X,X')|, "
      "mean |cos(X,X')|, |mean cos(X,Y)|, gate alpha"
    )
    stats = ("abs_mean_cos", "mean_abs_cos", "xy_abs_mean_cos", "alpha")
    lines.append(
      table.render(
        ("rep", "cell", "|cos|", "mean|cos|", "|cosXY|", "alpha"),
        [
          [row["replica"], c, *(row.get(keys.align_key(c, s), math.nan) for s in stats)]
          for row in rows
          for c in cells
        ],
        widths=(3, 8, 8, 9, 8, 8),
      )
    )
  else:
    lines.append("\n(no GCA cells: gca.positions is empty, the plain baseline)")
  lines.append(
    f"\nparams: {rows[0]['params/total']:,} total, {rows[0]['params/trainable']:,} trainable | "
    f"{rows[0]['steps_per_s']:.1f} steps/s | wall {fileio.format_duration(rows[0]['wall_time_s'])}"
  )
  return "\n".join(lines)
