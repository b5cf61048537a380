"""Resumption after faults (incomplete checkpoints, leftovers, replayed epochs), unwritable places,
and a run killed at random points (slow).
"""

import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import types

from conftest import tb_points
from conftest import tiny_run
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import tiny
from orthoalign import compile_cache
from orthoalign import errors
from orthoalign import run_lock
from orthoalign.datasets import store
from orthoalign.train import checkpoint as checkpoint_lib
from orthoalign.train import loop
from orthoalign.train import metric_writer
from orthoalign.train import schedule
from orthoalign.train import timing as timing_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METRICS = (
  "train/loss",
  "valid/sampled/all/ndcg@10",
  "test/sampled/A/ndcg@10",
  "test/full/B/mrr",
  "align/gca0_A/abs_mean_cos",
  "best_epoch",
)
TIMING_KEYS = (
  "compile_s",
  "wall_time_s",
  "train_time_s",
  "eval_time_s",
  "checkpoint_time_s",
  "steps_per_s",
)


run = tiny_run


class Killed(Exception):
  pass


def run_killed_after(workdir, epoch, monkeypatch, **overrides):
  """Runs until the progress line of `epoch` is printed (after its numbers and checkpoint, if any
  are written), then 'dies'.
  """
  real = metric_writer.MetricWriter.report

  def dying(self, step, *parts):
    real(self, step, *parts)
    if step == epoch:
      raise Killed()

  monkeypatch.setattr(metric_writer.MetricWriter, "report", dying)
  with pytest.raises(Killed):
    run(workdir, **overrides)
  monkeypatch.undo()


@pytest.fixture(scope="module")
def full(tmp_path_factory):
  return run(tmp_path_factory.mktemp("full"), **{"train.max_epochs": 4})[0]


# ---------------------------------------------------------------------------------------------
# Fault 1: a resume that cannot resume (and what a resume leaves behind).


def test_incomplete_newest_checkpoint_falls_back_to_the_previous_one(
  full, tmp_path, monkeypatch, capsys
):
  """An interrupted copy left checkpoints/3 without its `meta` item: every rerun crashed with
  orbax's KeyError; now it resumes from epoch 2, says so, and ends as the uninterrupted run.
  """
  run_killed_after(tmp_path, 2, monkeypatch, **{"train.max_epochs": 4})
  ckpts = tmp_path / "checkpoints"
  assert sorted(os.listdir(ckpts)) == ["2"]
  shutil.copytree(ckpts / "2", ckpts / "3")
  shutil.rmtree(ckpts / "3" / "meta")
  capsys.readouterr()
  resumed = run(tmp_path, **{"train.max_epochs": 4})[0]
  out = capsys.readouterr().out
  assert "skipped the incomplete checkpoint" in out and str(ckpts / "3") in out
  assert "at epoch 2" in out
  for key in METRICS:
    np.testing.assert_allclose(resumed[key], full[key], rtol=1e-6, atol=1e-7, err_msg=key)
  assert sorted(os.listdir(ckpts)) == ["4"]
  assert len(os.listdir(tmp_path / checkpoint_lib.INCOMPLETE_DIR)) == 1  # moved aside, not lost


def test_ctrl_c_is_one_line_saying_where_the_same_command_resumes(
  full, tmp_path, monkeypatch, capsys
):
  """Ctrl-C printed a 40-line KeyboardInterrupt traceback; now one line, status 130, and the
  resumed run ends as the uninterrupted one.
  """
  real, calls = schedule.set_learning_rates, []

  def interrupted_in_epoch_3(state, lrs):
    calls.append(1)
    if len(calls) == 3:
      raise KeyboardInterrupt
    return real(state, lrs)

  monkeypatch.setattr(schedule, "set_learning_rates", interrupted_in_epoch_3)
  status = errors.cli_main(lambda: run(tmp_path, **{"train.max_epochs": 4}))()
  monkeypatch.undo()
  assert status == errors.INTERRUPTED_STATUS
  assert capsys.readouterr().err.splitlines() == [
    f"interrupted: stopped {tmp_path} in epoch 3 of 4; the checkpoint of epoch 2 is kept: the "
    "same command resumes from epoch 3"
  ]
  assert run_lock.holder(str(tmp_path)) == {} and not run_lock.locked(str(tmp_path))
  resumed = run(tmp_path, **{"train.max_epochs": 4})[0]
  assert "at epoch 2" in capsys.readouterr().out
  for key in METRICS:
    np.testing.assert_allclose(resumed[key], full[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_ctrl_c_before_the_first_epoch_is_one_line(tmp_path, monkeypatch, capsys):
  def interrupted(config):
    raise KeyboardInterrupt

  monkeypatch.setattr(loop.build, "build", interrupted)
  assert errors.cli_main(lambda: run(tmp_path))() == errors.INTERRUPTED_STATUS
  assert capsys.readouterr().err.splitlines() == [
    f"interrupted: stopped {tmp_path} before its first epoch here; no checkpoint was saved yet: "
    "the same command starts the run afresh"
  ]


def test_rerunning_a_finished_run_keeps_its_records(tmp_path, capsys):
  """A rerun rewrote results.jsonl with its own few seconds as wall_time_s; now the finished
  run's results stay as written, and a raised max_epochs still trains on.
  """
  first = run(tmp_path, **{"train.max_epochs": 2})[0]
  written = (tmp_path / "results.jsonl").read_bytes()
  out = capsys.readouterr().out
  assert "early-stopped 0/1 replicas" in out  # it said "stopped 0/1"
  assert "none found" not in out and "model.llm_emb_dir='auto' uses the authors' tables" in out
  again = run(tmp_path, **{"train.max_epochs": 2})[0]
  assert (tmp_path / "results.jsonl").read_bytes() == written
  assert "finished at epoch 2 earlier" in capsys.readouterr().out
  assert again["wall_time_s"] == pytest.approx(first["wall_time_s"])
  longer = run(tmp_path, **{"train.max_epochs": 3})[0]
  assert longer["epochs_trained"] == 3 and longer["wall_time_s"] > first["wall_time_s"]
  assert longer["compile_s"] > first["compile_s"]  # both processes' compilations
  (tmp_path / "results.jsonl").write_text("")  # damaged: an IndexError before
  with pytest.raises(
    errors.DataError,
    match=r"results.jsonl: the finished run's results cannot "
    r"be read .*delete the file",
  ):
    run(tmp_path, **{"train.max_epochs": 3})


@pytest.mark.slow  # ~15 s: two runs (the rerun test checks compile_s adding up by default)
def test_wall_time_accumulates_over_resumptions(tmp_path, monkeypatch):
  """After a resume wall_time_s (44 s) was smaller than train_time_s (66 s): it counted the last
  process only. The first process's clock jumps a day inside its first evaluation.
  """
  day, jumped = 86400.0, []
  monkeypatch.setattr(
    timing_lib, "time", types.SimpleNamespace(time=lambda: time.time() + sum(jumped))
  )
  real = loop.results.finalize_split

  def slow_first_evaluation(*args, **kwargs):
    if not jumped:
      jumped.append(day)
    return real(*args, **kwargs)

  monkeypatch.setattr(loop.results, "finalize_split", slow_first_evaluation)
  run_killed_after(tmp_path, 2, monkeypatch, **{"train.max_epochs": 4})  # undoes the patches
  row = run(tmp_path, **{"train.max_epochs": 4})[0]
  assert row["eval_time_s"] > day
  parts = ("compile_s", "train_time_s", "eval_time_s", "checkpoint_time_s")
  assert row["wall_time_s"] >= sum(row[k] for k in parts), {k: row[k] for k in parts}


def _tiny_trees():
  state = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.zeros(2)}
  best = {"w": jnp.ones((2, 3))}
  return state, best


def test_no_complete_checkpoint_is_one_error_naming_the_folder(tmp_path):
  state, best = _tiny_trees()
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(1, state, best, {"tracker": {}})
  ckpt.close()
  shutil.rmtree(tmp_path / "checkpoints" / "1" / "meta")
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  with pytest.raises(errors.RunError, match="delete the folder .*checkpoints") as info:
    ckpt.restore_latest(state, best)
  assert "\n" not in errors.message(info.value)


def test_checkpointer_falls_back_and_restores_values(tmp_path):
  state, best = _tiny_trees()
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=3)
  for epoch in (1, 2, 3):
    ckpt.save(epoch, jax.tree.map(lambda a: a + epoch, state), best, {"tracker": {"e": epoch}})
  ckpt.close()
  shutil.rmtree(tmp_path / "checkpoints" / "3" / "meta")
  for f in glob.glob(str(tmp_path / "checkpoints" / "2" / "state" / "*")):  # a cut-short copy
    if os.path.isdir(f):
      shutil.rmtree(f)
    else:
      os.unlink(f)
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path), keep=3)
  got = ckpt.restore_latest(state, best)
  assert got.epoch == 1 and got.meta == {"tracker": {"e": 1}} and len(got.skipped) == 2
  np.testing.assert_array_equal(got.state["w"], state["w"] + 1)
  assert ckpt.latest_epoch() == 1
  ckpt.save(2, state, best, {"tracker": {}})  # the moved-aside steps can be saved again
  assert ckpt.latest_epoch() == 2


def test_leftover_orbax_tmp_folder_is_cleaned(tmp_path):
  """A save killed midway leaves `<step>.orbax-checkpoint-tmp-*`; max_to_keep never removed it."""
  state, best = _tiny_trees()
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(1, state, best, {"tracker": {}})
  ckpt.close()
  tmp = tmp_path / "checkpoints" / "2.orbax-checkpoint-tmp-1700000000000000"
  shutil.copytree(tmp_path / "checkpoints" / "1", tmp)
  ckpt = checkpoint_lib.Checkpointer(str(tmp_path))
  ckpt.save(2, state, best, {"tracker": {}})
  ckpt.save(3, state, best, {"tracker": {}})
  ckpt.close()
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["3"]


def test_resume_purges_replayed_epochs_from_tensorboard(tmp_path, monkeypatch):
  """Epoch 3 was written to TensorBoard but not checkpointed (checkpoint_every=2): the resumed
  run replays it, and TensorBoard must not show epoch 3 twice.
  """
  overrides = {"train.max_epochs": 4, "train.checkpoint_every": 2}
  run_killed_after(tmp_path, 3, monkeypatch, **overrides)
  run(tmp_path, **overrides)
  points = tb_points(str(tmp_path / "tb"))
  tag = "train/loss/r0"
  assert sorted(s for t, s in points if t == tag) == [1, 2, 3, 4]
  assert len(points) == len(set(points))


@pytest.mark.slow  # ~30 s: two runs
def test_steps_per_s_counts_only_training_time(tmp_path, monkeypatch):
  """The restart's own work (here a slow first learning-rate update, as its compilation on a cold
  cache) is no training time: train_time_s and steps_per_s only count the epochs' programs.
  """
  run_killed_after(tmp_path, 2, monkeypatch, **{"train.max_epochs": 4})
  real = schedule.set_learning_rates
  calls = []
  # The trainer's clock jumps a day during that update: no machine's speed decides the outcome.
  day, jumped = 86400.0, []
  clock = types.SimpleNamespace(time=lambda: time.time() + sum(jumped))

  def slow_first(state, lrs):
    if not calls:
      jumped.append(day)
    calls.append(1)
    return real(state, lrs)

  monkeypatch.setattr(schedule, "set_learning_rates", slow_first)
  monkeypatch.setattr(timing_lib, "time", clock)
  row = run(tmp_path, **{"train.max_epochs": 4})[0]
  assert calls == [1, 1] and jumped == [day]
  assert row["train_time_s"] < day
  assert row["wall_time_s"] > day  # the jump was seen, outside the epochs
  assert row["steps_per_s"] == pytest.approx(4 * 5 / row["train_time_s"])


# ---------------------------------------------------------------------------------------------
# Fault 2: unwritable places give one error naming the path (root ignores file modes, so the
# paths run through a regular file).


@pytest.fixture
def through_file(tmp_path):
  blocker = tmp_path / "file.txt"
  blocker.write_text("not a folder")
  return blocker


def test_unwritable_workdir_is_a_config_error(through_file):
  workdir = through_file / "workdir"
  with pytest.raises(errors.RunError, match=f"cannot write .*--workdir.* to {workdir}"):
    run(workdir, **{"train.max_epochs": 1})


def test_unwritable_workdir_cli_prints_one_error_line(through_file):
  workdir = through_file / "workdir"
  proc = subprocess.run(
    [sys.executable, "-m", "orthoalign.main", "--config=configs/tiny.py", f"--workdir={workdir}"],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=300,
    env={**os.environ, "ORTHOALIGN_COMPILE_CACHE": "off"},
  )
  assert proc.returncode == 1, proc.stderr
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert (
    len(lines) == 1 and lines[0].startswith("error: cannot write") and str(workdir) in lines[0]
  ), proc.stderr


def test_unwritable_checkpoint_folder_is_a_config_error(tmp_path):
  (tmp_path / "checkpoints").write_text("a file where the folder should be")
  with pytest.raises(errors.RunError, match=f"cannot write checkpoints to {tmp_path}/checkpoints"):
    checkpoint_lib.Checkpointer(str(tmp_path))


def test_unwritable_dataset_cache_is_a_data_error(through_file):
  out_dir = through_file / "cache" / "abxi-x"
  with pytest.raises(
    errors.DataError, match=f"cannot write the dataset cache .*data.cache_dir.* to {out_dir}"
  ):
    store.cached(
      out_dir,
      sources=[],
      recipe="r",
      params={},
      build=lambda: pytest.fail("the folder is checked before the build"),
    )
  from orthoalign.datasets import synthetic

  ds = synthetic.generate(synthetic.from_config_dict(tiny.get_config().data.synthetic))
  with pytest.raises(errors.DataError, match=f"cannot write the dataset store to {out_dir}"):
    store.save_dataset(ds, out_dir)


def test_unwritable_compile_cache_is_a_run_error(through_file, monkeypatch):
  fake_jax = types.SimpleNamespace(config=types.SimpleNamespace(jax_compilation_cache_dir=None))
  monkeypatch.setattr(compile_cache, "jax", fake_jax)
  monkeypatch.setenv(compile_cache.ENV, str(through_file / "jax"))
  with pytest.raises(
    errors.RunError,
    match=f"JAX compilation cache to {through_file}/jax.*{compile_cache.ENV}=off",
  ):
    compile_cache.enable()


# ---------------------------------------------------------------------------------------------
# Fault 3: killed at random points, again and again.


def _cli(workdir, env):
  return subprocess.Popen(
    [
      sys.executable,
      "-m",
      "orthoalign.main",
      "--config=configs/tiny.py",
      f"--workdir={workdir}",
      "--config.train.checkpoint_every=1",
    ],  # resume from every epoch, not only the last
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
  )


def _results(workdir):
  with open(os.path.join(workdir, "results.jsonl")) as f:
    rows = [json.loads(line) for line in f]
  for row in rows:
    for key in TIMING_KEYS + ("run",):
      row.pop(key)
  return rows


@pytest.mark.slow
def test_killed_ten_times_at_random_points_ends_as_uninterrupted(tmp_path):
  # The suite's persistent compilation cache (conftest.py), shared by all the subprocesses.
  env = {
    **os.environ,
    "ORTHOALIGN_COMPILE_CACHE": jax.config.jax_compilation_cache_dir,
    "ORTHOALIGN_CACHE": str(tmp_path / "cache"),
  }
  t0 = time.time()
  ref = _cli(tmp_path / "ref", env)
  out, _ = ref.communicate(timeout=600)
  assert ref.returncode == 0, out
  duration = time.time() - t0  # with a cold compilation cache: an upper bound
  print(f"\nreference run {duration:.0f}s", flush=True)
  t_ref = time.time()
  rng = random.Random(0)
  workdir = tmp_path / "killed"
  log = []
  for i in range(10):
    proc = _cli(workdir, env)
    # Half the kills anywhere in the process's life, half in its training phase (just after the
    # compilation line or an epoch's line), where checkpoints, history and events are written.
    t_start = time.time()
    if i % 2:
      anchor = rng.choice(("compiled in", "epoch 1/", "epoch 2/", "epoch 3/"))
      for line in proc.stdout:
        if line.startswith(anchor):
          break
      delay = rng.uniform(0.0, 1.0)
    else:
      delay = rng.uniform(0.0, min(duration, 25.0))
    try:
      proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
      proc.send_signal(signal.SIGKILL)
      proc.wait()
    proc.stdout.close()
    log.append((i, round(time.time() - t_start, 1), proc.returncode))
    print(f"kill {i}: alive {log[-1][1]}s, status {proc.returncode}", flush=True)
  t_kills = time.time() - t_ref
  final = _cli(workdir, env)
  out, _ = final.communicate(timeout=600)
  assert final.returncode == 0, out
  print(
    f"\nreference {duration:.0f}s, 10 kills {t_kills:.0f}s, "
    f"final {time.time() - t_ref - t_kills:.0f}s;"
    f" (kill, seconds alive, status): {log}"
  )
  got, want = _results(workdir), _results(tmp_path / "ref")
  assert got == want
  ckpts = sorted(os.listdir(workdir / "checkpoints"))
  assert ckpts == ["4"], ckpts
