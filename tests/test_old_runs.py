"""A run written by an older orthoalign (f34b26e: configs/tiny.py, 4 epochs, its config.json,
results.jsonl, history.jsonl and checkpoint in tests/fixtures/run_f34b26e_tiny) still evaluates,
resumes and analyses: the upgrade of saved runs must keep working through every change.
"""

import json
import os
import shutil

import numpy as np
import pytest

from orthoalign import evaluate
from orthoalign.config import upgrade
from orthoalign.train import loop

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "run_f34b26e_tiny")


@pytest.fixture
def old_run(tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(FIXTURE, workdir)
  with open(workdir / "results.jsonl") as f:
    rows = [json.loads(line) for line in f]
  return str(workdir), rows


def test_an_old_run_evaluates_to_its_own_test_metrics(old_run):
  workdir, rows = old_run
  new = evaluate.evaluate(workdir)
  keys = [k for k in rows[0] if k.startswith("test/") and isinstance(rows[0][k], float)]
  assert len(keys) > 50
  for key in keys:  # another CPU may sum in another order
    np.testing.assert_allclose(new[0][key], rows[0][key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_an_old_run_resumes_and_trains_on(old_run, capsys):
  workdir, rows = old_run
  config = upgrade.read_config(workdir)  # the keys added since, with the old run's values
  config.train.max_epochs = 5  # a change a resumption may make
  new = loop.train_and_evaluate(config, workdir)
  assert "Resumed from" in capsys.readouterr().out
  assert new[0]["epochs_trained"] == 5 and rows[0]["epochs_trained"] == 4
  assert new[0]["compile_s"] > 0 and new[0]["wall_time_s"] >= new[0]["train_time_s"]


def test_an_old_run_is_read_by_the_analysis(old_run):
  from orthoalign import analysis

  workdir, rows = old_run
  df = analysis.load_runs([workdir])
  assert len(df) == 1
  assert df["test/sampled/all/ndcg@10"].iloc[0] == rows[0]["test/sampled/all/ndcg@10"]
  trajectory = analysis.trajectory(workdir)
  assert sorted(set(trajectory["epoch"])) == [1, 2, 3, 4]
