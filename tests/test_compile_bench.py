"""The compile benchmark's measurements: HLO sizes and where a program's instructions come from."""

import subprocess
import sys

import jax
import jax.numpy as jnp

from orthoalign.bench import programs


def _step(x, i):
  """A scan whose body holds a switch: the constructs the benchmark tells apart."""
  y = jax.lax.switch(i % 2, (lambda v: v * 2.0, lambda v: jnp.sin(v) + 1.0), x)
  return y, jnp.sum(y)


@jax.jit
def _program(x):
  return jax.lax.scan(_step, x, jnp.arange(3))


def test_a_program_is_measured_by_stage_size_construct_and_source():
  compiled, cost = programs.measure(_program, (jnp.ones(4),))
  assert all(s >= 0 for s in (cost.trace_s, cost.lower_s, cost.compile_s))
  assert cost.hlo_instructions > 0 and cost.compiled_instructions > 0
  assert sum(cost.by_construct.values()) == cost.hlo_instructions
  assert {"top level", "loop", "loop>switch"} <= set(cost.by_construct)
  # The ops of the switch's branches were written by this file's `_step`.
  assert any(k.endswith("test_compile_bench.py:_step") for k in cost.by_source), cost.by_source
  carry, _ = compiled(jnp.ones(4))
  assert carry.shape == (4,)


def test_bad_flags_are_one_line():
  proc = subprocess.run(
    [sys.executable, "-m", "orthoalign.bench.compile", "--config=configs/tiny.py", "--top=0"],
    capture_output=True,
    text=True,
  )
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == ["error: --top=0 and --depth=2 must be >= 1"], (
    proc.stderr
  )
