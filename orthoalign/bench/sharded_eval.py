"""Full-catalogue evaluation with the item tables split over devices: memory per device and time.

The measurement behind `python -m orthoalign.bench.catalogue --item_shards=1,4`:
for each k the config is set up on k devices with `train.item_shards=k` (k = 1: one device, nothing
split), the evaluation program is compiled, and validation passes are timed. Memory per device is
read from the shards of the arrays each device holds (fake CPU devices report no memory
statistics) plus XLA's own temp-buffer size of the compiled evaluation program where the backend
reports one.
"""

from __future__ import annotations

import collections
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.train import build
from orthoalign.train import sharding
from orthoalign.train import step as step_lib

_MIB = 2**20


def bytes_per_device(*trees: Any) -> dict[str, int]:
  """{device: bytes of the shards it holds} over every array in `trees`."""
  out: dict[str, int] = collections.defaultdict(int)
  for leaf in jax.tree.leaves(trees):
    for shard in leaf.addressable_shards:
      out[str(shard.device)] += shard.data.nbytes
  return dict(out)


def _temp_bytes(compiled: Any) -> int | None:
  """XLA's temp-buffer bytes per device of a compiled program; None if the backend has none."""
  try:
    analysis = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  # not every backend implements it
    return None
  return getattr(analysis, "temp_size_in_bytes", None) if analysis is not None else None


def measure(
  config: ml_collections.ConfigDict, item_shards: int, passes: int, with_cases: bool = False
) -> tuple[dict[str, Any], dict[str, np.ndarray], Any]:
  """Sets up `config` on `item_shards` devices split along the items and times its evaluation.

  Args:
    config: the run's config (its data, model and eval keys are used as they are).
    item_shards: devices (= size of the mesh's "model" axis); 1 = one device, nothing split.
    passes: timed validation passes, after one untimed.
    with_cases: also return the validation cases' ranks (`case_counts`).

  Returns:
    (row, sums, cases): row is a JSON-able dict of set-up and compile seconds, min/median/max
    seconds per validation pass ("eval_s"), the full-ranking NDCG@10 it computed, and MiB per
    device of the state (params and Adam moments), the best-params copy the trainer keeps, the
    frozen tables and XLA's temp buffers of the evaluation program; sums are the pass's metric
    sums (host arrays), to compare across shard counts (`sums_differ`); cases is
    `case_counts(run)` or None.
  """
  config = config.copy_and_resolve_references()
  config.unlock()
  config.train.num_devices = item_shards
  config.train.item_shards = item_shards
  t0 = time.time()
  run = build.setup(config)
  jax.block_until_ready(run.state)
  setup_s = time.time() - t0
  args = (run.state.params, run.frozen, run.eval_data["valid"])
  t0 = time.time()
  compiled = run.eval_fn.lower(*args).compile()
  compile_s = time.time() - t0
  sums = jax.device_get(compiled(*args))
  times = []
  for _ in range(passes):
    t0 = time.time()
    jax.block_until_ready(compiled(*args))
    times.append(time.time() - t0)
  state = bytes_per_device(run.state)
  params = bytes_per_device(run.state.params)
  frozen = bytes_per_device(run.frozen)
  temp = _temp_bytes(compiled)
  ndcg = float(sums["full/all/ndcg@10"][0] / sums["full/all/count"][0])
  total = {d: state[d] + params[d] + frozen.get(d, 0) for d in state}
  row = {
    "item_shards": item_shards,
    "devices": len(state),
    "setup_s": setup_s,
    "compile_s": compile_s,
    "eval_s": {"min": min(times), "median": statistics.median(times), "max": max(times)},
    "valid_full_ndcg@10": ndcg,
    "mib_per_device": {
      "state": max(state.values()) / _MIB,
      "best_params": max(params.values()) / _MIB,
      "frozen": max(frozen.values(), default=0) / _MIB,
      "arrays_total": max(total.values()) / _MIB,
      "eval_temp": None if temp is None else temp / _MIB,
    },
    "num_items": run.task.num_items_a + run.task.num_items_b,
    "eval_cases": int(sums["full/all/count"][0]),
  }
  return row, sums, case_counts(run) if with_cases else None


# Unit roundoff of float32 (2^-24): the relative error of one rounded addition.
_F32_U = float(np.finfo(np.float32).eps) / 2
# A case is a near-tie when its target's score is within this relative distance of a negative's.
NEAR_TIE = 1e-5


def _sum_bound(key: str, sums: dict[str, np.ndarray]) -> tuple[float, float] | None:
  """(number of summed terms n, bound on the sum of their magnitudes) of one metric sum.

  None for counts, which are integers and must agree exactly. Ranking metrics lie in [0, 1], so
  the magnitudes add up to the sum itself and n is the key's case count; an alignment cosine sum
  is bounded by its |cos| sum and n is its token count; the gate values' sum by itself.
  """
  total = lambda k: float(np.sum(np.abs(np.asarray(sums[k], np.float64))))
  prefix, _, name = key.rpartition("/")
  if name.endswith("count"):
    return None
  if name == "alpha_sum":
    return total(f"{prefix}/alpha_count"), total(key)
  if keys.parse_align(key):  # [xy_|pre_]cos_sum and [xy_|pre_]abs_cos_sum
    stem = name[: -len("cos_sum")].removesuffix("abs_")
    return total(f"{prefix}/{stem}count"), total(f"{prefix}/{stem}abs_cos_sum")
  return total(f"{prefix}/count"), total(key)


def sums_differ(
  a: dict[str, np.ndarray], b: dict[str, np.ndarray], flipped_cases: int = 0
) -> list[str]:
  """The keys of two evaluation passes' metric sums that differ beyond float32 accumulation error.

  Two programs that compute the same metrics (e.g. 1 and k item shards, or one machine and another)
  may add the same per-case values in another order: XLA picks the order per program and per
  instruction set (AVX2 and AVX-512 give different last digits). The tolerance is twice the
  worst-case bound of recursive float32 summation, |S' - S| <= (n - 1) u sum|x_i| (Higham,
  *Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4), over the n cases (or tokens)
  summed; the factor 2 covers the rounding of each alignment cosine's own dot product. Counts must
  be equal, and NaN equals NaN. A case whose rank changes moves a ranking sum by up to 1 (every
  ranking metric lies in [0, 1]): `flipped_cases` near-ties that `rank_mismatches` found ordered
  differently widen the ranking sums' tolerance by that much, and nothing else does.

  Args:
    a, b: {key: float32 or int array} as returned by the trainer's evaluation program.
    flipped_cases: cases known to rank differently in `a` and `b` (near-ties).

  Returns:
    Sorted keys that are missing from `b` or differ; [] when the passes agree.
  """
  out = []
  for key in sorted(a):
    if key not in b:
      out.append(key)
      continue
    x, y = np.asarray(a[key], np.float64), np.asarray(b[key], np.float64)
    bound = _sum_bound(key, a)
    if bound is None:
      ok = np.array_equal(x, y, equal_nan=True)
    else:
      n, magnitude = bound
      atol = 2 * max(n, 1.0) * _F32_U * magnitude
      if not keys.parse_align(key):
        atol += flipped_cases
      ok = np.allclose(x, y, rtol=0.0, atol=atol, equal_nan=True)
    if not ok:
      out.append(key)
  return out


def case_counts(run: build.Run, split: str = "valid", replica: int = 0) -> dict[str, np.ndarray]:
  """Per-case ranking counts of one replica, and how close each case's target is to a tie.

  Runs the model's evaluation function batch by batch on the run's mesh, as the trainer's
  evaluation program does (the full-ranking scores split over the "model" axis), but returns per
  case what that program sums.

  Args:
    run: a `build.setup` result whose evaluation data is not in length buckets.
    split: "valid" or "test".
    replica: which replica's params.

  Returns:
    Host arrays over the split's real cases (batch padding removed): "<protocol>/higher" and
    "<protocol>/equal" int32 [cases] for protocol "sampled" and "full" (ranking.py), and
    "<protocol>/gap" float32 [cases]: min over the case's negatives of |s_j - s_target| divided by
    the largest |score| of the case, the distance to a tie relative to the scores' scale (inf
    where every score is exactly 0: such ties are exact in any program). For "full" the history
    items are counted as negatives here, so the gap can only be smaller.

  Raises:
    ValueError: the run evaluates in length buckets.
  """
  data = {k: v for k, v in run.eval_data[split].items() if k != step_lib.NUM_BATCHES_KEY}
  if step_lib.BUCKET_KEY in data:
    raise ValueError("case_counts: evaluation data in length buckets is not supported")
  task, mesh = run.padded.task, run.mesh
  n_items = task.num_items_a + task.num_items_b

  def gap(target_score, scores, mask):
    scale = jnp.max(jnp.where(mask, jnp.abs(scores), 0.0), axis=-1, keepdims=True)
    scale = jnp.maximum(scale, jnp.abs(target_score))
    dist = jnp.where(mask, jnp.abs(scores - target_score), jnp.inf)
    # All scores exactly 0 (e.g. an empty stream of an untrained model): ties no rounding can break.
    return jnp.where(
      scale[..., 0] > 0,
      jnp.min(dist, axis=-1) / jnp.maximum(scale[..., 0], jnp.finfo(jnp.float32).tiny),
      jnp.inf,
    )

  @jax.jit
  def per_batch(params, frozen, batch):
    batch = sharding.constrain_batch(batch, mesh)
    out = task.model.score(params, frozen, task.model.tables(params, frozen), batch)
    full = sharding.constrain_items(out.full_scores, mesh)
    is_b = batch["domain"] == 1
    ids = jax.lax.broadcasted_iota(jnp.int32, (1, full.shape[-1]), 1)
    in_range = (
      (ids >= jnp.where(is_b, task.num_items_a + 1, 1)[:, None])
      & (ids <= jnp.where(is_b, n_items, task.num_items_a)[:, None])
      & (ids != batch["target"][:, None])
    )
    target = jnp.take_along_axis(full, batch["target"][:, None], axis=-1)
    sampled = out.sampled_scores
    res = {}
    res["sampled/higher"], res["sampled/equal"], _ = ranking.sampled_counts(sampled)
    res["sampled/gap"] = gap(sampled[:, :1], sampled[:, 1:], jnp.ones_like(sampled[:, 1:], bool))
    res["full/higher"], res["full/equal"], _ = step_lib.full_counts(
      batch, full, task.num_items_a, n_items
    )
    res["full/gap"] = gap(target, full, in_range)
    return res

  params = jax.tree.map(lambda x: x[replica], run.state.params)
  rows = []
  for i in range(len(data["weight"])):
    batch = jax.tree.map(lambda x, i=i: x[i], data)
    res = jax.device_get(per_batch(params, run.frozen, batch))
    keep = np.asarray(batch["weight"]) > 0
    rows.append({k: np.asarray(v)[keep] for k, v in res.items()})
  return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def rank_mismatches(
  a: dict[str, np.ndarray], b: dict[str, np.ndarray], near_tie: float = NEAR_TIE
) -> dict[str, dict[str, int]]:
  """Compares two `case_counts` results case by case.

  Returns:
    {protocol: {"cases", "near_ties", "near_tie_flips", "mismatches"}}: near_ties counts the cases
    whose target is within `near_tie` (relative, see `case_counts`) of a negative in either
    result, where the last float32 digits of two programs may order them differently, and
    near_tie_flips those of them whose (higher, equal) counts differ; mismatches counts the other
    cases whose counts differ, which should be none.
  """
  out = {}
  for protocol in sorted({k.split("/")[0] for k in a}):
    get = lambda r, name, p=protocol: r[f"{p}/{name}"]
    near = (get(a, "gap") < near_tie) | (get(b, "gap") < near_tie)
    differ = (get(a, "higher") != get(b, "higher")) | (get(a, "equal") != get(b, "equal"))
    out[protocol] = {
      "cases": len(near),
      "near_ties": int(near.sum()),
      "near_tie_flips": int((differ & near).sum()),
      "mismatches": int((differ & ~near).sum()),
    }
  return out


def line(row: dict[str, Any]) -> str:
  """One printed line of `measure`'s result."""
  m, e = row["mib_per_device"], row["eval_s"]
  temp = "n/a" if m["eval_temp"] is None else f"{m['eval_temp']:.0f}"
  same = row.get("sums_agree_with_first")
  same = "" if same is None else f"  metric sums agree with the first: {'yes' if same else 'NO'}"
  return (
    f"item_shards={row['item_shards']}  compile {row['compile_s']:.1f}s  validation pass "
    f"{e['median']:.2f}s (min {e['min']:.2f}, max {e['max']:.2f})  MiB per device: state "
    f"{m['state']:.0f} + best {m['best_params']:.0f} + frozen {m['frozen']:.0f} = "
    f"{m['arrays_total']:.0f}, eval temp {temp}  "
    f"full NDCG@10 at init {row['valid_full_ndcg@10']:.4f}{same}"
  )
