"""One training attempt of one run: workdir lock, log file, child process, attempt record.

Shared by the local pool and the SLURM callable, so both train through the same code path. Files in
`<root>/<name>/` besides what orthoalign.main writes:
  .lock         the run's lock (orthoalign/run_lock.py), taken here and handed to the child, so
                two runners, or a runner and a hand-started command, never train the same run.
  log.txt       the child's stdout and stderr, appended, with a header line per attempt.
  attempt.json  the latest attempt: status (running/done/failed/interrupted), return code, times.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import os
import shlex
import signal
import socket
import subprocess
import time
from typing import IO

from orthoalign import fileio
from orthoalign import run_lock

RESULTS = "results.jsonl"
LOG = "log.txt"
ATTEMPT = "attempt.json"


def finished(workdir: str) -> bool:
  """orthoalign.main writes results.jsonl last (atomically): its presence means the run finished."""
  return os.path.isfile(os.path.join(workdir, RESULTS))


class Attempt:
  """Trains one run once: `start()`, then `poll()` until it returns the exit status.

  Args:
    workdir: the run's folder (`--workdir` of argv).
    argv: the training command.
    cwd: where to run it (the grid file's paths are relative to it).
    env: extra environment variables for the child (e.g. CUDA_VISIBLE_DEVICES).
  """

  def __init__(
    self, workdir: str, argv: Sequence[str], cwd: str, env: Mapping[str, str] | None = None
  ):
    self.workdir, self.argv, self.cwd, self.env = workdir, list(argv), cwd, dict(env or {})
    self.log_path = os.path.join(workdir, LOG)
    self.proc: subprocess.Popen[bytes] | None = None
    self.started = 0.0
    self.wall_s = 0.0
    self.interrupted = False  # stopped by us (Ctrl-C, preemption), not failed
    self._lock: run_lock.RunLock | None = None
    self._log: IO[bytes] | None = None

  def start(self) -> str:
    """Returns "started", "done" (finished already) or "running elsewhere" (locked)."""
    self._lock = run_lock.try_acquire(self.workdir)
    if self._lock is None:
      return "running elsewhere"
    if finished(self.workdir):  # another runner may have finished it since we looked
      self._release()
      return "done"
    self.started = time.time()
    self._log = open(self.log_path, "ab")
    env_note = " ".join(f"{k}={v}" for k, v in self.env.items())
    self._log.write(
      f"\n=== [grid] attempt {time.strftime('%Y-%m-%d %H:%M:%S')} on "
      f"{socket.gethostname()} {env_note}: {shlex.join(self.argv)}\n".encode()
    )
    self._log.flush()
    # A new session: Ctrl-C reaches only the runner, which then stops the children itself. The
    # child inherits the locked descriptor and adopts it: the run is never unlocked in between.
    fd = self._lock.fileno()
    self.proc = subprocess.Popen(
      self.argv,
      cwd=self.cwd,
      env={**os.environ, **self.env, run_lock.ENV_FD: str(fd)},
      stdout=self._log,
      stderr=subprocess.STDOUT,
      start_new_session=True,
      pass_fds=(fd,),
    )
    self._lock.record(shlex.join(self.argv), pid=self.proc.pid)
    self._record("running")
    return "started"

  def poll(self) -> int | None:
    """The exit status once the child ended (the attempt is then recorded and unlocked)."""
    rc = self.proc.poll()
    if rc is not None and self._lock is not None:
      self._end(rc)
    return rc

  def wait(self) -> int:
    self.proc.wait()
    return self.poll()

  def terminate(self) -> None:
    """Asks the child (and its process group) to end: SIGTERM."""
    if self.proc is not None and self.proc.poll() is None:
      self.interrupted = True
      os.killpg(self.proc.pid, signal.SIGTERM)

  def stop(self, grace_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; the run resumes from its last checkpoint next time."""
    if self.proc is None or self._lock is None:
      return  # not started, or already ended and recorded
    self.terminate()
    try:
      self.proc.wait(grace_s)
    except subprocess.TimeoutExpired:
      os.killpg(self.proc.pid, signal.SIGKILL)
      self.proc.wait()
    self._end(self.proc.returncode)

  def _end(self, rc: int) -> None:
    self.wall_s = time.time() - self.started
    ok = rc == 0 and finished(self.workdir)
    self._record("done" if ok else "interrupted" if self.interrupted else "failed", rc)
    self._log.write(f"=== [grid] exit status {rc} after {self.wall_s:.0f}s\n".encode())
    self._log.close()
    self._release()

  def _record(self, status: str, rc: int | None = None) -> None:
    fileio.write_json(
      os.path.join(self.workdir, ATTEMPT),
      {
        "status": status,
        "returncode": rc,
        "started": self.started,
        "wall_s": time.time() - self.started,
        "host": socket.gethostname(),
        "pid": self.proc.pid,
        "env": self.env,
        "log": self.log_path,
      },
    )

  def _release(self) -> None:
    self._lock.release()
    self._lock = None
