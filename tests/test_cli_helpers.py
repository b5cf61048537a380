"""The shared pieces of the entry points: one-line errors, results tables, override parsing."""

import math
import os
import re
import subprocess
import sys

import ml_collections
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.errors import DataError
from orthoalign.metrics import keys
from orthoalign.metrics import table


def test_the_user_errors_are_one_family():
  from orthoalign.train import loop

  assert loop.TrainingDiverged is errors.TrainingDiverged
  assert errors.USER_ERRORS == (errors.UserError,)
  family = (
    errors.ConfigError,
    DataError,
    errors.RunError,
    errors.RunInUse,
    errors.TrainingDiverged,
    errors.DependencyError,
  )
  assert all(issubclass(e, errors.UserError) for e in family)
  assert issubclass(errors.RunInUse, errors.RunError)
  # Each keeps the builtin type callers may catch.
  assert issubclass(errors.ConfigError, ValueError) and issubclass(DataError, ValueError)
  assert issubclass(errors.DependencyError, ImportError)


@pytest.mark.parametrize(
  "error",
  [
    errors.ConfigError("config key a.b=1 must be\nan int"),
    DataError("bad line", path="x.csv", line=3),
    errors.TrainingDiverged("loss became nan"),
    errors.RunInUse("runs/x is in use by process 1"),
    errors.RunError("cannot write checkpoints to runs/x"),
    errors.DependencyError("--executor=slurm needs submitit"),
  ],
)
def test_cli_main_prints_a_user_error_as_one_line(error, capsys):
  @errors.cli_main
  def main(argv):
    print("partial output")
    raise error

  assert main([]) == 1
  out, err = capsys.readouterr()
  assert out == "partial output\n"
  assert err == errors.message(error) + "\n" and err.startswith("error: ") and err.count("\n") == 1


def test_cli_main_passes_the_status_and_other_exceptions_through(capsys):
  assert errors.cli_main(lambda: 0)() == 0
  assert errors.cli_main(lambda: None)() is None
  with pytest.raises(KeyError):  # a bug keeps its traceback
    errors.cli_main(lambda: {}["x"])()
  with pytest.raises(OSError):  # OSError only where an entry point asks for it
    errors.cli_main(lambda: open("/nonexistent/x"))()
  assert errors.cli_main(also=(OSError,))(lambda: open("/nonexistent/x"))() == 1
  assert capsys.readouterr().err.startswith("error: [Errno 2] No such file or directory")

  def usage():
    raise SystemExit(2)

  with pytest.raises(SystemExit):
    errors.cli_main(usage)()


def test_the_errors_module_stays_light():
  code = (
    "import sys, orthoalign.errors\n"
    "assert not {'jax', 'numpy', 'ml_collections'} & set(sys.modules), sys.modules.keys()\n"
  )
  subprocess.run(
    [sys.executable, "-c", code],
    check=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )


def test_broken_pipe_stops_quietly(tmp_path):
  """The reader of stdout went away (`... | head`): status 1, nothing on stderr."""
  code = (
    "from orthoalign import errors\n"
    "import sys, time\n"
    "time.sleep(0.5)\n"
    "sys.exit(errors.cli_main(lambda: [print('line', i) for i in range(100000)] and 0)())\n"
  )
  proc = subprocess.Popen(
    [sys.executable, "-c", code],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )
  proc.stdout.close()  # before the child writes
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 1 and err == b""


def test_render_text_and_markdown():
  rows = [[0, "sampled", 0.12345, np.float32(0.5)], [10, "full", math.nan, 1.0]]
  assert table.render(["rep", "proto", "HR@10", "MRR"], rows, widths=(3, 7, 8)).splitlines() == [
    "rep   proto    HR@10    MRR",
    "  0 sampled   0.1235 0.5000",
    " 10    full      nan 1.0000",
  ]
  assert table.render(["run", "n", "MRR"], [["abxi", 3, "0.2100 ± 0.0100"]], markdown=True) == (
    "| run | n | MRR |\n|---|---|---|\n| abxi | 3 | 0.2100 ± 0.0100 |"
  )
  with pytest.raises(ValueError, match="row 0 has 1 cells; the header has 2"):
    table.render(["a", "b"], [[1]])


def test_replica_table_lines():
  row = {
    "replica": 0,
    "seed": 3407,
    "learning_rate": 1e-3,
    **{
      keys.metric_key(s, p, d, "mrr"): 0.25
      for s in ("valid", "test")
      for p in ("sampled", "full")
      for d in keys.DOMAINS
    },
  }
  lines = table.replica_table([row], ("mrr", "auc")).splitlines()
  assert lines[0] == "rep  seed   proto dom      MRR      AUC"
  assert lines[1] == "  0  3407 sampled   A   0.2500      nan" and len(lines) == 1 + 6
  lines = table.replica_table(
    [row],
    ("mrr",),
    splits=("valid", "test"),
    columns=(("lr", 8, lambda r: f"{r['learning_rate']:.2g}"),),
  ).splitlines()
  assert lines[0] == "rep  seed       lr split   proto dom      MRR"
  assert lines[-1] == "  0  3407    0.001  test    full all   0.2500" and len(lines) == 1 + 12


def test_the_results_table_shows_the_replica_axes_that_vary():
  from orthoalign.train import results

  base = {"seed": 0, "learning_rate": 1e-3, "weight_decay": 0.0, "gate_init": 0.0, "best_epoch": 1}
  rows = [{**base, "replica": r, "model.temp": t} for r, t in enumerate((0.5, 2.0))]
  columns = results._swept_columns(rows)  # weight decay, gate init: the same in every row
  assert [(name, fn(rows[1])) for name, _, fn in columns] == [("temp", "2")]


def test_get_names_the_valid_keys():
  config = ml_collections.ConfigDict({"train": {"max_epochs": 3, "opt": {"lr": 0.1}}})
  assert dicts.get(config, "train.opt.lr") == 0.1
  assert dicts.get(config, "train.opt").lr == 0.1
  with pytest.raises(
    errors.ConfigError,
    match=r"unknown config key 'train.max_epoch' \(in x\); valid keys under train: "
    r"\['max_epochs', 'opt'\]",
  ):
    dicts.get(config, "train.max_epoch", " (in x)")


@pytest.mark.parametrize(
  "default,text,value",
  [
    (True, "false", False),
    (False, "T", True),
    (False, "1", True),
    (3, "12", 12),
    (3, "0x10", 16),
    (0.1, "1e-3", 1e-3),
    (0.1, "2", 2.0),
    ((0,), "(0,1)", (0, 1)),
    ((0,), "2", (2,)),
    ((), "()", ()),
    ([0], "(1,2)", [1, 2]),
    ("a", "b,c", "b,c"),
    (None, "x", "x"),
  ],
)
def test_parse_value(default, text, value):
  parsed = dicts.parse_value("k", text, default)
  assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(
  "default,text", [(True, "yes"), (3, "3.0"), (3, "many"), (0.1, "fast"), ((0,), "(0, 1")]
)
def test_parse_value_refuses(default, text):
  with pytest.raises(
    errors.ConfigError,
    match=re.escape(
      f"config key k={text!r} (in y): expected a value of type {type(default).__name__} (default"
    ),
  ):
    dicts.parse_value("k", text, default, " (in y)")


@pytest.mark.parametrize(
  "interrupt,line",
  [
    (KeyboardInterrupt(), "interrupted: stopped by Ctrl-C"),
    (
      errors.Interrupted("stopped runs/x in epoch 3 of 9; the same command resumes from epoch 3"),
      "interrupted: stopped runs/x in epoch 3 of 9; the same command resumes from epoch 3",
    ),
  ],
)
def test_cli_main_answers_ctrl_c_with_one_line_and_status_130(interrupt, line, capsys):
  @errors.cli_main
  def main(argv):
    raise interrupt

  assert main([]) == 130
  assert capsys.readouterr().err == line + "\n"


def test_orthoalign_traceback_lets_user_errors_through(monkeypatch):
  monkeypatch.setenv("ORTHOALIGN_TRACEBACK", "1")

  @errors.cli_main
  def main(argv):
    raise errors.ConfigError("config key a=1")

  with pytest.raises(errors.ConfigError):
    main([])


def test_interrupts_held_until_the_block_ends():
  """Ctrl-C inside checkpoint I/O made orbax report a good checkpoint as unreadable (and print
  hundreds of thread tracebacks); it now waits for the block and is raised after it.
  """
  import signal

  # A test process started in the background ignores SIGINT: install Python's handler for this.
  previous = signal.signal(signal.SIGINT, signal.default_int_handler)
  done = []
  try:
    with pytest.raises(KeyboardInterrupt):
      with errors.interrupts_held():
        os.kill(os.getpid(), signal.SIGINT)
        done.append("the block ran to its end")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGINT, previous)
  assert done == ["the block ran to its end"]


def test_sigterm_stops_as_ctrl_c_and_is_held_the_same_way():
  import signal

  previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  signal.signal(signal.SIGINT, signal.default_int_handler)
  done = []
  try:
    errors.stop_on_sigterm()
    with pytest.raises(KeyboardInterrupt):
      with errors.interrupts_held():
        os.kill(os.getpid(), signal.SIGTERM)
        done.append("the block ran to its end")
    assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler
  finally:
    signal.signal(signal.SIGTERM, previous[0])
    signal.signal(signal.SIGINT, previous[1])
  assert done == ["the block ran to its end"]


@pytest.mark.parametrize(
  "args, message",
  [
    (["orthoalign.bench"], "error: choose a benchmark: python -m orthoalign.bench.speed"),
    (
      ["orthoalign.bench.speed", "--config=configs/tiny.py", "--epochs=0"],
      "error: --epochs=0: expected an int >= 1",
    ),
    (
      ["orthoalign.bench.catalogue", "--config=configs/tiny.py", "--item_shards=1,x"],
      "error: --item_shards=1,x must be a comma-separated list of ints >= 1",
    ),
  ],
)
def test_each_benchmark_is_its_own_program_with_one_line_errors(args, message):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(
    [sys.executable, "-m", *args], cwd=root, capture_output=True, text=True, check=False
  )
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith(message), proc.stderr
