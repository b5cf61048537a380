"""Pure, compiled steps: one train step, one epoch (lax.scan over steps) and one evaluation pass.

All functions here act on ONE replica; the loop vmaps them over the replica axis and jits them on
the device mesh. Nothing here talks to the host.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
import optax

from orthoalign.metrics import alignment
from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.train import sharding
from orthoalign.train import state as state_lib
from orthoalign.train import task as task_lib

Array = jax.Array
_SHUFFLE, _STEP = 0, 1  # independent random streams derived from a replica's base key
_ORDER_SEED = 2  # the replica-independent order of bucketed batches (bucketed_batches)
# With train.length_buckets: the train data's real length per row, the eval data's bucket per batch.
LENGTH_KEY = "row_length"
BUCKET_KEY = "length_bucket"
# Eval data padded with zero-weight batches to another split's batch count, so that both splits run
# one compiled evaluation: its number of real batches (an int32 scalar), which the evaluation runs.
NUM_BATCHES_KEY = "num_batches"


COMPUTE_DTYPES = ("float32", "bfloat16")


def cast_floats(tree: Any, dtype: jnp.dtype) -> Any:
  """`tree` with every floating-point leaf cast to `dtype` (ints, bools and keys unchanged)."""
  return jax.tree.map(
    lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree
  )


def loss_in(task: task_lib.Task, compute_dtype: str) -> Any:
  """task.model.loss computed in `compute_dtype`, returning its loss and metrics in float32."""

  def loss_fn(params, frozen, batch, rng, hparams):
    if compute_dtype != "float32":
      dtype = jnp.dtype(compute_dtype)
      params, frozen, batch = (cast_floats(t, dtype) for t in (params, frozen, batch))
    loss, metrics = task.model.loss(params, frozen, batch, rng, hparams)
    return loss.astype(jnp.float32), cast_floats(metrics, jnp.float32)

  return loss_fn


def train_step(
  state: state_lib.TrainState,
  batch: dict[str, Array],
  rng: Array,
  *,
  task: task_lib.Task,
  tx: optax.GradientTransformation,
  frozen: Any,
  compute_dtype: str = "float32",
  loss_scale: Array | None = None,
) -> tuple[state_lib.TrainState, dict[str, Array]]:
  """One optimisation step: (state, batch, rng) -> (new state, metrics).

  With compute_dtype="bfloat16" (config `train.compute_dtype`) the loss is computed from bfloat16
  copies of the params, the frozen tables and the batch's float inputs, so every matmul, softmax
  and the loss itself run in bfloat16; the gradient flows back through the casts, so the params,
  the gradient and the optimizer state stay float32 (mixed precision as in jmp / MaxText's
  `dtype` with float32 `weight_dtype`). Evaluation is always float32 (ranks are not tied by
  bfloat16 rounding).

  `loss_scale` (float32 scalar) multiplies the loss the gradient is taken of (the metrics stay
  unscaled); `train_epoch` uses it to weight length-bucketed batches by their tokens.
  """
  loss_fn = loss_in(task, compute_dtype)
  if loss_scale is not None:

    def scaled(*args):
      loss, metrics = loss_fn(*args)
      return loss * loss_scale, metrics

  grad_fn = jax.value_and_grad(loss_fn if loss_scale is None else scaled, has_aux=True)
  (_, metrics), grads = grad_fn(state.params, frozen, batch, rng, state.hparams)
  with jax.named_scope("optimizer"):  # names its ops for bench.compile and the profiler
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def steps_per_epoch(num_rows: int, batch_size: int) -> int:
  """Batches per epoch: the last one is padded, not dropped."""
  return -(-num_rows // batch_size)


def gather_batch(data: dict[str, Array], idx: Array) -> dict[str, Array]:
  """Rows `idx` of the device-resident arrays; idx = -1 marks padding rows (row_valid False)."""
  batch = {k: v[jnp.maximum(idx, 0)] for k, v in data.items()}
  batch["row_valid"] = idx >= 0
  return batch


def train_epoch(
  state: state_lib.TrainState,
  data: dict[str, Array],
  frozen: Any,
  epoch: Array,
  *,
  task: task_lib.Task,
  tx: optax.GradientTransformation,
  batch_size: int,
  mesh: Mesh,
  compute_dtype: str = "float32",
  buckets: tuple[int, ...] = (),
) -> tuple[state_lib.TrainState, dict[str, Array]]:
  """A whole epoch on device: shuffle, gather batches, scan train_step. Returns mean metrics.

  With `buckets` (ascending lengths, the last = the full window; config `train.length_buckets`
  plus model.max_len), data[LENGTH_KEY] holds each row's real length (the model's `lengths`), a
  row's bucket is the shortest that holds it, batches are drawn by `bucketed_batches` and each step
  runs the compiled branch of its batch's bucket on the batch cut by the model's `crop`: one
  program, one branch per bucket, no padding beyond the bucket computed. Each batch's loss is
  scaled by its tokens (the sum of its rows' lengths) over the epoch's mean per batch: the losses
  are means over a batch's tokens, and without the scale a batch of short rows would weigh each of
  its tokens more than a mixed batch does.
  """
  data = dict(data)
  lengths = data.pop(LENGTH_KEY, None)
  n = next(iter(data.values())).shape[0]
  steps = steps_per_epoch(n, batch_size)
  shuffle_key = jax.random.fold_in(jax.random.fold_in(state.rng, _SHUFFLE), epoch)
  perm = jax.random.permutation(shuffle_key, n)

  def step(state, idx_b, scale=None, length=None):
    batch = gather_batch(data, idx_b)
    if length is not None:
      batch = task.model.crop(batch, length)
    batch = sharding.constrain_batch(batch, mesh)
    rng = jax.random.fold_in(jax.random.fold_in(state.rng, _STEP), state.step)
    return train_step(
      state,
      batch,
      rng,
      task=task,
      tx=tx,
      frozen=frozen,
      compute_dtype=compute_dtype,
      loss_scale=scale,
    )

  if not buckets:
    idx = jnp.pad(perm, (0, steps * batch_size - n), constant_values=-1).reshape(steps, batch_size)
    state, metrics = jax.lax.scan(step, state, idx)
  else:
    idx, step_bucket = bucketed_batches(perm, length_bucket(lengths, buckets), batch_size, epoch)
    scale = token_weights(idx, lengths)
    branches = [functools.partial(step, length=length) for length in buckets]
    # The bucket index does not depend on the replica, so under vmap this stays a conditional
    # (one branch runs per step) instead of becoming a select over every branch.
    state, metrics = jax.lax.scan(
      lambda st, xs: jax.lax.switch(xs[1], branches, st, xs[0], xs[2]),
      state,
      (idx, step_bucket, scale),
    )
  return state, jax.tree.map(jnp.mean, metrics)


def length_bucket(lengths: Array, buckets: tuple[int, ...]) -> Array:
  """int32, shape of `lengths`: the index of the shortest of `buckets` that holds each length (the
  last bucket for longer ones). Used on the host (numpy in) and in the epoch program alike.
  """
  rows = jnp.searchsorted(jnp.asarray(buckets), jnp.asarray(lengths), side="left")
  return jnp.minimum(rows, len(buckets) - 1).astype(jnp.int32)


def token_weights(idx: Array, lengths: Array) -> Array:
  """float32 [S]: each batch's tokens (the sum of its rows' `lengths`; idx -1 = padding row) over
  the mean per batch, so that the weights average 1 over the epoch.
  """
  tokens = jnp.where(idx >= 0, lengths[jnp.maximum(idx, 0)], 0).sum(axis=1).astype(jnp.float32)
  return tokens / jnp.maximum(tokens.mean(), 1.0)


def bucketed_batches(
  perm: Array, row_bucket: Array, batch_size: int, epoch: Array
) -> tuple[Array, Array]:
  """One epoch's batches with rows grouped by length bucket (as tf.data's
  bucket_by_sequence_length).

  Args:
    perm: int [N], this replica's shuffled row order.
    row_bucket: int32 [N], each row's bucket; replica-independent.
    batch_size: rows per batch B.
    epoch: int32 scalar, the epoch number.

  Returns:
    (idx int32 [S, B], bucket int32 [S]) with S = ceil(N / B): rows in `perm` order stably sorted by
    bucket and cut into batches (-1 marks the padding rows of the last one), each batch's bucket
    (the largest among its rows: a batch that straddles two buckets runs in the longer), and the
    batches in a random order drawn from `epoch` alone. The rows of each batch differ between
    replicas; which bucket comes at which step is the same for all (the price of one compiled
    branch per step under vmap: a replica-dependent index would run every branch). Every row is
    in exactly one batch, as without buckets.
  """
  n = perm.shape[0]
  steps = steps_per_epoch(n, batch_size)
  pad = steps * batch_size - n
  grouped = perm[jnp.argsort(row_bucket[perm], stable=True)]
  idx = jnp.pad(grouped, (0, pad), constant_values=-1).reshape(steps, batch_size)
  # The same grouping seen from the buckets alone: sorted bucket ids, replica-independent.
  bucket = jnp.pad(jnp.sort(row_bucket), (0, pad)).reshape(steps, batch_size).max(axis=1)
  order = jax.random.permutation(jax.random.fold_in(jax.random.PRNGKey(_ORDER_SEED), epoch), steps)
  return idx[order], bucket[order].astype(jnp.int32)


def full_counts(
  batch: dict[str, Array], scores: Array, num_items_a: int, num_items: int
) -> tuple[Array, Array, Array]:
  """Full-ranking counts of one batch, (higher, equal, num_negatives) int32 [B] (ranking.py).

  The negatives of a case are the items of the target's domain minus its history and the target.
  """
  is_b = batch["domain"] == 1
  lo = jnp.where(is_b, num_items_a + 1, 1)
  hi = jnp.where(is_b, num_items, num_items_a)
  return ranking.catalogue_counts(scores, batch["target"], lo, hi, batch["hist"])


def evaluate(
  params: Any,
  frozen: Any,
  data: dict[str, Array],
  *,
  task: task_lib.Task,
  mesh: Mesh,
  ties: str = "pessimistic",
  buckets: tuple[int, ...] = (),
) -> dict[str, Array]:
  """Sums of ranking metrics and alignment statistics over all eval cases of one split.

  Args:
    params: one replica's params.
    frozen: shared frozen variables.
    data: eval arrays reshaped to [num_batches, eval_batch, ...] plus "weight" (0 for padding rows);
      with NUM_BATCHES_KEY (an int32 scalar n), only the first n batches are evaluated: the rest
      pads the split to another split's batch count, so that both run one compiled program.
    task: the model's Task.
    mesh: device mesh (batches are split over it).
    ties: static tie rule of the ranking metrics (`config.eval.ties`, ranking.TIES): the target's
      rank among negatives scoring exactly as it is counted pessimistically (all tied negatives
      ahead), optimistically (none) or as the exact expectation of random tie-breaking. NaN
      scores count against the target under every rule.
    buckets: as in `train_epoch`; then data[BUCKET_KEY] int32 [num_batches] is each batch's bucket
      (the cases ordered by bucket on the host, train/loop.py) and each batch is cut by
      the model's `crop` to its bucket's length before the model sees it.

  Returns:
    Additive sums keyed "<protocol>/<dom>/<metric>" (metrics/keys.py without the split; with
    "<dom>/count"; the metrics include "tie_share", the share of cases with at least one negative
    tied) for "sampled", each extra "sampled<N>" (a "protocol/sampled<N>" candidate array in the
    data, scored from the full scores) and "full", the same per user or case group
    "<group>/<protocol>/<dom>/..." and "align/<cell>/<sum>"; the host divides
    them (ranking.finalize / alignment.finalize_alignment). Alignment statistics are not split by
    group: a query token with nothing to attend to (e.g. every token of a non-overlapped user) is
    outside the cell's x_mask, so they are statistics of tokens that saw the other stream.
  """
  tables = task.model.tables(params, frozen)
  n_items = task.num_items_a + task.num_items_b

  def batch_sums(
    params: Any, frozen: Any, tables: Any, batch: dict[str, Array]
  ) -> dict[str, Array]:
    batch = sharding.constrain_batch(batch, mesh)
    out = task.model.score(params, frozen, tables, batch)
    full_scores = sharding.constrain_items(out.full_scores, mesh)  # [B, N]: cases x item shards
    w = batch["weight"]
    sums = {}
    counts = {keys.SAMPLED: lambda: ranking.sampled_counts(out.sampled_scores)}
    for name in sorted(k for k in batch if k.startswith("protocol/")):
      # Declared extra protocols: their frozen candidates scored as full ranking scores each item.
      counts[name.split("/", 1)[1]] = lambda name=name: ranking.sampled_counts(
        jnp.take_along_axis(full_scores, batch[name], 1)
      )
    counts[keys.FULL] = lambda: full_counts(batch, full_scores, task.num_items_a, n_items)
    per = {}
    for protocol, count in counts.items():
      with jax.named_scope(f"ranks/{protocol}"):  # names its ops for bench.compile
        per[protocol] = ranking.metrics_from_counts(*count(), ties=ties)
    # Every metric for all cases, then per user group ("group/<name>" arrays, inputs/eval_cases.py).
    weights = {"": w}
    weights.update(
      {
        key.split("/", 1)[1]: jnp.where(batch[key], w, 0.0)
        for key in batch
        if key.startswith("group/")
      }
    )
    for group, weight in weights.items():
      for protocol, metrics in per.items():
        with jax.named_scope(f"metric_sums/{group or 'all'}/{protocol}"):  # for bench.compile
          domain_sums = ranking.domain_sums(metrics, batch["domain"], weight, task.domain_names)
        for k, v in domain_sums.items():
          sums[keys.metric_key("", protocol, *keys.split_domain_metric(k), group)] = v
    rows = (w > 0)[:, None]
    for name, cell in out.cells.items():
      masks = (cell["x_mask"] & rows, cell["y_mask"] & rows)
      stats = alignment.alignment_sums(cell["x"], cell["x_prime"], cell["y"], *masks)
      if "x_prime_pre" in cell:  # X' before an orthogonal or parallel intervention (models/gca.py)
        pre = alignment.alignment_sums(cell["x"], cell["x_prime_pre"], cell["y"], *masks)
        stats.update({alignment.PRE + k: pre[k] for k in ("cos_sum", "abs_cos_sum", "count")})
      stats["alpha_sum"], stats["alpha_count"] = cell["alpha_sum"], cell["alpha_count"]
      sums.update({keys.align_key(task.cell_labels[name], k): v for k, v in stats.items()})
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), sums)

  # jit: eval_shape below traces batch_sums for the carry's structure, and the scan body's call
  # then reuses that trace instead of tracing the whole model a second time.
  batch_sums = jax.jit(batch_sums)
  data = dict(data)
  batch_bucket = data.pop(BUCKET_KEY, None)
  num_batches = data.pop(NUM_BATCHES_KEY, None)
  first = jax.tree.map(lambda x: x[0], data)
  zeros = jax.tree.map(
    lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(batch_sums, params, frozen, tables, first)
  )
  add = lambda carry, batch: jax.tree.map(jnp.add, carry, batch_sums(params, frozen, tables, batch))
  # As in train_epoch: the bucket does not depend on the replica, so one branch runs per batch.
  branches = [lambda c, b, length=length: add(c, task.model.crop(b, length)) for length in buckets]
  if num_batches is not None:
    # Only the first num_batches batches, in order, from the same zeros: the sums a scan over them
    # would give, in one program for splits of different sizes.
    def body(i, carry):
      batch = jax.tree.map(lambda x: x[i], data)
      if not buckets:
        return add(carry, batch)
      return jax.lax.switch(batch_bucket[i], branches, carry, batch)

    return jax.lax.fori_loop(0, num_batches, body, zeros)
  if not buckets:
    sums, _ = jax.lax.scan(lambda c, b: (add(c, b), None), zeros, data)
    return sums
  sums, _ = jax.lax.scan(
    lambda c, xs: (jax.lax.switch(xs[1], branches, c, xs[0]), None), zeros, (data, batch_bucket)
  )
  return sums
