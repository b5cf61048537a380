"""What a compiled program costs: trace, lower and compile time, HLO size, and where its
instructions come from (by Flax module path and by construct). The compile benchmark
(`python -m orthoalign.bench.compile`) measures the trainer's programs with it.

Sizes are counted on the HLO that XLA receives (`Lowered.as_text(dialect="hlo")`, before its
optimisation passes), whose size drives the compile time, and on the compiled HLO. Each
instruction's module path comes from its `op_name` metadata (profiling.scopes: the module kinds
of its first levels, forward or backward); its construct is the chain of control flow it sits in
from the entry computation: "loop" (a `while` body or condition: lax.scan, fori_loop), "switch"
(a `conditional` branch: lax.switch, lax.cond), "reducer" (the small computation a reduce, sort
or scatter applies), joined by ">" (e.g. "loop>switch").
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
from typing import Any

import jax
import jax.numpy as jnp

from orthoalign.bench import profiling
from orthoalign.train import state as state_lib
from orthoalign.train import step as step_lib

# A computation's first line: "%name (params) -> type {" or "ENTRY %name ...".
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$")
_INSTRUCTION = re.compile(r"^\s+(?:ROOT )?%?[\w.\-]+ = ")
# Computations an instruction calls, and the construct each kind of call opens.
_CALLS = (
  (re.compile(r"\b(?:condition|body)=%?([\w.\-]+)"), "loop"),
  (re.compile(r"\b(?:true_computation|false_computation)=%?([\w.\-]+)"), "switch"),
  (re.compile(r"\bbranch_computations=\{([^}]*)\}"), "switch"),
  (re.compile(r"\bto_apply=%?([\w.\-]+)"), None),  # a call inherits; a reduce's is a reducer
  (re.compile(r"\bcalls=%?([\w.\-]+)"), None),
)
_REDUCERS = re.compile(r"\b(reduce|reduce-window|sort|scatter|select-and-scatter|all-reduce|map)\(")
# StableHLO with debug info: an op line ends with loc(#locN); the #loc table follows the module.
_OP_LOC = re.compile(r"^\s+(?:%[\w#:, ]+ = )?\"?(?:stablehlo|chlo)\.[\w.]+.*loc\((#loc\d*)\)\s*$")
_LOC_DEF = re.compile(r"^(#loc\d*) = loc\((.*)\)$")
_FILE_LOC = re.compile(r'^"([^"]+)":(\d+):\d+')
_NAME_LOC = re.compile(r'^"([^"]*)"\((#loc\d*)\)$')
_CALLSITE = re.compile(r"^callsite\((#loc\d*) at (#loc\d*)\)$")


@dataclasses.dataclass
class ProgramCost:
  """One program's compile cost.

  Attributes:
    trace_s, lower_s, compile_s: seconds (wall clock) of `jit(...).trace`, `.lower` and
      `.compile` (XLA's optimisation and code generation).
    hlo_instructions: instructions of the HLO XLA receives.
    compiled_instructions: instructions of the optimised HLO.
    by_module: instructions of the received HLO per module path ("block/attn (backward)").
    by_construct: instructions of the received HLO per construct ("top level", "loop",
      "loop>switch", ...).
    by_source: StableHLO ops per source frame ("models/llm4cdsr/loss.py:loss", "optax", ...).
  """

  trace_s: float
  lower_s: float
  compile_s: float
  hlo_instructions: int
  compiled_instructions: int
  by_module: dict[str, int]
  by_construct: dict[str, int]
  by_source: dict[str, int]


def _computations(hlo_text: str) -> tuple[dict[str, list[str]], str]:
  """{computation name: its instruction lines} and the entry computation's name."""
  comps: dict[str, list[str]] = {}
  entry, current = "", None
  for line in hlo_text.splitlines():
    m = _COMPUTATION.match(line)
    if m and not line.startswith(" "):
      current = m.group(1)
      comps[current] = []
      if line.startswith("ENTRY"):
        entry = current
    elif current is not None and _INSTRUCTION.match(line):
      comps[current].append(line)
  return comps, entry


def constructs(hlo_text: str) -> dict[str, int]:
  """Instructions per construct chain (see the module docstring), largest first."""
  comps, entry = _computations(hlo_text)
  chain = {entry: ()}
  todo = [entry]
  while todo:
    name = todo.pop()
    for line in comps.get(name, ()):
      for pattern, kind in _CALLS:
        for m in pattern.finditer(line):
          for callee in re.findall(r"[\w.\-]+", m.group(1)):
            if callee in chain or callee not in comps:
              continue
            if kind is None and _REDUCERS.search(line):
              kind_here = "reducer"
            else:
              kind_here = kind
            chain[callee] = chain[name] + ((kind_here,) if kind_here else ())
            todo.append(callee)
  counts: collections.Counter[str] = collections.Counter()
  for name, lines in comps.items():
    counts[">".join(chain.get(name, ("unreached",))) or "top level"] += len(lines)
  return dict(counts.most_common())


def _frame(table: dict[str, str], loc: str, depth: int = 0) -> tuple[str, str]:
  """(file, function) of a location's innermost frame; ("", "") when it has none."""
  text = table.get(loc, "")
  if depth > 64 or not text:
    return "", ""
  if m := _CALLSITE.match(text):
    return _frame(table, m.group(1), depth + 1)
  if m := _NAME_LOC.match(text):
    child = table.get(m.group(2), "")
    if f := _FILE_LOC.match(child):
      return f.group(1), m.group(1)  # a frame: function name at a file position
    return _frame(table, m.group(2), depth + 1)  # a JAX name-stack entry around a location
  if f := _FILE_LOC.match(text):
    return f.group(1), ""
  return "", ""


def source_of(path: str, function: str) -> str:
  """A frame as "<file in orthoalign>:<function>", "<library>" or "(no source)" (ops JAX wrote
  with no user frame inside the program: batching, loop plumbing, argument handling).
  """
  if not path:
    return "(no source)"
  if "site-packages/" in path:
    return path.split("site-packages/", 1)[1].split("/", 1)[0]
  if "/orthoalign/" in path:
    where = path.rsplit("/orthoalign/", 1)[1]
    if where.startswith("bench/"):  # the call of the program itself: JAX wrote these ops
      return "(no source)"
    return f"{where}:{function.split('.<locals>')[0]}"
  return f"{path.rsplit('/', 1)[-1]}:{function}"


def sources(mlir_text: str) -> dict[str, int]:
  """StableHLO ops per source frame (`source_of` of each op's innermost frame), largest first:
  which function of orthoalign, or which library (optax, flax), wrote them.
  """
  table = {}
  for line in mlir_text.splitlines():
    if m := _LOC_DEF.match(line):
      table[m.group(1)] = m.group(2)
  counts: collections.Counter[str] = collections.Counter()
  for line in mlir_text.splitlines():
    if m := _OP_LOC.match(line):
      counts[source_of(*_frame(table, m.group(1)))] += 1
  return dict(counts.most_common())


def instructions(hlo_text: str) -> int:
  """The number of instructions of an HLO module's text."""
  return sum(len(lines) for lines in _computations(hlo_text)[0].values())


def measure(jitted: Any, args: tuple[Any, ...], depth: int = 2) -> tuple[Any, ProgramCost]:
  """Traces, lowers and compiles `jitted(*args)` once, timing each stage.

  Returns (the compiled program, its cost). The persistent compilation cache, when on, would
  make `compile_s` a load time: the benchmark turns it off.
  """
  t0 = time.perf_counter()
  traced = jitted.trace(*args)
  t1 = time.perf_counter()
  lowered = traced.lower()
  t2 = time.perf_counter()
  compiled = lowered.compile()
  t3 = time.perf_counter()
  hlo = lowered.as_text(dialect="hlo", debug_info=True)
  by_module = collections.Counter(profiling.scopes(hlo, depth).values())
  return compiled, ProgramCost(
    trace_s=t1 - t0,
    lower_s=t2 - t1,
    compile_s=t3 - t2,
    hlo_instructions=instructions(hlo),
    compiled_instructions=instructions(compiled.as_text()),
    by_module=dict(by_module.most_common()),
    by_construct=constructs(hlo),
    by_source=sources(lowered.as_text(debug_info=True)),
  )


def compile_seconds(fn: Any, *args: Any) -> float:
  """Seconds to trace, lower and compile `jax.jit(fn)(*args)` (nothing is run)."""
  t0 = time.perf_counter()
  jax.jit(fn).trace(*args).lower().compile()
  return time.perf_counter() - t0


def train_parts(run: Any, batch_size: int, compute_dtype: str = "float32") -> dict[str, float]:
  """Compile seconds of the training epoch's nested parts, for one replica and one batch: where
  an epoch program's compile time goes (each part includes the ones before it).

    forward loss    the model's loss on one batch (the module, negatives, loss terms)
    gradient        value_and_grad of that loss
    train step      the gradient and the optimizer update (train/step.train_step)
    optimizer       the optimizer update alone
    epoch           the trainer's program: every replica (vmap), shuffling, a scan over the steps

  Args:
    run: a `build.Run`.
    batch_size: `train.batch_size`.
    compute_dtype: `train.compute_dtype`.
  """
  task, frozen = run.padded.task, run.frozen
  tx = state_lib.make_optimizer()
  state = jax.tree.map(lambda x: x[0], run.state)
  batch = step_lib.gather_batch(run.train_data, jnp.arange(batch_size))
  rng = jax.random.key(0)
  loss_fn = step_lib.loss_in(task, compute_dtype)
  loss = lambda p, b: loss_fn(p, frozen, b, rng, state.hparams)[0]
  return {
    "forward loss": compile_seconds(loss, state.params, batch),
    "gradient": compile_seconds(jax.value_and_grad(loss), state.params, batch),
    "train step": compile_seconds(
      lambda s, b: step_lib.train_step(
        s, b, rng, task=task, tx=tx, frozen=frozen, compute_dtype=compute_dtype
      ),
      state,
      batch,
    ),
    "optimizer": compile_seconds(lambda s: tx.update(s.params, s.opt_state, s.params), state),
    "epoch": compile_seconds(
      lambda s: run.epoch_fn(s, run.train_data, frozen, run.epoch_arg(1)), run.state
    ),
  }


def eval_parts(run: Any) -> dict[str, float]:
  """Compile seconds of the evaluation's nested parts, for one replica and one batch.

  item tables     the model's tables for scoring (`Baseline.tables`)
  scores          tables and the scores of one batch of cases (`Baseline.score`)
  evaluation      the trainer's program: every replica, every batch, ranks, metric sums per
                  protocol, domain and group, alignment statistics
  """
  model, frozen = run.padded.task.model, run.frozen
  params = jax.tree.map(lambda x: x[0], run.state.params)
  batch = jax.tree.map(lambda x: x[0], run.eval_data["valid"])
  return {
    "item tables": compile_seconds(lambda p: model.tables(p, frozen), params),
    "scores": compile_seconds(
      lambda p, b: model.score(p, frozen, model.tables(p, frozen), b), params, batch
    ),
    "evaluation": compile_seconds(
      lambda p: run.eval_fn(p, frozen, run.eval_data["valid"]), run.state.params
    ),
  }
