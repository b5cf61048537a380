"""The grid runner: local pool (fake and real trainer), locks, Ctrl-C, status, SLURM (submitit)."""

from __future__ import annotations

import dataclasses
import glob
import io
import json
import os
import re
import signal
import stat
import sys
import threading
import time

import pytest

from orthoalign import errors
from orthoalign import grid as grid_cli
from orthoalign import run_lock
from orthoalign.experiments import expand
from orthoalign.experiments import job
from orthoalign.experiments import local
from orthoalign.experiments import status as status_lib

# submitit binds log handlers to sys.stdout/stderr at import: under capsys, streams closed later.
os.environ.setdefault("SUBMITIT_LOG_LEVEL", "NOCONFIG")
try:
  import submitit
except ImportError:
  submitit = None
needs_submitit = pytest.mark.skipif(submitit is None, reason="submitit is not installed")

FAKE = [sys.executable, "tests/grids/fake_main.py"]
TINY = "tests/grids/tiny_grid.py"


@pytest.fixture
def grid3(tmp_path):
  """A grid of three runs (width=16/32/64) and its root; trained with the fake trainer."""
  path = tmp_path / "g.py"
  path.write_text(
    "from configs import tiny\n\ndef get_config():\n  return tiny.get_config()\n\n"
    "def get_grid():\n  return {'model.width': [16, 32, 64], 'seed': [0, 1]}\n"
  )
  points = expand.expand(str(path))
  root = str(tmp_path / "runs")
  grid_cli.write_grid_json(points, str(path), root, os.getcwd())
  return points, root, str(path)


def calls(root: str, name: str) -> int:
  path = os.path.join(root, name, "calls.txt")
  return len(open(path).readlines()) if os.path.exists(path) else 0


def test_failure_is_isolated_and_rerun_skips_finished(grid3, monkeypatch):
  points, root, path = grid3
  monkeypatch.setenv("FAKE_FAIL", "width=32")
  out = io.StringIO()
  outcomes = local.run(points, root, path, parallel=2, entry=FAKE, out=out, poll_s=0.02, devices=[])
  assert [o.status for o in outcomes] == ["done", "failed", "done"]
  log = os.path.join(root, "width=32", "log.txt")
  text = open(log).read()
  assert text.startswith("\n=== [grid] attempt ") and "error: fake failure" in text
  assert "exit status 3" in text and f"log: {log}" in out.getvalue()
  # The run adopted the runner's lock (a second lock would have failed it), which the runner freed.
  assert open(os.path.join(root, "width=16", "lock.txt")).read().startswith("adopted")
  assert not run_lock.locked(os.path.join(root, "width=16"))
  lines = [l for l in out.getvalue().splitlines() if l.startswith("[grid] ") and " done, " in l]
  assert all(
    re.fullmatch(r"\[grid\] \d/3 done, \d running, \d failed, \d pending(, ETA .+)?", l)
    for l in lines
  ), lines
  assert lines[-1] == "[grid] 2/3 done, 0 running, 1 failed, 0 pending"
  table = status_lib.summary(local.summary_rows(outcomes))
  assert re.search(r"width=16\s+done\s+\S+\s+-\s+0\.3750", table)  # mean over 2 replicas
  assert re.search(r"width=32\s+failed\s+\S+\s+-\s+" + re.escape(log), table)
  assert [r["status"] for r in status_lib.statuses(root)] == ["done", "failed", "done"]

  monkeypatch.delenv("FAKE_FAIL")
  outcomes = local.run(points, root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  assert [o.status for o in outcomes] == ["skipped", "done", "skipped"]
  assert [calls(root, p.name) for p in points] == [1, 2, 1]  # finished runs did not train again
  assert open(log).read().count("=== [grid] attempt") == 2


def test_cli_exit_status_and_summary(grid3, monkeypatch, capsys):
  from orthoalign.experiments import commands

  points, root, path = grid3
  monkeypatch.setattr(commands, "trainer", lambda: FAKE)
  monkeypatch.setenv("FAKE_FAIL", "width=64")
  assert grid_cli.run([f"--grid={path}", f"--root={root}", "--parallel=3"]) == 1
  out = capsys.readouterr().out
  assert re.search(r"width=64\s+failed\s+\S+\s+.*width=64/log\.txt", out)
  assert grid_cli.run([f"--grid={path}", f"--root={root}", "--only=16"]) == 0
  assert "width=16  done (earlier)" in capsys.readouterr().out


def test_children_get_the_training_command(grid3):
  points, root, path = grid3
  local.run(points[:1], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  argv = open(os.path.join(root, "width=16", "calls.txt")).read().split()
  assert argv == [
    f"--config={path}",
    f"--workdir={root}/width=16",
    "--config.model.width=16",
    "--config.sweep.seeds=(0,",
    "1)",
  ]


def test_a_locked_run_is_not_trained(grid3):
  points, root, path = grid3
  holder = run_lock.acquire(os.path.join(root, "width=32"))  # "another runner"
  try:
    assert status_lib.run_status(os.path.join(root, "width=32")) == "running"
    outcomes = local.run(
      points, root, path, parallel=3, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[]
    )
  finally:
    holder.release()
  assert [o.status for o in outcomes] == ["done", "running elsewhere", "done"]
  assert calls(root, "width=32") == 0
  assert status_lib.run_status(os.path.join(root, "width=32")) == "pending"


def test_a_finished_run_with_another_config_is_a_conflict(grid3):
  points, root, path = grid3
  for point, hidden in zip(points[:2], (16, 99)):
    workdir = os.path.join(root, point.name)
    os.makedirs(workdir)
    config = point.config.to_dict()
    config["model"]["width"] = hidden
    with open(os.path.join(workdir, "config.json"), "w") as f:
      json.dump(config, f)
    open(os.path.join(workdir, "results.jsonl"), "w").close()
  out = io.StringIO()
  outcomes = local.run(points[:2], root, path, entry=FAKE, out=out, poll_s=0.02, devices=[])
  assert [o.status for o in outcomes] == ["skipped", "conflict"]
  assert "holds a finished run with another config (keys: model.width)" in out.getvalue()


@pytest.fixture
def python_sigint():
  """Python's Ctrl-C handler for one test: a process started in the background (`nohup pytest
  ... &`, some CI runners) ignores SIGINT, which would let the children sleep on.
  """
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  yield
  signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_children_and_says_how_to_resume(grid3, monkeypatch, python_sigint):
  del python_sigint
  points, root, path = grid3
  monkeypatch.setenv("FAKE_SLEEP", "60")

  def interrupt():  # Ctrl-C once both children have started
    deadline = time.time() + 30
    while time.time() < deadline and calls(root, points[0].name) + calls(root, points[1].name) < 2:
      time.sleep(0.02)
    os.kill(os.getpid(), signal.SIGINT)

  threading.Thread(target=interrupt, daemon=True).start()
  out = io.StringIO()
  with pytest.raises(errors.Interrupted) as info:
    local.run(points, root, path, parallel=2, entry=FAKE, out=out, poll_s=0.02, devices=[])
  # One `interrupted:` line on stderr through errors.cli_main (it went to stdout before).
  assert str(info.value).startswith(
    "stopped 2 run(s) of the grid"
  ) and "Re-run the same command" in str(info.value)
  for p in points[:2]:
    with open(os.path.join(root, p.name, job.ATTEMPT)) as f:
      attempt = json.load(f)
    assert attempt["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):
      os.kill(attempt["pid"], 0)
    assert status_lib.run_status(os.path.join(root, p.name)) == "interrupted"
    # Stopped, not waited for: a child that slept its 60 s would have written its results.
    assert not os.path.exists(os.path.join(root, p.name, "results.jsonl"))
  assert status_lib.run_status(os.path.join(root, points[2].name)) == "pending"


def test_gpu_detection_and_one_device_per_concurrent_run(grid3, tmp_path, monkeypatch):
  assert local.gpus({"CUDA_VISIBLE_DEVICES": "0, 3"}) == ["0", "3"]
  assert local.gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  monkeypatch.setenv("PATH", str(bin_dir))
  assert local.gpus({}) == []  # no nvidia-smi
  smi = bin_dir / "nvidia-smi"
  smi.write_text("#!/bin/sh\necho 'GPU 0: H200 (UUID: a)'\necho 'GPU 1: H200 (UUID: b)'\n")
  smi.chmod(smi.stat().st_mode | stat.S_IEXEC)
  assert local.gpus({}) == ["0", "1"]
  assert local.device_env(0, 1, ["0", "1"]) == {}  # one run keeps all devices
  assert local.device_env(1, 2, ["0", "1"]) == {"CUDA_VISIBLE_DEVICES": "1"}
  assert local.device_env(2, 3, ["0", "1"]) == {
    "CUDA_VISIBLE_DEVICES": "0",
    "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
  }
  monkeypatch.undo()
  points, root, path = grid3
  local.run(
    points[:2],
    root,
    path,
    parallel=2,
    entry=FAKE,
    out=io.StringIO(),
    poll_s=0.02,
    devices=["5", "7"],
  )
  headers = [
    open(os.path.join(root, p.name, "log.txt")).readline()
    + open(os.path.join(root, p.name, "log.txt")).readlines()[1]
    for p in points[:2]
  ]
  assert sorted(re.search(r"CUDA_VISIBLE_DEVICES=(\d)", h).group(1) for h in headers) == ["5", "7"]


@pytest.mark.smoke
def test_load_grid_lists_results_and_unfinished_runs(grid3, monkeypatch):
  points, root, path = grid3
  monkeypatch.setenv("FAKE_FAIL", "width=64")
  local.run(points[1:], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  from orthoalign.analysis import results  # pandas: the analysis extra, not the runner's

  grid = results.load_grid(root)
  df = grid.df
  assert sorted(set(df["grid.run"])) == ["width=32"] and len(df) == 2
  assert list(df["axis.width"]) == ["32", "32"]
  assert grid.missing == [
    ("width=16", "not started (no workdir)"),
    ("width=64", "failed (no results.jsonl)"),
  ]
  assert grid.missing_runs() == ["width=16", "width=64"]
  assert [r["name"] for r in status_lib.unfinished(root)] == ["width=16", "width=64"]


# --- SLURM (submitit) without a cluster ---------------------------------------------------------


@needs_submitit
def test_slurm_array_gets_the_resources(grid3, tmp_path, monkeypatch, capsys):
  points, root, path = grid3
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  for name, body in (("srun", "exit 0"), ("sbatch", "echo 'Submitted batch job 4242'")):
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)
  monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
  os.makedirs(os.path.join(root, "width=16"))
  open(os.path.join(root, "width=16", "results.jsonl"), "w").close()  # finished: not sent
  assert (
    grid_cli.run(
      [
        f"--grid={path}",
        f"--root={root}",
        "--executor=slurm",
        "--slurm-partition=gpu",
        "--slurm-time-min=90",
        "--slurm-gpus-per-node=2",
        "--slurm-cpus-per-task=8",
        "--slurm-mem-gb=40",
        "--slurm-array-parallelism=1",
        "--slurm-account=acct",
        "--slurm-qos=high",
      ]
    )
    == 0
  )
  out = capsys.readouterr().out
  assert "submitting 2" in out and "width=32: job 4242_0" in out and "width=64: job 4242_1" in out
  (sbatch,) = glob.glob(os.path.join(root, "slurm", "**", "*submission*.sh"), recursive=True)
  text = open(sbatch).read()
  for line in (
    "--partition=gpu",
    "--time=90",
    "--gpus-per-node=2",
    "--cpus-per-task=8",
    "--mem=40GB",
    "--array=0-1%1",
    "--account=acct",
    "--qos=high",
    "--job-name=runs",
    "--signal=USR2@",
  ):
    assert f"#SBATCH {line}" in text, line


@needs_submitit
def test_slurm_without_srun_is_a_clear_error(grid3, tmp_path, monkeypatch):
  points, root, path = grid3
  monkeypatch.setenv("PATH", str(tmp_path))
  with pytest.raises(grid_cli.errors.RunError, match=r"--executor=slurm: .*srun"):
    grid_cli.run([f"--grid={path}", f"--root={root}", "--executor=slurm"])


def test_slurm_without_submitit_is_a_clear_error(grid3, monkeypatch):
  points, root, path = grid3
  monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit fails
  monkeypatch.delitem(sys.modules, "orthoalign.experiments.slurm", raising=False)
  monkeypatch.delattr(sys.modules["orthoalign.experiments"], "slurm", raising=False)
  with pytest.raises(grid_cli.errors.DependencyError, match="needs submitit.*pip install submitit"):
    grid_cli.run([f"--grid={path}", f"--root={root}", "--executor=slurm"])


@needs_submitit
def test_slurm_job_requeues_itself_and_runs_like_local(grid3):
  from orthoalign.experiments import commands
  from orthoalign.experiments import slurm

  points, root, path = grid3
  workdir = os.path.join(root, points[0].name)
  train = slurm.TrainJob(
    points[0].name, workdir, commands.train_argv(points[0], path, root, FAKE), os.getcwd()
  )
  delayed = train.checkpoint()
  assert isinstance(delayed, submitit.helpers.DelayedSubmission)
  assert (delayed.function.argv, delayed.function.workdir, delayed.function.cwd) == (
    train.argv,
    train.workdir,
    train.cwd,
  )
  ex = slurm.executor(slurm.folder(root), slurm.Resources(), "test", cluster="debug")
  (submitted,) = slurm.submit(ex, [train])
  assert submitted.result() == "done" and job.finished(workdir)
  assert slurm.submit(ex, [train])[0].result() == "skipped" and calls(root, points[0].name) == 1


# --- the real trainer ----------------------------------------------------------------------------


@pytest.fixture
def compile_cache(request, monkeypatch):
  """Children share a persistent JAX compilation cache under pytest's cache: warm runs are fast."""
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(request.config.cache.mkdir("grid-jax-cache")))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def test_real_main_parses_the_command_and_its_failure_is_reported(tmp_path):
  root = str(tmp_path / "tiny")
  (point,) = expand.expand(TINY)[:1]
  # A config error that expansion would catch, smuggled past it: main exits non-zero (after
  # parsing every flag of the command) before compiling anything.
  bad = dataclasses.replace(point, name="bad", overrides={**point.overrides, "gca.act": "bogus"})
  (outcome,) = local.run([bad], root, TINY, out=io.StringIO(), poll_s=0.1, devices=[])
  assert outcome.status == "failed"
  log = open(os.path.join(root, "bad", "log.txt")).read()
  assert "error: config key gca.act='bogus' is invalid" in log and "Traceback" not in log


@pytest.mark.slow
def test_real_grid_trains_skips_and_resumes(tmp_path, compile_cache, capsys):
  root = str(tmp_path / "tiny")
  points = expand.expand(TINY)
  assert [p.name for p in points] == ["candidate_seed=c0", "candidate_seed=c1"]
  assert grid_cli.run([f"--grid={TINY}", f"--root={root}", "--parallel=2"]) == 0
  assert capsys.readouterr().out.count("[grid] 2/2 done, 0 running, 0 failed, 0 pending") == 1
  from orthoalign.analysis import results  # pandas: the analysis extra, not the runner's

  df = results.load_grid(root).df
  assert len(df) == 4 and sorted(df["axis.candidate_seed"]) == ["c0", "c0", "c1", "c1"]
  assert sorted(df["seed"]) == [0, 0, 1, 1] and df["test/sampled/all/ndcg@10"].notna().all()

  # A re-run trains nothing.
  assert grid_cli.run([f"--grid={TINY}", f"--root={root}"]) == 0
  assert capsys.readouterr().out.count("done (earlier)") == 2

  # Killed after its last checkpoint, before results.jsonl: re-running the grid completes it.
  os.remove(os.path.join(root, "candidate_seed=c0", "results.jsonl"))
  assert status_lib.run_status(os.path.join(root, "candidate_seed=c0")) == "interrupted"
  assert grid_cli.run([f"--grid={TINY}", f"--root={root}"]) == 0
  log = open(os.path.join(root, "candidate_seed=c0", "log.txt")).read()
  assert log.count("=== [grid] attempt") == 2 and "Resumed from" in log
  assert job.finished(os.path.join(root, "candidate_seed=c0"))

  if submitit is not None:  # the SLURM callable, run in-process by submitit
    from orthoalign.experiments import commands
    from orthoalign.experiments import slurm

    workdir = os.path.join(root, "candidate_seed=c1")
    os.remove(os.path.join(workdir, "results.jsonl"))
    train = slurm.TrainJob(
      points[1].name, workdir, commands.train_argv(points[1], TINY, root), os.getcwd()
    )
    ex = slurm.executor(slurm.folder(root), slurm.Resources(), "tiny", cluster="debug")
    assert slurm.submit(ex, [train])[0].result() == "done" and job.finished(workdir)
    assert "Resumed from" in open(os.path.join(workdir, "log.txt")).read()


def _columns(table: str) -> dict[str, list[str]]:
  """status.summary text -> {run: [status, wall, compile, metric or log]} (columns are 2+ spaces
  apart; the compile-share line below the table is left out).
  """
  lines = [l for l in table.splitlines()[1:] if not l.startswith("compile share:")]
  return {c[0]: c[1:] for c in (re.split(r"\s{2,}", l.strip()) for l in lines)}


def test_status_names_only_log_files_that_exist(grid3, monkeypatch):
  points, root, path = grid3
  monkeypatch.setenv("FAKE_FAIL", "width=32")
  local.run(points[1:2], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  os.makedirs(os.path.join(root, "width=64"))  # a workdir, but no attempt yet
  rows = status_lib.statuses(root)
  assert [r["status"] for r in rows] == ["pending", "failed", "pending"]
  assert [r["log"] for r in rows] == [None, os.path.join(root, "width=32", "log.txt"), None]
  cols = _columns(status_lib.summary(rows))
  assert cols["width=32"][3] == os.path.join(root, "width=32", "log.txt")
  for name in ("width=16", "width=64"):
    assert cols[name][3] == "-" and "log.txt" not in " ".join(cols[name])


def test_status_and_runner_report_the_same_wall_time(grid3):
  points, root, path = grid3
  outcomes = local.run(
    points[:2], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[]
  )
  for p in points[:2]:  # the trainer's own wall time, unlike the attempt's
    results_path = os.path.join(root, p.name, "results.jsonl")
    rows = [dict(json.loads(l), wall_time_s=500.0) for l in open(results_path)]
    open(results_path, "w").write("".join(json.dumps(r) + "\n" for r in rows))
  runner = status_lib.summary(local.summary_rows(outcomes))
  status = status_lib.summary(status_lib.statuses(root))
  header = re.split(r"\s{2,}", runner.splitlines()[0])
  assert header[2] == "wall (last attempt)"
  assert re.split(r"\s{2,}", status.splitlines()[0]) == header
  attempt = json.load(open(os.path.join(root, "width=16", job.ATTEMPT)))
  expected = status_lib.format_duration(attempt["wall_s"])
  assert _columns(runner)["width=16"][1] == _columns(status)["width=16"][1] == expected
  assert _columns(status)["width=64"][1] == "-"  # never attempted
  # Re-run: the runner's "done (earlier)" rows give the same number as --status.
  again = local.run(points[:2], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  runner = _columns(status_lib.summary(local.summary_rows(again)))
  assert runner["width=16"][:2] == ["done (earlier)", expected]
  assert runner["width=32"][1] == _columns(status)["width=32"][1]


def test_the_summary_gives_each_program_s_compile_time_and_the_grid_s_compile_share(grid3):
  points, root, path = grid3
  local.run(points[:2], root, path, entry=FAKE, out=io.StringIO(), poll_s=0.02, devices=[])
  times = {
    "compile_s": 15.0,
    "compile/train_epoch_s": 12.4,
    "compile/evaluate_s": 3.3,
    "wall_time_s": 60.0,
  }
  path16 = os.path.join(root, "width=16", "results.jsonl")
  rows = [dict(json.loads(l), **times) for l in open(path16)]
  open(path16, "w").write("".join(json.dumps(r) + "\n" for r in rows))
  # width=32 was written before per-program times (compile_s only); width=64 never ran.
  path32 = os.path.join(root, "width=32", "results.jsonl")
  rows = [dict(json.loads(l), compile_s=5.0, wall_time_s=40.0) for l in open(path32)]
  open(path32, "w").write("".join(json.dumps(r) + "\n" for r in rows))
  text = status_lib.summary(status_lib.statuses(root))
  cols = _columns(text)
  assert re.split(r"\s{2,}", text.splitlines()[0])[3] == "compile (train + eval)"
  assert cols["width=16"][2] == "12.4 + 3.3 s"
  assert cols["width=32"][2] == "5.0 s"
  assert cols["width=64"][2] == "-"
  share = "compile share: 20s compiling of 1m40s in the finished runs (20%)"
  assert text.splitlines()[-1] == share
