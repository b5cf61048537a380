"""The metric writer sends each number to every sink; the hooks run when their `every` says."""

import json
import time

from conftest import tb_points
import ml_collections
import pytest

from orthoalign.metrics import keys
from orthoalign.train import hooks
from orthoalign.train import metric_writer
from orthoalign.train import progress as progress_lib
from orthoalign.train import selection as selection_lib
from orthoalign.train import timing as timing_lib


def _numbers(epoch):
  """Two replicas' numbers of one epoch, every kind of key the trainer writes."""
  return [
    {
      keys.train_key("loss"): 1.0 / epoch + r,
      keys.LEARNING_RATE: 0.001,
      keys.STEPS_PER_S: 10.0,
      keys.metric_key("valid", "sampled", "A", "ndcg@10"): 0.1 * epoch,
      keys.align_key(keys.cell_name(0, "A"), "mean_abs_cos"): 0.5,
    }
    for r in range(2)
  ]


def test_every_number_reaches_history_tensorboard_and_the_progress_line(tmp_path, capsys):
  writer = metric_writer.MetricWriter(str(tmp_path), resume_epoch=None, max_epochs=3)
  for epoch in (1, 2):
    writer.write(epoch, _numbers(epoch))
    writer.report(epoch, "12.0 steps/s")
  writer.close()
  rows = [json.loads(line) for line in (tmp_path / metric_writer.HISTORY).read_text().splitlines()]
  assert [(r["epoch"], r["replica"]) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
  for row in rows:
    assert {k: v for k, v in row.items() if k not in ("epoch", "replica")} == pytest.approx(
      _numbers(row["epoch"])[row["replica"]]
    )
  points = tb_points(str(tmp_path / metric_writer.TENSORBOARD))
  expected = {
    (keys.replica_tag(k, r).replace("@", "_"), epoch)  # TensorBoard's tag alphabet
    for epoch in (1, 2)
    for r, n in enumerate(_numbers(epoch))
    for k in n
  }
  assert set(points) == expected and len(points) == len(expected)
  lines = capsys.readouterr().out.splitlines()
  assert lines == ["epoch 1/3  loss 1.5000  12.0 steps/s", "epoch 2/3  loss 1.0000  12.0 steps/s"]
  path = writer.results([{"replica": 0, "x": 1.0}])
  assert [json.loads(line) for line in open(path)] == [{"replica": 0, "x": 1.0}]


def test_a_resumed_writer_drops_and_hides_the_replayed_epochs(tmp_path):
  writer = metric_writer.MetricWriter(str(tmp_path), resume_epoch=None, max_epochs=3)
  for epoch in (1, 2):
    writer.write(epoch, _numbers(epoch))
  writer.close()
  time.sleep(1.1)  # event files are named by the second they were opened in
  writer = metric_writer.MetricWriter(str(tmp_path), resume_epoch=1, max_epochs=3)
  writer.write(2, _numbers(2))
  writer.close()
  rows = [json.loads(line) for line in (tmp_path / metric_writer.HISTORY).read_text().splitlines()]
  assert [(r["epoch"], r["replica"]) for r in rows] == [(1, 0), (1, 1), (2, 0), (2, 1)]
  points = tb_points(str(tmp_path / metric_writer.TENSORBOARD))
  assert len(points) == len(set(points)) == 2 * 2 * len(_numbers(1)[0])
  # An attempt stopped before its first checkpoint starts afresh: nothing earlier is shown.
  time.sleep(1.1)
  writer = metric_writer.MetricWriter(str(tmp_path), resume_epoch=None, max_epochs=3)
  writer.write(1, _numbers(1))
  writer.close()
  points = tb_points(str(tmp_path / metric_writer.TENSORBOARD))
  assert sorted({step for _, step in points}) == [1] and len(points) == 2 * len(_numbers(1)[0])


def _config(**train):
  config = ml_collections.ConfigDict(
    {
      "train": {
        "eval_every": 2,
        "checkpoint_every": 3,
        "max_epochs": 7,
        "warmup_epochs": 2,
        "select_metric": "k",
        "early_stop_patience": 1,
        "plateau_patience": 0,
        "plateau_factor": 1.0,
      },
      "eval": {"track_test": False},
    }
  )
  config.train.update(train)
  return config


def _progress(stopped):
  selection = selection_lib.Selection.new(2)
  selection.stopped = stopped
  return progress_lib.Progress(0, None, None, selection, timing_lib.Timing(), [])


def test_each_hook_runs_every_its_epochs_and_at_the_last():
  config = _config()
  running = _progress([False, True])
  validate = hooks.Validate(None, config, None)
  save = hooks.Checkpoint(None, config)
  # No validation in the warm-up (epochs 1-2), then every 2nd epoch and the last.
  assert [e for e in range(1, 8) if validate.due(e, running)] == [4, 6, 7]
  assert [e for e in range(1, 8) if save.due(e, running)] == [3, 6, 7]
  # Once every replica has stopped the run ends: its last epoch is checkpointed.
  assert save.due(1, _progress([True, True]))


def test_a_resume_says_which_epochs_the_history_lost(tmp_path, capsys):
  path = tmp_path / metric_writer.HISTORY
  rows = [{"epoch": e, "replica": 0} for e in (1, 2, 5, 7)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "garbage\n")
  metric_writer.History(str(tmp_path), resume_epoch=8)
  out = capsys.readouterr().out
  assert out.startswith(f"warning: {path} has no rows for epoch(s) 3-4, 6, 8 of the 8 before")
  assert [json.loads(line)["epoch"] for line in path.read_text().splitlines()] == [1, 2, 5, 7]
  metric_writer.History(str(tmp_path), resume_epoch=2)  # nothing lost up to epoch 2
  assert capsys.readouterr().out == ""
