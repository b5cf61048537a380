"""orthoalign.profiling: the step's cost parts and the per-op breakdown (figures, not speed)."""

import jax

from orthoalign.bench import profiling
from orthoalign.train import build
from tests.conftest import tiny_config


def test_step_profile_parts_and_op_breakdown():
  run = build.setup(tiny_config())
  parts = profiling.step_profile(run, 32, repeats=1)
  assert [p["part"] for p in parts] == ["forward (loss)", "forward + backward", "whole step"]
  fwd, bwd, whole = parts
  # The backward pass roughly doubles the forward FLOPs; the optimizer adds a little more.
  assert 0 < fwd["gflop"] < bwd["gflop"] <= whole["gflop"]
  assert all(p["seconds"] > 0 for p in parts)
  state0 = jax.tree.map(lambda x: x[0], run.state)
  ops = profiling.op_breakdown(whole["compiled"], (state0, run.train_data, run.frozen), repeats=1)
  if ops:  # the CPU runtime records one event per HLO op
    for shares in (ops["kind"], ops["scope"]):
      assert abs(sum(shares.values()) - 1) < 1e-6
    assert "matmul" in ops["kind"]
    # Model parts are named by their Flax module path, forward and backward.
    assert any(k.startswith("block/") and k.endswith("(backward)") for k in ops["scope"])


def test_scopes_strip_jax_wrappers():
  hlo = (
    "  %fusion.3 = f32[2]{0} fusion(%a), kind=kLoop, metadata={op_name="
    '"jit(one)/vmap(transpose(jvp(LLM4CDSR)))/block_m1/ffn/Dropout_1/div" source_file="x"}\n'
    '  ROOT %dot.1 = f32[2]{0} dot(%b), metadata={op_name="jit(one)/vmap(LLM4CDSR)/pos_m/mul"}'
  )
  assert profiling.scopes(hlo) == {"fusion.3": "block/ffn (backward)", "dot.1": "pos_m (forward)"}
  assert [profiling._module_kind(p) for p in ("gca0_A", "adapter_1", "Dense_0", "attn")] == [
    "gca",
    "adapter",
    "Dense",
    "attn",
  ]


def test_op_categories():
  assert profiling._category("ynn_fusion.12") == "matmul"
  assert profiling._category("dot.3") == "matmul"
  assert profiling._category("copy_bitcast_fusion.29") == "copy / transpose"
  assert profiling._category("bitcast_gather_fusion.11") == "gather / scatter"
  assert profiling._category("add_multiply_fusion.6") == "other fused elementwise"
