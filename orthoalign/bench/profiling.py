"""Where a training step's time goes: XLA's cost analysis, measured times and a per-op trace.

Used by `python -m orthoalign.bench.profile`. Three parts:

  * `machine_peaks`: the practical roofline of this device: achieved GFLOP/s of a large float32
    (and bfloat16) matmul and GB/s of a large elementwise pass, both jit-compiled.
  * `step_profile`: one training step of one replica, compiled three ways (forward loss only,
    forward + backward, the whole step with the optimizer), each with XLA's `cost_analysis()`
    FLOPs and bytes and its median time, so the differences give the backward pass and the
    optimizer.
  * `op_breakdown`: the step under `jax.profiler.trace`; the XLA:CPU thunk executor records one
    event per HLO op, which is grouped by kind (matmuls, copies/transposes, gathers/scatters,
    reductions, random numbers, other fused elementwise ops) and by the part of the model it
    comes from (the Flax module path in the op's metadata, e.g. "block_m1/ffn", forward or
    backward). Op time is summed over the runtime's threads, so shares (not sums) compare with
    the wall time.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import glob
import gzip
import json
import os
import re
import statistics
import tempfile
import time
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib

# HLO op name -> category, first match wins (XLA:CPU names fusions after their ops; YNNPACK
# fusions are its dot/matmul kernels).
_CATEGORIES = (
  ("matmul", re.compile(r"ynn|dot|convolution|cublas|gemm|triton")),
  ("copy / transpose", re.compile(r"^(copy|transpose|bitcast_copy|copy_bitcast)")),
  ("gather / scatter", re.compile(r"gather|scatter|dynamic.slice|dynamic.update")),
  ("random numbers", re.compile(r"threefry|rng|random|shift_right|xor")),
  ("reduction", re.compile(r"reduce")),
  ("sort", re.compile(r"sort")),
)


def _median_time(fn: Callable[[], Any], repeats: int) -> float:
  jax.block_until_ready(fn())  # warm-up
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return statistics.median(times)


def _cost(compiled: Any) -> dict[str, float]:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  return {"gflop": cost.get("flops", 0.0) / 1e9, "gbytes": cost.get("bytes accessed", 0.0) / 1e9}


def machine_peaks(repeats: int = 5) -> dict[str, float]:
  """Achieved GFLOP/s of a 2048^3 matmul (float32 and bfloat16) and GB/s of a 256 MiB pass.

  Returns {"matmul_f32_gflops", "matmul_bf16_gflops", "stream_gbs"}; the stream figure counts
  one read and one write of the array.
  """
  n = 2048
  out = {}
  for dtype, key in ((jnp.float32, "matmul_f32_gflops"), (jnp.bfloat16, "matmul_bf16_gflops")):
    a = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x: x @ x)
    out[key] = 2 * n**3 / _median_time(lambda: f(a), repeats) / 1e9
  x = jnp.ones((64 * 2**20,), jnp.float32)  # 256 MiB
  g = jax.jit(lambda v: v * 1.0001 + 1.0)
  out["stream_gbs"] = 2 * x.nbytes / _median_time(lambda: g(x), repeats) / 1e9
  return out


def _one_step_fns(run: Any, batch_size: int, compute_dtype: str) -> dict[str, Callable]:
  """Forward, forward+backward and whole-step functions of replica 0 on the first batch."""
  task, tx = run.padded.task, state_lib.make_optimizer()  # the task the programs run
  rows = jnp.arange(batch_size)

  def batch_of(data):
    return step_lib.gather_batch(data, rows)

  loss_fn = step_lib.loss_in(task, compute_dtype)
  loss = lambda *args: loss_fn(*args)[0]

  def forward(state, data, frozen):
    return loss(state.params, frozen, batch_of(data), state.rng, state.hparams)

  def backward(state, data, frozen):
    return jax.grad(loss)(state.params, frozen, batch_of(data), state.rng, state.hparams)

  def whole(state, data, frozen):
    return step_lib.train_step(
      state, batch_of(data), state.rng, task=task, tx=tx, frozen=frozen, compute_dtype=compute_dtype
    )

  return {"forward (loss)": forward, "forward + backward": backward, "whole step": whole}


def step_profile(
  run: Any, batch_size: int, compute_dtype: str = "float32", repeats: int = 5
) -> list[dict[str, Any]]:
  """Cost and median time of replica 0's training step, forward only, + backward, + optimizer.

  Args:
    run: a `train.build.Run` (its replica 0, training data and frozen tables are used).
    batch_size: rows per step (config.train.batch_size).
    compute_dtype: as config.train.compute_dtype.
    repeats: timed calls per part (median reported).

  Returns:
    One dict per part: name, gflop and gbytes (XLA cost analysis), seconds, achieved gflops
    and gbs, and `compiled` (the executable, for `op_breakdown`).
  """
  state0 = jax.tree.map(lambda x: x[0], run.state)
  rows = []
  for name, fn in _one_step_fns(run, batch_size, compute_dtype).items():
    compiled = jax.jit(fn).lower(state0, run.train_data, run.frozen).compile()
    seconds = _median_time(lambda c=compiled: c(state0, run.train_data, run.frozen), repeats)
    cost = _cost(compiled)
    rows.append(
      {
        "part": name,
        **cost,
        "seconds": seconds,
        "gflops": cost["gflop"] / seconds,
        "gbs": cost["gbytes"] / seconds,
        "compiled": compiled,
      }
    )
  return rows


def _category(op: str) -> str:
  for name, pattern in _CATEGORIES:
    if pattern.search(op):
      return name
  return "other fused elementwise"


_OP_NAME = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"')


# Scopes JAX itself adds to op names (control flow, calls, remat), which are no module.
_JAX_SCOPE = re.compile(r"^(while|body|cond|branch_\d+|closed_call|core_call|checkpoint|remat\d*)$")


def _module_kind(part: str) -> str:
  """A module's name without its instance suffix: block_m1 -> block, gca0_A -> gca, Dense_0 ->
  Dense, so that the streams' and layers' copies of one block add up.
  """
  part = re.sub(r"_[A-Z]$", "", part)
  return re.sub(r"(_[a-z])?\d+$", "", part).rstrip("_")


def scopes(hlo_text: str, depth: int = 2) -> dict[str, str]:
  """{HLO instruction name: "<module kinds, first `depth` levels> (forward|backward)"}.

  The path is the op's `op_name` metadata without JAX's wrappers (jit(...), vmap(...),
  transpose(jvp(...)), ...), its control-flow scopes (while/body, cond/branch_1) and Flax method
  scopes (LLM4CDSR._cross), each level reduced to its
  module kind; ops under a transpose(...) wrapper belong to the backward pass.
  """
  out = {}
  for line in hlo_text.splitlines():
    m = _OP_NAME.match(line)
    if not m:
      continue
    parts = [
      p for p in m.group(2).split("/") if "(" not in p and "." not in p and not _JAX_SCOPE.match(p)
    ]
    path = [_module_kind(p) for p in parts[:-1][:depth]]  # the last part is the primitive
    where = "backward" if "transpose(" in m.group(2) else "forward"
    out[m.group(1)] = f"{'/'.join(path) or '(top level)'} ({where})"
  return out


def op_breakdown(
  compiled: Any, args: tuple[Any, ...], repeats: int = 3
) -> dict[str, dict[str, float]]:
  """Share of HLO-op time per kind and per model part while running `compiled(*args)`.

  Returns {"kind": {category: share}, "scope": {module path (forward|backward): share},
  "seconds": {"op": op time summed over threads per call, "wall": wall time per call}}; shares
  add up to 1 within "kind" and within "scope". Empty when the backend records no per-op events.
  """
  jax.block_until_ready(compiled(*args))
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(repeats):
        jax.block_until_ready(compiled(*args))
    wall = (time.perf_counter() - t0) / repeats
    paths = glob.glob(os.path.join(tmp, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
      return {}
    with gzip.open(paths[0]) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  op_scopes = scopes(compiled.as_text())
  kind, scope = collections.Counter(), collections.Counter()
  for e in events:
    op = e.get("args", {}).get("hlo_op") if e.get("ph") == "X" else None
    if op:
      kind[_category(op)] += e.get("dur", 0.0) / 1e6
      scope[op_scopes.get(op, "(unattributed)")] += e.get("dur", 0.0) / 1e6
  total = sum(kind.values())
  if not total:
    return {}
  share = lambda c: {k: v / total for k, v in c.most_common()}
  return {
    "kind": share(kind),
    "scope": share(scope),
    "seconds": {"op": total / repeats, "wall": wall},
  }
