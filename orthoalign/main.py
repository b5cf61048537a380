r"""Train and evaluate a CDSR model from a config file.

  python -m orthoalign.main --config=configs/llm4cdsr.py --workdir=/tmp/orthoalign/llm4cdsr

Re-running the same command in the same workdir resumes from its latest checkpoint.

Several processes (a TPU pod slice, a SLURM job, or hosts listed by hand) run the same command;
see orthoalign/train/distributed.py and docs/scaling.md:

  python -m orthoalign.main --config=configs/tiny.py --workdir=/shared/tiny --distributed=explicit \
      --coordinator_address=host0:12355 --num_processes=2 --process_id=<0 or 1>
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from orthoalign import compile_cache
from orthoalign import errors
from orthoalign.config import flags as flag_checks
from orthoalign.ctr import config as ctr_config
from orthoalign.ctr import loop as ctr_loop
from orthoalign.train import distributed
from orthoalign.train import loop

_CONFIG = config_flags.DEFINE_config_file(
  "config", None, "Path to a config file (get_config()).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, events, results.")
flags.mark_flags_as_required(["config", "workdir"])
_DISTRIBUTED = flags.DEFINE_enum(
  "distributed",
  "auto",
  ["auto", "explicit", "off"],
  "Multi-process runs: auto = join a detected TPU pod or SLURM job, "
  "explicit = the three flags below (or ORTHOALIGN_* variables).",
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in the run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process's rank, 0..num_processes-1.")
_HEARTBEAT = flags.DEFINE_integer(
  "heartbeat_timeout_s",
  0,
  "Seconds after which a silent process counts as lost (0 = JAX's default).",
)
_INIT_TIMEOUT = flags.DEFINE_integer(
  "initialization_timeout_s", 0, "Seconds to wait for every process to join (0 = JAX's default)."
)


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # orbax is chatty at INFO; our progress goes to stdout
  errors.stop_on_sigterm()  # a preempted or cancelled cluster job resumes like a Ctrl-C'd run
  distributed.initialize(
    _DISTRIBUTED.value,
    _COORDINATOR.value,
    _NUM_PROCESSES.value,
    _PROCESS_ID.value,
    _HEARTBEAT.value,
    _INIT_TIMEOUT.value,
  )  # before anything uses a device
  distributed.quiet_unless_writer()
  compile_cache.enable()
  if ctr_config.is_ctr(_CONFIG.value):  # click prediction (configs/ads_ctr.py)
    ctr_loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  else:
    loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
