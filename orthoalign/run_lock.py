"""The run folder's lock: one process at a time trains or evaluates a workdir.

`<workdir>/.lock` is held with `flock` for as long as a process works in the folder, and records
who holds it (pid, host, start time, command) as one JSON line, so that a second command can say
in one line which process has the run. The kernel drops the flock when its holder dies (also on
SIGKILL), so the next command takes the run over; the record the dead holder left behind is then
reported as a warning. On a file system without `flock` (some NFS mounts) the record alone
decides: a live process of this host, or any process of another host, keeps the run.

The grid runner takes the lock before it starts `orthoalign.main` and hands it to the child: the
child inherits the locked file descriptor (`ENV_FD` names it) and adopts it instead of locking
again, so the run is never unlocked between the two.

Light on purpose (no JAX): the grid runner imports it.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from typing import IO, Any

from orthoalign import errors
from orthoalign import fileio

LOCK = ".lock"
# The environment variable by which a parent hands its locked descriptor to the child it starts.
ENV_FD = "ORTHOALIGN_RUN_LOCK_FD"


def _alive(pid: int) -> bool:
  """Whether process `pid` exists on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's process
    return True
  return True


def _read_record(handle: IO[bytes]) -> dict[str, Any]:
  """The holder's record, {} when the file is empty or unreadable (being rewritten)."""
  handle.seek(0)
  try:
    record = json.loads(handle.read().decode("utf-8") or "{}")
  except (ValueError, UnicodeDecodeError):
    return {}
  return record if isinstance(record, dict) else {}


def describe(record: dict[str, Any]) -> str:
  """'process 123 on host h since 2026-12-07 10:00:00 (python -m orthoalign.main ...)'."""
  if not record.get("pid"):
    return "another process (it has not recorded itself yet)"
  since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("started", 0)))
  text = f"process {record['pid']} on host {record.get('host', '?')} since {since}"
  return text + (f" ({record['command']})" if record.get("command") else "")


def _flock(handle: IO[bytes]) -> bool | None:
  """Locks without waiting: True when locked, False when held elsewhere, None without flock."""
  try:
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      return False
    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP):
      return None
    raise
  return True


class RunLock:
  """A held workdir lock. Release it with `release()` or use it as a context manager.

  Attributes:
    path: the lock file.
    previous: the record a holder that died left behind ({} when the lock was free and clean);
      `acquire` warns about it.
  """

  def __init__(
    self,
    handle: IO[bytes],
    path: str,
    adopted: bool = False,
    previous: dict[str, Any] | None = None,
  ):
    self._handle: IO[bytes] | None = handle
    self.path, self.adopted, self.previous = path, adopted, previous or {}

  def fileno(self) -> int:
    return self._handle.fileno()

  def record(self, command: str | None = None, pid: int | None = None) -> None:
    """Writes who holds the run (in place: renaming would swap the locked file for another)."""
    command = shlex.join(sys.argv) if command is None else command
    text = json.dumps(
      {
        "pid": pid or os.getpid(),
        "host": socket.gethostname(),
        "started": time.time(),
        "command": command,
      }
    )
    self._handle.seek(0)
    self._handle.truncate()
    self._handle.write(text.encode("utf-8") + b"\n")
    self._handle.flush()

  def close(self) -> None:
    """Closes the file without touching the record (a dead holder's stays for the next taker)."""
    if self._handle is not None:
      self._handle.close()
      self._handle = None

  def release(self) -> None:
    """Clears the record and closes the file, which drops the flock once every process sharing
    the descriptor has closed it. A record of another live process (the child this one handed
    the lock to) is left as it is: that process still holds the run.
    """
    if self._handle is None:
      return
    try:
      pid = _read_record(self._handle).get("pid")
      if not isinstance(pid, int) or pid == os.getpid() or not _alive(pid):
        self._handle.seek(0)
        self._handle.truncate()
    except OSError:
      pass  # the folder went away: nothing to clear
    self.close()

  def __enter__(self) -> RunLock:
    return self

  def __exit__(self, *exc: Any) -> None:
    self.release()


def _adopt(workdir: str) -> RunLock | None:
  """The lock a parent handed down through `ENV_FD`, if it is this workdir's lock file."""
  text = os.environ.get(ENV_FD, "")
  if not text.isdigit():
    return None
  path = os.path.join(workdir, LOCK)
  try:
    held, here = os.fstat(int(text)), os.stat(path)
  except OSError:
    return None
  if (held.st_dev, held.st_ino) != (here.st_dev, here.st_ino):
    return None  # a descriptor for another run: not ours to adopt
  del os.environ[ENV_FD]  # not for the processes this one starts
  return RunLock(os.fdopen(int(text), "r+b"), path, adopted=True)


def try_acquire(workdir: str) -> RunLock | None:
  """Takes the workdir's lock without waiting; None when another process holds it.

  The lock is not recorded yet: call `record()` (`acquire` does).

  Raises:
    OSError: the folder or its lock file cannot be created.
  """
  adopted = _adopt(workdir)
  if adopted is not None:
    return adopted
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, LOCK)
  handle = open(path, "a+b")
  locked = _flock(handle)
  previous = _read_record(handle)
  pid = previous.get("pid") if isinstance(previous.get("pid"), int) else None
  # Without flock only the record can tell: a live process here, or any on another host, holds it.
  held = bool(pid) and not (previous.get("host") == socket.gethostname() and not _alive(int(pid)))
  if locked is False or (locked is None and held):
    handle.close()
    return None
  return RunLock(handle, path, previous=previous)


def holder(workdir: str) -> dict[str, Any]:
  """The record of the process holding the workdir's lock ({} if none is recorded)."""
  try:
    with open(os.path.join(workdir, LOCK), "rb") as f:
      return _read_record(f)
  except OSError:
    return {}


def locked(workdir: str) -> bool:
  """Whether some process holds the workdir's lock (i.e. works in the run now)."""
  if not os.path.isfile(os.path.join(workdir, LOCK)):
    return False
  lock = try_acquire(workdir)
  if lock is None:
    return True
  lock.close()
  return False


def acquire(workdir: str, what: str = "run", warn: Any = None) -> RunLock:
  """Takes and records the workdir's lock for this process.

  Args:
    workdir: the run folder (created if missing).
    what: what the caller does there, for the message ("run", "evaluation").
    warn: called with one line when the lock is taken over from a process that ended without
      releasing it (default: print to stderr).

  Returns:
    The held `RunLock`.

  Raises:
    RunInUse: another process holds the lock; the message names it.
    ConfigError: `workdir` is empty.
    RunError: the folder or its lock file cannot be written.
  """
  if not workdir:
    raise errors.ConfigError("--workdir is empty; name the run's folder, e.g. --workdir=runs/tiny")
  fileio.writable_dir(workdir, "the run's outputs (--workdir)", errors.RunError)
  try:
    lock = try_acquire(workdir)
  except OSError as e:
    raise errors.RunError(
      f"cannot write the run's lock file (--workdir) to {workdir}: {e.strerror or e}"
    ) from None
  if lock is None:
    instead = " or use another --workdir" if what == "run" else ""
    raise errors.RunInUse(
      f"{workdir} is in use by {describe(holder(workdir))}; wait for it to "
      f"end{instead} (delete {os.path.join(workdir, LOCK)} only if that "
      "process is gone)"
    )
  if lock.previous.get("pid") and not lock.adopted:
    (warn or (lambda line: print(line, file=sys.stderr, flush=True)))(
      f"warning: taking over {workdir} from {describe(lock.previous)}, which ended without "
      f"releasing it; the {what} continues from what that process saved"
    )
  lock.record()
  return lock
