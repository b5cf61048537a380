"""The errors a user sees as one line, and the entry points' handler that prints them.

Every mistake or situation a user can fix is a `UserError`, of the kind its name says:

  ConfigError       a config value, a flag, a config or grid file (names the key or flag)
  DataError         a data file or array (names file, line and key where they apply)
  RunError          a run's folder, files, lock, processes, devices or memory
    RunInUse        another process holds the run folder's lock (orthoalign/run_lock.py)
  TrainingDiverged  the loss became NaN/inf (a learning rate or the data to change)
  DependencyError   an optional package is not installed (names the pip command)

Every entry point wraps its `main` in `cli_main`, which prints a user error as one line
`error: <message>` on stderr and returns exit status 1, never a traceback; Ctrl-C
(`KeyboardInterrupt`, or its subclass `Interrupted` that says where a run stopped) is one line
`interrupted: ...` and exit status 130. Any other exception is a bug and keeps its traceback
(also under ORTHOALIGN_TRACEBACK=1, which shows the traceback of user errors too).

Light on purpose (no JAX, no numpy, nothing of orthoalign): every module may import it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import contextlib
import functools
import os
import signal
import sys
import threading
from typing import Any, TypeVar

__all__ = [
  "ConfigError",
  "DataError",
  "DependencyError",
  "Interrupted",
  "RunError",
  "RunInUse",
  "TrainingDiverged",
  "USER_ERRORS",
  "UserError",
  "cli_main",
  "interrupts_held",
  "message",
  "show_tracebacks",
]

_Main = TypeVar("_Main", bound=Callable[..., Any])


class UserError(Exception):
  """A mistake or situation the user can fix; entry points print it as one line."""


class ConfigError(UserError, ValueError):
  """A config value, flag, config file or grid file is invalid; the message names the key."""


class DataError(UserError, ValueError):
  """Bad data: a malformed file, an inconsistent array, a dataset a config cannot use.

  The message is prefixed with where the problem is, so that a user can go straight to it:
  `path:line: key: what was expected`, each part omitted when it does not apply. The parts are
  also kept as attributes (e.g. for tests that check which line was blamed).

  Attributes:
    path: the offending file, or None for in-memory data.
    line: 1-based line number within `path`, or None.
    key: the field / user / config key at fault, or None.
    detail: the bare description of the problem, without the location prefix.
  """

  def __init__(
    self,
    detail: str,
    *,
    path: str | os.PathLike[str] | None = None,
    line: int | None = None,
    key: str | None = None,
  ):
    self.path = None if path is None else os.fspath(path)
    self.line = line
    self.key = key
    self.detail = detail
    location = ""
    if self.path is not None:
      location = self.path if line is None else f"{self.path}:{line}"
    elif line is not None:
      location = f"line {line}"
    prefix = ": ".join(p for p in (location, key) if p)
    super().__init__(f"{prefix}: {detail}" if prefix else detail)


class RunError(UserError, RuntimeError):
  """A run's folder, files, lock, processes, devices or memory stop it; the message says which."""


class RunInUse(RunError):
  """Another process holds the run folder's lock (orthoalign/run_lock.py); the message names it."""


class TrainingDiverged(UserError, FloatingPointError):
  """The loss became NaN/inf; the last good checkpoint is kept."""


class DependencyError(UserError, ImportError):
  """An optional package is not installed; the message names the pip command."""


class Interrupted(KeyboardInterrupt):
  """Ctrl-C, with a message saying where the run stopped and how it resumes."""


USER_ERRORS: tuple[type[Exception], ...] = (UserError,)
# Exit status of a process stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED_STATUS = 130


def message(error: BaseException) -> str:
  """`error: <message>`, on one line (a line break in the message becomes a space)."""
  return "error: " + " ".join(str(error).splitlines())


def show_tracebacks() -> bool:
  """ORTHOALIGN_TRACEBACK=1: user errors keep their traceback (for bug reports)."""
  return os.environ.get("ORTHOALIGN_TRACEBACK") == "1"


# The signals that stop a run as Ctrl-C does: SIGTERM is how a cluster preempts or cancels a job.
_STOPS = (signal.SIGINT, signal.SIGTERM)


def stop_on_sigterm() -> None:
  """Makes SIGTERM (a SLURM preemption or `scancel`, `kill`) stop the process as Ctrl-C does:
  KeyboardInterrupt, held by `interrupts_held`, then the `interrupted:` line. Main thread only.
  """
  signal.signal(signal.SIGTERM, signal.default_int_handler)


@contextlib.contextmanager
def interrupts_held():
  """Holds Ctrl-C (SIGINT), and SIGTERM after `stop_on_sigterm`, until the block ends, then
  raises KeyboardInterrupt.

  For checkpoint and result I/O: orbax turns an interrupt inside a save or restore into errors of
  its threads (or into "this checkpoint cannot be restored"), so the block finishes first. A no-op
  outside the main thread; a signal ignored or handled by someone else is left alone.
  """
  held = [s for s in _STOPS if signal.getsignal(s) is signal.default_int_handler]
  if threading.current_thread() is not threading.main_thread() or not held:
    yield
    return
  caught = []
  for s in held:
    signal.signal(s, lambda signum, frame: caught.append(signum))
  try:
    yield
  finally:
    for s in held:
      signal.signal(s, signal.default_int_handler)
  if caught:
    raise KeyboardInterrupt


def _stdout_to_devnull() -> None:
  """Points fd 1 at /dev/null so that the interpreter's last flush of stdout cannot fail again."""
  try:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
  except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (a test's)
    pass


def cli_main(
  main: _Main | None = None, *, also: tuple[type[Exception], ...] = ()
) -> _Main | Callable[[_Main], _Main]:
  """Decorates an entry point's `main`: user errors become one line on stderr and exit status 1.

    @errors.cli_main
    def main(argv): ...

    @errors.cli_main(also=(OSError,))     # the data CLIs: an unreadable file is the user's too
    def main(argv=None) -> int: ...

  The wrapped function returns `main`'s own return value (absl's `app.run` and `sys.exit` take it
  as the exit status), or 1 after printing `message(e)` for an error of `USER_ERRORS + also`. When
  the reader of stdout goes away (`... | head`), it stops quietly with status 1 instead of a
  BrokenPipeError traceback. Ctrl-C prints one line `interrupted: ...` (an `Interrupted` error's
  message says where the run stopped) and returns 130. Other exceptions and SystemExit pass
  through; ORTHOALIGN_TRACEBACK=1 lets the user errors through too (with their traceback).

  Args:
    main: the entry point; omitted when `also` is given (then this returns the decorator).
    also: further exception types the entry point reports the same way.
  """
  if main is None:
    return functools.partial(cli_main, also=also)
  caught = USER_ERRORS + tuple(also)

  @functools.wraps(main)
  def wrapped(*args: Any, **kwargs: Any) -> Any:
    try:
      status = main(*args, **kwargs)
      sys.stdout.flush()  # a broken pipe shows at this flush at the latest
      return status
    except BrokenPipeError:
      _stdout_to_devnull()
      return 1
    except KeyboardInterrupt as e:
      if show_tracebacks():
        raise
      text = " ".join(str(e).splitlines()) or "stopped by Ctrl-C"
      print(f"interrupted: {text}", file=sys.stderr, flush=True)
      return INTERRUPTED_STATUS
    except caught as e:
      if show_tracebacks():
        raise
      print(message(e), file=sys.stderr, flush=True)
      return 1

  return wrapped


class ArgumentParser(argparse.ArgumentParser):
  """argparse for the entry points without absl flags (data tools, grid runner, report): a usage
  error is the usage text and one `error: <message>` line with exit status 1, like a user error.
  """

  def error(self, message: str):
    self.print_usage(sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
