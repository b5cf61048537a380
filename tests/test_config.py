"""Configs: every file loads and validates; bad overrides stop with a message naming the key."""

import subprocess
import sys

import pytest

from configs import base, llm4cdsr, tiny
from orthoalign import config_lib
from orthoalign import sweep


@pytest.mark.parametrize("module", [base, llm4cdsr, tiny])
def test_configs_validate(module):
  config = module.get_config()
  config_lib.validate(config)
  for key in ("model.name", "data.format", "data.path", "train.batch_size", "train.max_epochs",
              "train.eval_every", "train.early_stop_patience", "eval.num_negatives", "sweep.seeds",
              "gca.positions"):
    config_lib.get(config, key)            # the agreed key names exist in every config


def test_command_in_docstring():
  for module in (base, llm4cdsr, tiny):
    assert "python -m orthoalign.main --config=configs/" in module.__doc__


@pytest.mark.parametrize("override,message", [
    ("--config.train.max_epochz=2", "unknown config key 'train.max_epochz'.*max_epochs"),
    ("--config.trian.x=1", "valid keys under <root>: .*'train'"),
    ("--config.train.max_epochs=abc", "train.max_epochs='abc': expected a value of type int"),
    ("--config.train.learning_rate=fast", "expected a value of type float"),
])
def test_bad_overrides(override, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.check_overrides(["prog", "--config=configs/llm4cdsr.py", override])


def test_repeated_override_is_refused():
  # absl would concatenate repeated tuple flags: (0, 1) + (2,) -> (0, 1, 2) replicas.
  with pytest.raises(config_lib.ConfigError, match="sweep.seeds is given twice"):
    config_lib.check_overrides(["prog", "--config=configs/tiny.py", "--config.sweep.seeds=(0,1)",
                                "--config.sweep.seeds=(2,)"])


def test_good_overrides_pass():
  config_lib.check_overrides(["prog", "--config=configs/llm4cdsr.py", "--config.train.max_epochs=3",
                              "--config.gca.positions=(0,1)", "--config.model.causal_self_attention=True"])


@pytest.mark.parametrize("key,value,message", [
    ("gca.gate", "matrix", r"gca.gate='matrix' is invalid; valid choices: \['scalar', 'vector', 'input'\]"),
    ("gca.act", "relu", "valid choices"),
    ("model.name", "sasrec", "valid choices: .*llm4cdsr"),
    ("train.select_metric", "valid/sampled/C/ndcg@10", "train.select_metric"),
    ("gca.positions", (0, 0), "twice"),
])
def test_validate_names_key_and_choices(key, value, message):
  config = llm4cdsr.get_config()
  node = config
  *path, last = key.split(".")
  for p in path:
    node = node[p]
  node[last] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.validate(config)


def test_sweep_product_order():
  config = llm4cdsr.get_config()
  config.sweep.seeds = (0, 1)
  config.sweep.learning_rates = (1e-3, 1e-2)
  reps = sweep.replicas(config)
  assert [(r["seed"], r["learning_rate"]) for r in reps] == [(0, 1e-3), (0, 1e-2), (1, 1e-3), (1, 1e-2)]
  assert all(r["weight_decay"] == config.train.weight_decay for r in reps)


def test_main_reports_unknown_key_without_traceback(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "orthoalign.main", "--config=configs/tiny.py",
                         f"--workdir={tmp_path}", "--config.gca.gat=scalar"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "unknown config key 'gca.gat'" in proc.stderr and "Traceback" not in proc.stderr
