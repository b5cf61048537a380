"""Where a run's wall-clock time goes, summed over every process that worked on it (resumptions
included) and checkpointed with it.

Phases: "compile" (the epoch's and the evaluation's programs), "train" (the epochs' programs
only: not a learning-rate update's first compilation, nor a restored state still arriving on the
device), "eval" (validation and the final test) and "checkpoint" (saving).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import contextlib
import dataclasses
import math
import time
from typing import Any

PHASES = ("compile", "train", "eval", "checkpoint")
PROGRAMS = ("train_epoch", "evaluate")  # the run's two large programs, each compiled per process


def program_key(program: str) -> str:
  """The results row's key of one program's compile seconds: "compile/train_epoch_s"."""
  return f"compile/{program}_s"


@dataclasses.dataclass
class Timing:
  """Seconds per phase and training steps, over resumptions.

  Attributes:
    seconds: phase -> seconds (PHASES).
    programs: program (PROGRAMS) -> seconds from its trace to its compiled executable (loaded,
      with the persistent cache), summed over the processes; the "compile" phase holds both,
      compiled side by side.
    train_steps: optimizer steps taken.
    wall_before_s: wall clock of the processes before this one, up to the checkpoint it resumed
      from.
    started: this process's `time.time()` at its start (not checkpointed).
  """

  seconds: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))
  programs: dict[str, float] = dataclasses.field(
    default_factory=lambda: dict.fromkeys(PROGRAMS, 0.0)
  )
  train_steps: int = 0
  wall_before_s: float = 0.0
  started: float = dataclasses.field(default_factory=time.time)

  @contextlib.contextmanager
  def phase(self, name: str) -> Iterator[None]:
    """Adds the seconds the block takes (also when it raises) to phase `name`."""
    t0 = time.time()
    try:
      yield
    finally:
      self.seconds[name] += time.time() - t0

  def wall_s(self) -> float:
    """Wall clock of every process that worked on the run, up to now."""
    return self.wall_before_s + time.time() - self.started

  def epochs_trained(self, steps_per_epoch: int) -> float:
    return self.train_steps / steps_per_epoch

  def record(self) -> dict[str, Any]:
    """The checkpointed form (JSON)."""
    return {
      "seconds": dict(self.seconds),
      "programs": dict(self.programs),
      "train_steps": self.train_steps,
      "wall_s": self.wall_s(),
    }

  @classmethod
  def from_record(cls, record: Mapping[str, Any], started: float) -> Timing:
    """A resumed run's timing: the record's counters, with this process started at `started`."""
    seconds = dict.fromkeys(PHASES, 0.0) | dict(record["seconds"])
    programs = dict.fromkeys(PROGRAMS, 0.0) | dict(record.get("programs", {}))  # 0 s before
    return cls(seconds, programs, int(record["train_steps"]), float(record["wall_s"]), started)

  def row(self) -> dict[str, float]:
    """The results row's timing keys (seconds; steps_per_s over the training phase)."""
    train_s = self.seconds["train"]
    return {
      "compile_s": self.seconds["compile"],
      **{program_key(p): s for p, s in self.programs.items()},
      "wall_time_s": self.wall_s(),
      "train_time_s": train_s,
      "eval_time_s": self.seconds["eval"],
      "checkpoint_time_s": self.seconds["checkpoint"],
      "steps_per_s": self.train_steps / train_s if train_s else math.nan,
    }
