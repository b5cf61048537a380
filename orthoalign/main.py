r"""Train and evaluate a CDSR model from a config file.

  python -m orthoalign.main --config=configs/llm4cdsr.py --workdir=/tmp/orthoalign/llm4cdsr

Re-running the same command in the same workdir resumes from its latest checkpoint.
"""

from __future__ import annotations

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from orthoalign import compile_cache
from orthoalign import config_lib
from orthoalign import errors
from orthoalign.train import loop

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (get_config()).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder: config, checkpoints, events, results.")
flags.mark_flags_as_required(["config", "workdir"])


@errors.cli_main
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)   # orbax is chatty at INFO; our progress goes to stdout
  compile_cache.enable()
  loop.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=config_lib.parse_flags_checked)
