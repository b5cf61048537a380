"""Configs: every file loads and validates; bad overrides stop with a message naming the key."""

import os
import re
import subprocess
import sys

import pytest

from configs import abxi
from configs import base
from configs import llm4cdsr
from configs import llm4cdsr_fk
from configs import synthetic_small
from configs import tiny
from orthoalign import errors
from orthoalign import sweep
from orthoalign.config import dicts
from orthoalign.config import flags as flag_checks
from orthoalign.config import upgrade
from orthoalign.config import validation


@pytest.mark.parametrize("module", [base, llm4cdsr, tiny, abxi, synthetic_small, llm4cdsr_fk])
def test_configs_validate(module):
  config = module.get_config()
  if module is not base:  # base.py holds the shared keys only (no model keys)
    validation.validate(config)
  for key in (
    "model.name",
    "data.format",
    "data.path",
    "train.batch_size",
    "train.max_epochs",
    "train.eval_every",
    "train.early_stop_patience",
    "eval.num_negatives",
    "sweep.seeds",
    "gca.positions",
  ):
    dicts.get(config, key)  # the agreed key names exist in every config


def test_command_in_docstring():
  for module in (base, llm4cdsr, tiny):
    assert "python -m orthoalign.main --config=configs/" in module.__doc__


@pytest.mark.parametrize(
  "override,message",
  [
    ("--config.train.max_epochz=2", "unknown config key 'train.max_epochz'.*max_epochs"),
    ("--config.trian.x=1", "valid keys under <root>: .*'train'"),
    ("--config.train.max_epochs=abc", "train.max_epochs='abc': expected a value of type int"),
    ("--config.train.learning_rate=fast", "expected a value of type float"),
  ],
)
def test_bad_overrides(override, message):
  with pytest.raises(errors.ConfigError, match=message):
    flag_checks.check_overrides(["prog", "--config=configs/llm4cdsr.py", override])


def test_repeated_override_is_refused():
  # absl would concatenate repeated tuple flags: (0, 1) + (2,) -> (0, 1, 2) replicas.
  with pytest.raises(errors.ConfigError, match="sweep.seeds is given twice"):
    flag_checks.check_overrides(
      [
        "prog",
        "--config=configs/tiny.py",
        "--config.sweep.seeds=(0,1)",
        "--config.sweep.seeds=(2,)",
      ]
    )


def test_good_overrides_pass():
  flag_checks.check_overrides(
    [
      "prog",
      "--config=configs/llm4cdsr.py",
      "--config.train.max_epochs=3",
      "--config.gca.positions=(0,1)",
      "--config.model.causal=True",
    ]
  )


@pytest.mark.parametrize(
  "key,value,message",
  [
    (
      "gca.gate",
      "matrix",
      r"gca.gate='matrix' is invalid; valid choices: \['scalar', 'vector', 'input'\]",
    ),
    ("gca.act", "relu", "valid choices"),
    ("model.name", "bert4rec", "valid choices: .*llm4cdsr"),
    ("train.select_metric", "valid/sampled/C/ndcg@10", "train.select_metric"),
    ("gca.positions", (0, 0), "twice"),
  ],
)
def test_validate_names_key_and_choices(key, value, message):
  config = llm4cdsr.get_config()
  config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=message):
    validation.validate(config)


def test_sweep_product_order():
  config = llm4cdsr.get_config()
  config.sweep.seeds = (0, 1)
  config.sweep.learning_rates = (1e-3, 1e-2)
  reps = sweep.replicas(config)
  assert [(r["seed"], r["learning_rate"]) for r in reps] == [
    (0, 1e-3),
    (0, 1e-2),
    (1, 1e-3),
    (1, 1e-2),
  ]
  assert all(r["weight_decay"] == config.train.weight_decay for r in reps)


def test_main_reports_unknown_key_without_traceback(tmp_path):
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "orthoalign.main",
      "--config=configs/tiny.py",
      f"--workdir={tmp_path}",
      "--config.gca.gat=scalar",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert proc.returncode == 1
  assert (
    proc.stderr.startswith("error: unknown config key 'gca.gat'") and "Traceback" not in proc.stderr
  )
  assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(
  "config_file,key,value,match",
  [
    (
      "tiny",
      "gca.positions",
      (5,),
      r"gca.positions=\(5,\): LLM4CDSR with model.blocks=2 has GCA positions \[0, 1, 2\]",
    ),
    ("tiny", "gca.heads", 3, r"gca.heads=3 must divide model.width=16"),
    (
      "tiny",
      "sweep.seeds",
      (0, -1),
      r"sweep.seeds=\(0, -1\): element 1 \(-1\) is not an int >= 0 below 4294967296",
    ),
    ("tiny", "gca.kv", "mixed", r"gca.kv='mixed': model.name='llm4cdsr' supports \['other'\]"),
    ("tiny", "model.heads", 3, r"model.heads=3 must divide model.width=16"),
    ("abxi", "gca.positions", (3,), r"gca.positions=\(3,\): ABXI has GCA positions \[0, 1, 2\]"),
    ("abxi", "model.max_len", 1, r"model.max_len=1 must be an int >= 2"),
    (
      "abxi",
      "model.eval_domain_seq",
      "both",
      r"model.eval_domain_seq='both' is invalid; valid choices",
    ),
  ],
)
def test_models_validate_their_keys_before_tracing(config_file, key, value, match):
  """Config mistakes only a model can judge raise ConfigError (one line), not a tracing error."""
  import importlib

  config = importlib.import_module(f"configs.{config_file}").get_config()
  config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(config)


def _config_files():
  import glob

  return sorted(
    os.path.splitext(os.path.basename(p))[0]
    for p in glob.glob("configs/*.py")
    if not p.endswith("__init__.py")
  )


@pytest.mark.parametrize("config_file", _config_files())
def test_every_element_of_every_list_valued_key_is_checked(config_file):
  """A non-numeric entry in sweep.learning_rates (or any list) gave a 27-line traceback after
  config.json was written; every list-valued key of every config now refuses a wrong element.
  """
  import importlib

  from orthoalign.ctr import config as ctr_config

  base = importlib.import_module(f"configs.{config_file}").get_config()
  ctr = ctr_config.is_ctr(base)  # click prediction: its own keys and checks
  check = ctr_config.check_config if ctr else validation.validate
  lists = {k: v for k, v in dicts.flatten(base.to_dict()).items() if isinstance(v, list)}
  assert "gca.positions" in lists and (ctr or "sweep.learning_rates" in lists)
  if ctr and base.data.format == "events":
    lists.pop("ctr.sources")  # a log's domain names are known once it is read (test_ctr.py)
  for key, value in lists.items():
    wrong = (3,) if key == "data.titles" else ("x",)  # file paths are the only text lists
    config = importlib.import_module(f"configs.{config_file}").get_config()
    config.update_from_flattened_dict({key: tuple(value) + wrong})
    with pytest.raises(errors.ConfigError, match=re.escape(f"config key {key}=")):
      check(config)


@pytest.mark.parametrize(
  "key,value,match",
  [
    ("sweep.learning_rates", (1e-3, 0.0), r"element 1 \(0.0\) is not a finite number > 0"),
    ("sweep.learning_rates", (1e-3, float("nan")), r"element 1 \(nan\)"),
    ("train.learning_rate", -1e-3, r"train.learning_rate=-0.001 must be a finite number > 0"),
    ("sweep.weight_decays", (-0.1,), r"element 0 \(-0.1\) is not a finite number >= 0"),
    ("sweep.gate_inits", (0.0, "0.5"), r"element 1 \('0.5'\) is not a finite number"),
    ("sweep.seeds", (), r"sweep.seeds=\(\) must list at least 1 value"),
    ("sweep.seeds", (1, 2, 1), r"sweep.seeds=\(1, 2, 1\) lists 1 twice"),
    ("sweep.seeds", (2**32,), r"element 0 \(4294967296\) is not an int >= 0 below"),
    (
      "sweep.model.tau",
      (1.0, 0.0),
      r"sweep.model.tau=\(1.0, 0.0\): element 1 \(0.0\) is not a "
      r"finite number > 0",
    ),
    ("sweep.model.alpha", (0.0, -0.5), r"element 1 \(-0.5\) is not a finite number >= 0"),
    ("model.tau_reg", 0.0, r"model.tau_reg=0.0 must be a finite number > 0"),
    ("eval.candidate_seed", -1, r"eval.candidate_seed=-1 must be an int in \[0, 4294967295\]"),
    ("train.plateau_factor", 0.0, r"train.plateau_factor=0.0 must be a number in \(0, 1\]"),
    ("gca.dropout", "0.1", r"gca.dropout='0.1' must be a number in \[0, 1\)"),
    ("train.select_metric", 3, r"train.select_metric=3 must be a metric key"),
    (
      "train.warmup_epochs",
      20,
      r"train.warmup_epochs=20 leaves no validated epoch within "
      r"train.max_epochs=20",
    ),
    ("data.synthetic.num_users", 0, r"config key data.synthetic.num_users: expected >= 1, got 0"),
    (
      "data.synthetic.num_users",
      float("nan"),
      r"config key data.synthetic.num_users: expected a finite number, got nan",
    ),
  ],
)
def test_values_that_make_no_sense_for_their_axis_are_refused(key, value, match):
  config = llm4cdsr.get_config()
  with config.ignore_type():
    config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(config)


def test_abxi_temperature_sweep_is_checked_per_element():
  from configs import abxi

  config = abxi.get_config()
  config.sweep.model.temp = (0.5, -1.0)
  with pytest.raises(errors.ConfigError, match=r"sweep.model.temp=.*element 1 \(-1.0\)"):
    validation.validate(config)


def test_cli_refuses_a_bad_list_element_before_writing_anything(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.run(
    [
      sys.executable,
      "-m",
      "orthoalign.main",
      "--config=configs/tiny.py",
      f"--workdir={workdir}",
      "--config.sweep.learning_rates=(0.1,'x')",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  lines = proc.stderr.splitlines()
  assert proc.returncode == 1 and len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: config key sweep.learning_rates=(0.1, 'x'): element 1")
  assert not workdir.exists()


def test_base_config_takes_each_models_keys_from_its_module():
  """configs/base.py:<model> is a complete config with the model's own defaults (its docstring
  command runs), and a model's keys are refused for another model.
  """
  from configs import base
  from orthoalign import models

  for name in models.names():
    config = base.get_config(name)
    validation.validate(config)
    assert config.model.to_dict() == models.default_config(name).to_dict()
  assert "global_dim" in base.get_config().model and "rd" not in base.get_config().model
  with pytest.raises(errors.ConfigError, match="not a known model"):
    base.get_config("bert4rec")
  with pytest.raises(errors.ConfigError, match="not a known model"):  # before absl parses
    flag_checks.check_overrides(["--config=configs/base.py:bert4rec"])


def test_a_missing_model_key_is_named():
  from configs import base

  config = base.get_config("llm4cdsr")
  del config.model["width"]
  with pytest.raises(errors.ConfigError, match=r"model.width is missing; LLM4CDSR reads it"):
    validation.validate(config)


def test_a_key_added_later_matches_its_old_behaviour_on_resume():
  old = upgrade.flat_config({"model.name": "abxi", "train.max_epochs": 3})  # before eval.ties
  new = {**old, "eval.ties": "pessimistic"}
  assert dicts.differences(old, new) == []
  assert dicts.differences(old, {**new, "eval.ties": "expected"}) == ["eval.ties"]
  assert dicts.differences(old, {**new, "train.max_epochs": 9}, ("train.max_epochs",)) == []


@pytest.mark.parametrize(
  "args,line",
  [
    (
      ["--config=configs/tiny.py", "--workdir=W", "--bogus=1"],
      "error: Unknown command line flag 'bogus'",
    ),
    (["--config=configs/tiny.py"], "error: flag --workdir=None: Flag --workdir must have a value"),
    (["--config=configs/tiny.py", "--workdir=W", "extra"], "error: unexpected arguments ['extra']"),
    (
      ["--config=README.md", "--workdir=W"],
      "error: --config=README.md: 'README.md' is not a Python file with get_config()",
    ),
    (["--config=configs", "--workdir=W"], "error: --config=configs: 'configs' is a folder"),
    (
      ["--config=configs/tiny.py:abxi", "--workdir=W"],
      "error: --config=configs/tiny.py:abxi: get_config('abxi') failed",
    ),
  ],
)
def test_flag_and_config_file_mistakes_are_one_line(tmp_path, args, line):
  """absl and importlib answered these with tracebacks or a 40-line usage text."""
  args = [a.replace("=W", f"={tmp_path}/run") for a in args]
  proc = subprocess.run(
    [sys.executable, "-m", "orthoalign.main", *args], capture_output=True, text=True, timeout=120
  )
  lines = proc.stderr.splitlines()
  assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith(line), proc.stderr
  assert not (tmp_path / "run").exists()
