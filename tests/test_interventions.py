"""Interventions on a GCA cell (gca.intervention) and the orthogonality loss (gca.orth_penalty)."""

from conftest import tiny_config
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.config import validation
from orthoalign.metrics import alignment
from orthoalign.models import gca as gca_lib
from orthoalign.train import build
from orthoalign.train import results

B, LQ, LK, D = 4, 5, 6, 8


def _inputs(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, LQ, D)).astype(np.float32)
  y = rng.normal(size=(B, LK, D)).astype(np.float32)
  x_time = np.tile(np.arange(1, 2 * LQ, 2), (B, 1))  # queries at odd times,
  y_time = np.tile(np.arange(0, 2 * LK, 2), (B, 1))  # keys at even times: causal and not
  x_valid = np.ones((B, LQ), bool)
  y_valid = np.ones((B, LK), bool)
  x_valid[0, :2] = False  # padding on both sides
  y_valid[2, 3:] = False
  y_valid[3] = False  # a row with no key at all
  return [jnp.asarray(a) for a in (x, y, x_time, y_time, x_valid, y_valid)]


def _apply(intervention, args=None, **cell):
  args = _inputs() if args is None else args
  module = gca_lib.GatedCrossAttention(D, intervention=intervention, **cell)
  params = module.init(jax.random.key(0), *args, train=False)
  return module.apply(params, *args, train=False)


def _cos(a, b):
  with np.errstate(invalid="ignore", divide="ignore"):  # X' = 0 where a query saw no key
    return np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_orthogonal_adds_only_the_part_orthogonal_to_x():
  out, cell = _apply("orthogonal")
  x, xp, pre, mask = (np.asarray(cell[k]) for k in ("x", "x_prime", "x_prime_pre", "x_mask"))
  assert mask.sum() > 0
  assert np.abs(_cos(x, xp)[mask]).max() < 1e-5
  assert np.abs(_cos(x, pre)[mask]).min() > 1e-3  # the cell's own X' was not orthogonal
  # X' = X'_pre - its projection onto X, and the cell adds that X'.
  proj = np.sum(pre * x, -1, keepdims=True) / np.sum(x * x, -1, keepdims=True) * x
  np.testing.assert_allclose(xp, pre - proj, atol=1e-5)
  alpha = float(cell["alpha"])
  np.testing.assert_allclose(np.asarray(out)[mask], (x + alpha * xp)[mask], atol=1e-5)


def test_parallel_adds_only_the_projection_onto_x():
  _, cell = _apply("parallel")
  x, xp, pre, mask = (np.asarray(cell[k]) for k in ("x", "x_prime", "x_prime_pre", "x_mask"))
  np.testing.assert_allclose(np.abs(_cos(x, xp)[mask]), 1.0, atol=1e-5)
  # Collinear with X, and what remains of X'_pre is orthogonal to X.
  assert np.abs(_cos(x, pre - xp)[mask]).max() < 1e-4


def test_none_and_shuffled_keep_x_prime_and_report_no_pre_statistics():
  for name in ("none", "shuffled"):
    _, cell = _apply(name)
    assert "x_prime_pre" not in cell


def test_shuffled_reads_y_of_the_next_row_without_the_causal_mask():
  args = _inputs()
  x, y, x_time, y_time, x_valid, y_valid = args
  _, cell = _apply("shuffled", args)
  np.testing.assert_array_equal(np.asarray(cell["y"]), np.roll(np.asarray(y), 1, axis=0))
  np.testing.assert_array_equal(np.asarray(cell["y_mask"]), np.roll(np.asarray(y_valid), 1, axis=0))
  # Row 0 reads row B-1's Y, which has no valid key: no update. Row 1 reads row 0's Y.
  assert not np.asarray(cell["x_mask"])[0].any()
  # The causal mask is off: the first query (time 1) sees all of row 0's keys, the last ones too.
  late = y_time.at[:].set(100)
  _, causal_off = _apply("shuffled", [x, y, x_time, late, x_valid, y_valid])
  assert np.asarray(causal_off["x_mask"])[1].all()
  _, own = _apply("none", [x, y, x_time, late, x_valid, y_valid])
  assert not np.asarray(own["x_mask"]).any()  # causal: nothing before time 100
  # Row 1's output depends on row 0's Y and not on its own.
  out, _ = _apply("shuffled", args)
  out_own, _ = _apply("shuffled", [x, y.at[1].add(1.0), x_time, y_time, x_valid, y_valid])
  out_prev, _ = _apply("shuffled", [x, y.at[0].add(1.0), x_time, y_time, x_valid, y_valid])
  np.testing.assert_allclose(np.asarray(out_own)[1], np.asarray(out)[1], atol=1e-6)
  assert np.abs(np.asarray(out_prev)[1] - np.asarray(out)[1]).max() > 1e-4


def test_unknown_intervention_raises():
  with pytest.raises(ValueError, match="gca.intervention='sideways'"):
    _apply("sideways")


def test_mean_cos2_and_its_gradient_match_a_finite_difference():
  args = _inputs()
  module = gca_lib.GatedCrossAttention(D)
  params = module.init(jax.random.key(1), *args, train=False)

  def penalty(p):
    loss, metrics = gca_lib.orth_penalty_loss(
      jnp.float32(0.5),
      {"loss": jnp.float32(0.5)},
      {"gca0_A": module.apply(p, *args, train=False)[1]},
      {gca_lib.ORTH_PENALTY: jnp.float32(2.0)},
    )
    return loss, metrics

  loss, metrics = penalty(params)
  _, cell = module.apply(params, *args, train=False)
  x, xp, mask = (np.asarray(cell[k], np.float64) for k in ("x", "x_prime", "x_mask"))
  want = np.mean(_cos(x, xp)[mask.astype(bool)] ** 2)
  assert float(metrics["orth_cos2"]) == pytest.approx(want, rel=1e-5)
  assert float(loss) == pytest.approx(0.5 + 2.0 * want, rel=1e-5) == float(metrics["loss"])
  # Directional derivative along a random direction of the params against a central difference.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(2), len(leaves))
  v = jax.tree.unflatten(tree, [jax.random.normal(k, x.shape) for k, x in zip(keys, leaves)])
  f = lambda p: penalty(p)[0]
  _, jvp = jax.jvp(f, (params,), (v,))
  eps = 1e-2
  shift = lambda s: jax.tree.map(lambda a, b: a + s * b, params, v)
  fd = (f(shift(eps)) - f(shift(-eps))) / (2 * eps)
  assert float(jvp) == pytest.approx(float(fd), rel=2e-2, abs=1e-4)
  assert abs(float(jvp)) > 1e-3


def test_no_penalty_leaves_loss_and_metrics_alone():
  loss, metrics = gca_lib.orth_penalty_loss(
    jnp.float32(1.0), {"loss": 1.0}, {"c": {}}, {"temp": 1.0}
  )
  assert float(loss) == 1.0 and metrics == {"loss": 1.0}


@pytest.mark.parametrize(
  "overrides, match",
  [
    (
      {"gca.positions": (), "gca.intervention": "orthogonal"},
      "gca.intervention='orthogonal' acts on",
    ),
    ({"gca.positions": (), "gca.orth_penalty": 0.5}, "gca.orth_penalty=0.5 acts on GCA cells"),
    ({"gca.positions": (), "sweep.orth_penalties": (0.0, 1.0)}, "sweep.orth_penalties=.* acts on"),
    ({"gca.intervention": "sideways"}, "gca.intervention='sideways'.*orthogonal"),
    (
      {"gca.intervention": "shuffled", "train.batch_size": 1},
      "train.batch_size=1 has no other row",
    ),
    ({"gca.intervention": "shuffled", "eval.batch_size": 1}, "eval.batch_size=1 has no other row"),
    (
      {"sweep.orth_penalties": (0.0, "x")},
      r"sweep.orth_penalties=\(0.0, 'x'\): element 1 \('x'\) is not",
    ),
    ({"sweep.orth_penalties": (0.0, float("inf"))}, r"element 1 \(inf\) is not a finite number"),
    ({"gca.orth_penalty": float("nan")}, r"gca.orth_penalty=nan must be a finite number"),
  ],
)
def test_config_errors_name_the_key(overrides, match):
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(tiny_config(**overrides))


def test_penalty_replicas_train_in_one_program_and_pre_statistics_are_reported():
  # Two replicas (penalty 0 and 1) of one program, with the orthogonal intervention.
  cfg = tiny_config(**{"gca.intervention": "orthogonal", "sweep.orth_penalties": (0.0, 1.0)})
  run = build.setup(cfg)
  assert [r["gca.orth_penalty"] for r in run.reps] == [0.0, 1.0]
  np.testing.assert_array_equal(np.asarray(run.state.hparams[gca_lib.ORTH_PENALTY]), [0.0, 1.0])
  state, metrics = run.epoch_fn(run.state, run.train_data, run.frozen, run.epoch_arg(1))
  metrics = jax.device_get(metrics)
  # The orthogonal X' has cos^2 ~ 0 with X whatever the weight: the penalty adds ~ nothing.
  assert np.all(np.abs(metrics["orth_cos2"]) < 1e-6), metrics["orth_cos2"]
  sums = jax.device_get(run.eval_fn(state.params, run.frozen, run.eval_data["valid"]))
  row = results.finalize_split(sums, 0, "valid")
  for q in ("A", "B"):
    assert row[f"align/gca0_{q}/mean_abs_cos"] < 1e-4
    assert row[f"align/gca0_{q}/pre_mean_abs_cos"] > 1e-3
    assert f"align/gca0_{q}/xy_mean_abs_cos" in row and f"align/gca0_{q}/pre_xy_mean_cos" not in row


def test_finalize_without_pre_sums_has_no_pre_keys():
  sums = {
    "cos_sum": 1.0,
    "abs_cos_sum": 2.0,
    "count": 4,
    "xy_cos_sum": 0.0,
    "xy_abs_cos_sum": 0.0,
    "xy_count": 0,
  }
  assert not any(k.startswith(alignment.PRE) for k in alignment.finalize_alignment(sums))
  with_pre = alignment.finalize_alignment(
    {**sums, "pre_cos_sum": -2.0, "pre_abs_cos_sum": 3.0, "pre_count": 4}
  )
  assert with_pre["pre_mean_cos"] == -0.5 and with_pre["pre_abs_mean_cos"] == 0.5
  assert with_pre["pre_mean_abs_cos"] == 0.75
