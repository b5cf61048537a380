"""Length buckets (train.length_buckets), padding masked (model.mask_padding_keys)."""

import functools

from conftest import tiny_config
import contract
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.config import validation
from orthoalign.datasets import load as data_load
from orthoalign.inputs import abxi_windows
from orthoalign.inputs import windows
from orthoalign.train import build
from orthoalign.train import loop
from orthoalign.train import step as step_lib
from orthoalign.train import task as task_lib


def _task(**overrides):
  cfg = tiny_config(**{"model.dropout": 0.0, **overrides})
  return task_lib.bind(data_load.load(cfg.data), cfg)


def _features(task, batch):
  params = task.model.init(jax.random.PRNGKey(0))
  out = task.model.module.apply({"params": params, **task.model.frozen}, batch, train=False)
  return {k: np.asarray(out[k]) for k in ("f_m", "f_a", "f_b")}


@pytest.mark.parametrize("masked", [True, False])
def test_cutting_padding_changes_no_output_only_when_padding_is_masked(masked):
  task = _task(**{"model.mask_padding_keys": masked})
  length = 4
  rows = np.nonzero(task.model.lengths(task.train_data) <= length)[0][:16]
  assert len(rows) >= 8, "tiny data should have short training windows"
  batch = {k: jnp.asarray(v[rows]) for k, v in task.train_data.items()}
  full, cut = _features(task, batch), _features(task, windows.crop_windows(batch, length))
  gap = max(float(np.abs(full[k][:, -length:] - cut[k]).max()) for k in full)
  if masked:  # the GCA_early cells of tiny_config see the same keys too
    assert gap < 1e-5
  else:  # upstream's attention: padding acts as keys, so its amount changes every output
    assert gap > 1e-3


def test_crop_windows_keeps_every_target_and_its_mixed_position():
  task = _task()
  length = 5
  rows = np.nonzero(task.model.lengths(task.train_data) <= length)[0]
  full = {k: v[rows] for k, v in task.train_data.items()}
  cut = windows.crop_windows(full, length)
  assert cut["seq"].shape == (len(rows), length) and cut["hist"].shape == full["hist"].shape
  for key in ("seq", "pos", "seq_a", "pos_a", "seq_b", "pos_b"):  # only padding was cut
    assert (full[key][:, :-length] == 0).all() and (cut[key] == full[key][:, -length:]).all()
  for name in ("a", "b"):
    idx_full, idx_cut = full[f"mix_idx_{name}"][:, -length:], cut[f"mix_idx_{name}"]
    assert ((idx_cut >= 0) == (idx_full >= 0)).all()
    r, j = np.nonzero(idx_cut >= 0)
    # The mixed position each domain target points at predicts the same item after the cut.
    np.testing.assert_array_equal(cut["pos"][r, idx_cut[r, j]], full["pos"][r, idx_full[r, j]])
  with pytest.raises(ValueError, match="crop length 0 must be in"):
    windows.crop_windows(full, 0)


def _abxi_task(**overrides):
  cfg = contract.tiny_config("abxi")
  cfg.gca.positions = (0, 1, 2)  # every insertion point: the cells must ignore the cut padding too
  cfg.update_from_flattened_dict({"model.dropout": 0.0, **overrides})
  return task_lib.bind(data_load.load(cfg.data), cfg)


@pytest.mark.parametrize("masked", [True, False])
def test_abxi_cutting_padding_changes_no_output_only_when_padding_is_masked(masked):
  """Training (every position) and evaluation (the last one) outputs of rows of <= 4 items."""
  task = _abxi_task(**{"model.mask_padding_keys": masked})
  length = 4
  params = task.model.init(jax.random.PRNGKey(0))
  frozen = task.model.frozen
  apply = jax.jit(
    lambda b, train: task.model.module.apply({"params": params, **frozen}, b, train=train)["h"],
    static_argnums=1,
  )
  gaps = []
  for arrays, train in ((task.train_data, True), (task.eval_data["valid"], False)):
    rows = np.nonzero(task.model.lengths(arrays) <= length)[0][:16]
    assert len(rows) >= 4, "tiny data should have short windows"
    batch = {k: jnp.asarray(v[rows]) for k, v in arrays.items()}
    full, cut = apply(batch, train), apply(abxi_windows.crop_windows(batch, length), train)
    full = full[:, -length:] if train else full
    gaps.append(float(np.abs(np.asarray(full) - np.asarray(cut)).max()))
  if masked:
    assert max(gaps) < 1e-5
  else:  # the original's attention: padding slots are keys, their number changes every output
    assert min(gaps) > 1e-3


def test_abxi_crop_cuts_only_padding():
  task = _abxi_task()
  length = 5
  for arrays in (task.train_data, task.eval_data["test"]):
    rows = np.nonzero(task.model.lengths(arrays) <= length)[0]
    full = {k: v[rows] for k, v in arrays.items()}
    cut = abxi_windows.crop_windows(full, length)
    cropped = [k for k in abxi_windows.WINDOW_KEYS if k in full and full[k].ndim == 2]
    assert "seq_x" in cropped and "time_b" in cropped
    for key in cropped:
      padding = -1 if "time" in key else 0
      assert (full[key][:, :-length] == padding).all(), key
      assert (cut[key] == full[key][:, -length:]).all(), key
    for key in set(full) - set(cropped):  # hist, user, and the evaluation's target [B]
      assert cut[key] is full[key], key
  with pytest.raises(ValueError, match="crop length 12 must be in"):
    abxi_windows.crop_windows(full, 12)


def test_bucketed_batches_hold_every_row_once_in_a_bucket_that_fits_it():
  rng = np.random.default_rng(0)
  n, batch = 103, 8
  row_bucket = jnp.asarray(rng.integers(0, 3, n), jnp.int32)
  results = [
    step_lib.bucketed_batches(
      jax.random.permutation(jax.random.PRNGKey(s), n), row_bucket, batch, jnp.int32(epoch)
    )
    for s, epoch in ((0, 1), (1, 1), (0, 2))
  ]
  for idx, bucket in results:
    idx, bucket = np.asarray(idx), np.asarray(bucket)
    assert idx.shape == (13, batch) and bucket.shape == (13,)
    rows = idx[idx >= 0]
    assert sorted(rows.tolist()) == list(range(n))  # every row exactly once
    own = np.where(idx >= 0, np.asarray(row_bucket)[np.maximum(idx, 0)], -1)
    assert (own.max(axis=1) <= bucket).all()  # the batch's cut fits all its rows
    assert (np.bincount(bucket, minlength=3) >= np.ceil(np.bincount(row_bucket) / batch) - 1).all()
  lengths = jnp.asarray(rng.integers(1, 30, n), jnp.int32)
  weights = np.asarray(step_lib.token_weights(results[0][0], lengths))
  tokens = np.where(results[0][0] >= 0, np.asarray(lengths)[np.maximum(results[0][0], 0)], 0).sum(1)
  np.testing.assert_allclose(weights.mean(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(weights, tokens / tokens.mean(), rtol=1e-6)
  (idx0, b0), (idx1, b1), (_, b2) = results
  np.testing.assert_array_equal(b0, b1)  # which bucket runs when: same per replica
  assert not np.array_equal(np.asarray(idx0), np.asarray(idx1))  # the rows in it: not
  assert not np.array_equal(b0, b2)  # and a new order every epoch


def test_config_errors_name_the_key():
  cases = [
    ({"train.length_buckets": (6, 3), "model.mask_padding_keys": True}, "strictly ascending"),
    ({"train.length_buckets": (3, 10), "model.mask_padding_keys": True}, "below model.max_len=10"),
    ({"train.length_buckets": (3,)}, "needs model.mask_padding_keys=True"),
  ]
  for overrides, message in cases:
    with pytest.raises(errors.ConfigError, match=message):
      validation.validate(tiny_config(**overrides))
  for overrides, message in [
    ({"train.length_buckets": (3,)}, "needs model.mask_padding_keys=True.*ABXI's attention"),
    ({"train.length_buckets": (3, 11), "model.mask_padding_keys": True}, "below model.max_len=11"),
  ]:
    cfg = contract.tiny_config("abxi")
    cfg.update_from_flattened_dict(overrides)
    with pytest.raises(errors.ConfigError, match=message):
      validation.validate(cfg)
  cfg = contract.tiny_config("cdsrnp")
  cfg.train.length_buckets = (3,)
  with pytest.raises(errors.ConfigError, match="'cdsrnp' cannot train in length buckets"):
    validation.validate(cfg)
  validation.validate(
    tiny_config(**{"train.length_buckets": (3, 6), "model.mask_padding_keys": True})
  )


def test_bucketed_programs_run_one_branch_per_batch_and_evaluate_as_unbucketed():
  # One replica is enough: vmap batches a size-1 axis by the same rules.
  # Two buckets (4 and max_len 10): each branch is one more trace of the whole step.
  cfg = tiny_config(**{"train.length_buckets": (4,), "model.mask_padding_keys": True})
  run = build.setup(cfg)
  lengths = np.asarray(run.train_data[step_lib.LENGTH_KEY])
  np.testing.assert_array_equal(step_lib.length_bucket(lengths, (4, 10)), lengths > 4)
  valid = run.eval_data["valid"]
  traced = {
    name: fn.trace(*args)
    for name, fn, args in (
      ("epoch", run.epoch_fn, (run.state, run.train_data, run.frozen, run.epoch_arg(1))),
      ("eval", run.eval_fn, (run.state.params, run.frozen, valid)),
    )
  }
  for name, t in traced.items():
    conds = [e for e in _eqns(t.jaxpr.jaxpr) if e.primitive.name == "cond"]
    # One conditional with a branch per bucket, not a select that runs both branches.
    assert [len(e.params["branches"]) for e in conds] == [2], name
  # Evaluation: cases ordered by bucket and cut, against all cases at full length.
  assert np.asarray(valid[step_lib.BUCKET_KEY]).tolist() == sorted(
    np.asarray(valid[step_lib.BUCKET_KEY]).tolist()
  )
  hist_width = max(a["hist"].shape[1] for a in run.task.eval_data.values())
  plain = build.eval_batches(run.task.eval_data["valid"], cfg.eval.batch_size, hist_width)
  plain_fn = jax.jit(
    jax.vmap(
      functools.partial(step_lib.evaluate, task=run.padded.task, mesh=run.mesh),
      in_axes=(0, None, None),
    )
  )
  got = jax.device_get(traced["eval"].lower().compile()(run.state.params, run.frozen, valid))
  want = jax.device_get(plain_fn(run.state.params, run.frozen, plain))
  assert got.keys() == want.keys()
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=2e-5, atol=1e-5, err_msg=key)


def _model_config(name, **overrides):
  if name == "llm4cdsr":
    return tiny_config(**overrides)
  cfg = contract.tiny_config(name)
  cfg.gca.positions = (0,)
  cfg.update_from_flattened_dict(overrides)
  return cfg


@pytest.mark.slow
@pytest.mark.parametrize("name", ["llm4cdsr", "abxi"])
def test_bucketed_run_trains_and_resumes_identically(tmp_path, name):
  overrides = {
    "train.length_buckets": (3, 6),
    "model.mask_padding_keys": True,
    "train.max_epochs": 2,
  }
  config = functools.partial(_model_config, name)
  full = loop.train_and_evaluate(config(**overrides), str(tmp_path / "full"))[0]
  loop.train_and_evaluate(config(**{**overrides, "train.max_epochs": 1}), str(tmp_path / "cut"))
  resumed = loop.train_and_evaluate(config(**overrides), str(tmp_path / "cut"))[0]
  key = "test/sampled/all/ndcg@10"
  assert np.isfinite(full[key]) and full[key] > 0
  np.testing.assert_allclose(resumed[key], full[key], rtol=1e-6)


def _eqns(jaxpr):
  """Every equation of `jaxpr` and of the jaxprs nested in it (jit, scan bodies, cond branches)."""
  for eqn in jaxpr.eqns:
    yield eqn
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          yield from _eqns(sub)
