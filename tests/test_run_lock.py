"""The run folder's lock: a second command is refused in one line naming the holder, a dead holder
is taken over with a warning, and the grid runner hands its lock to the run it starts.
"""

import os
import socket
import subprocess
import sys
import textwrap

from conftest import tiny_run
import pytest

from orthoalign import errors
from orthoalign import fileio
from orthoalign import run_lock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code, **kwargs):
  return subprocess.run(
    [sys.executable, "-c", textwrap.dedent(code)],
    cwd=ROOT,
    text=True,
    capture_output=True,
    timeout=120,
    **kwargs,
  )


def test_a_second_acquire_names_the_holder(tmp_path):
  with run_lock.acquire(str(tmp_path)):
    with pytest.raises(errors.RunInUse) as info:
      run_lock.acquire(str(tmp_path))
    assert run_lock.locked(str(tmp_path))
  text = errors.message(info.value)
  assert "\n" not in text and f"process {os.getpid()} on host {socket.gethostname()}" in text
  assert "in use" in text and "another --workdir" in text
  assert not run_lock.locked(str(tmp_path))
  assert run_lock.holder(str(tmp_path)) == {}  # released: no record left behind


def test_a_dead_holder_is_taken_over_with_a_warning(tmp_path):
  """A holder killed without releasing (os._exit) leaves its record; the kernel dropped the
  flock, so the next command takes the run and says whose it was.
  """
  proc = _python(f"""
      import os
      from orthoalign import run_lock
      run_lock.acquire({str(tmp_path)!r})
      print(os.getpid(), flush=True)
      os._exit(0)""")
  dead = int(proc.stdout.split()[0])
  assert run_lock.holder(str(tmp_path))["pid"] == dead
  warnings = []
  with run_lock.acquire(str(tmp_path), warn=warnings.append):
    assert run_lock.holder(str(tmp_path))["pid"] == os.getpid()
  assert len(warnings) == 1 and f"process {dead}" in warnings[0] and "taking over" in warnings[0]


def test_without_flock_the_record_decides(tmp_path, monkeypatch):
  """On a file system without flock a live process of this host keeps the run; a dead one's
  record is taken over.
  """
  monkeypatch.setattr(run_lock, "_flock", lambda handle: None)
  lock = run_lock.acquire(str(tmp_path))
  with pytest.raises(errors.RunInUse, match=f"process {os.getpid()}"):
    run_lock.acquire(str(tmp_path))
  lock.record(pid=2**22 + 12345)  # beyond any pid_max: no such process
  warnings = []
  run_lock.acquire(str(tmp_path), warn=warnings.append).release()
  assert warnings and "process 4206649" in warnings[0]


def test_a_handed_over_lock_is_adopted_and_kept_until_the_child_ends(tmp_path):
  parent = run_lock.try_acquire(str(tmp_path))
  fd = parent.fileno()
  child = subprocess.Popen(
    [
      sys.executable,
      "-c",
      textwrap.dedent(f"""
          import sys
          from orthoalign import run_lock
          lock = run_lock.acquire({str(tmp_path)!r})
          print("adopted" if lock.adopted else "taken", flush=True)
          sys.stdin.read()                                  # until the test closes stdin
          lock.release()"""),
    ],
    cwd=ROOT,
    env={**os.environ, run_lock.ENV_FD: str(fd)},
    pass_fds=(fd,),
    text=True,
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
  )
  try:
    assert child.stdout.readline().strip() == "adopted"
    assert run_lock.holder(str(tmp_path))["pid"] == child.pid
    parent.release()  # the runner died: the child still holds it
    with pytest.raises(errors.RunInUse, match=f"process {child.pid}"):
      run_lock.acquire(str(tmp_path))
  finally:
    child.communicate("", timeout=60)
  assert child.returncode == 0, child.stderr
  run_lock.acquire(str(tmp_path)).release()


def test_a_descriptor_of_another_run_is_not_adopted(tmp_path, monkeypatch):
  other = run_lock.acquire(str(tmp_path / "other"))
  monkeypatch.setenv(run_lock.ENV_FD, str(other.fileno()))
  with run_lock.acquire(str(tmp_path / "mine")) as mine:
    assert not mine.adopted
  other.release()


def test_training_refuses_a_locked_workdir_before_writing(tmp_path):
  with run_lock.acquire(str(tmp_path)):
    with pytest.raises(errors.RunInUse, match=f"process {os.getpid()}"):
      tiny_run(tmp_path, **{"train.max_epochs": 1})
  assert sorted(os.listdir(tmp_path)) == [run_lock.LOCK]  # no config.json, no checkpoints


def test_cli_on_a_locked_workdir_is_one_line_naming_the_holder(tmp_path):
  with run_lock.acquire(str(tmp_path)):
    proc = subprocess.run(
      [
        sys.executable,
        "-m",
        "orthoalign.main",
        "--config=configs/tiny.py",
        f"--workdir={tmp_path}",
      ],
      cwd=ROOT,
      capture_output=True,
      text=True,
      timeout=300,
      env={**os.environ, "ORTHOALIGN_COMPILE_CACHE": "off"},
    )
  lines = [l for l in proc.stderr.splitlines() if l.strip()]
  assert proc.returncode == 1 and len(lines) == 1, proc.stderr
  assert lines[0].startswith(f"error: {tmp_path} is in use by process {os.getpid()}"), lines


def test_evaluate_refuses_a_run_in_use(tmp_path):
  from conftest import tiny_config

  from orthoalign import evaluate

  fileio.write_json(tmp_path / "config.json", tiny_config().to_dict())
  with run_lock.acquire(str(tmp_path)):
    with pytest.raises(errors.RunInUse, match=f"process {os.getpid()}"):
      evaluate.evaluate(str(tmp_path))


@pytest.mark.slow  # ~40 s each: a real run, stopped by SIGINT or SIGTERM (a cluster preempting)
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_to_a_real_run_is_one_line_and_status_130(tmp_path, stop):
  import signal

  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "orthoalign.main",
      "--config=configs/tiny.py",
      f"--workdir={tmp_path}",
      "--config.train.max_epochs=50",
      "--config.train.checkpoint_every=1",
    ],
    cwd=ROOT,
    text=True,
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    # A test process started in the background ignores SIGINT, and so would its child.
    preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
  )
  for line in proc.stdout:
    if line.startswith("epoch 2/"):
      proc.send_signal(getattr(signal, stop))
      break
  out, err = proc.communicate(timeout=120)
  assert proc.returncode == 130, err
  lines = [l for l in err.splitlines() if l.strip() and not l.startswith(("loaded", "building"))]
  assert len(lines) == 1 and lines[0].startswith(f"interrupted: stopped {tmp_path} in epoch "), err
  assert "the same command resumes from epoch" in lines[0]
  assert run_lock.holder(str(tmp_path)) == {}
