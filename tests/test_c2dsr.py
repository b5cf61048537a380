"""C2DSR's port: its file reader, the loader's rows and graphs, each quirk's effect, its config.

The float64 comparison with the authors' code is tools/compare_c2dsr_original.py (it needs torch,
scipy and their checkout; its output is docs/results/c2dsr_port_check.md).
"""

import subprocess
import sys

from conftest import require_data
import contract
import jax
import numpy as np
import pytest

from configs import c2dsr as c2dsr_config
from orthoalign import errors
from orthoalign.config import validation
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import load as data_load
from orthoalign.datasets import splits
from orthoalign.datasets.readers import c2dsr as reader
from orthoalign.models import c2dsr
from orthoalign.models import param_count
from orthoalign.models.c2dsr import inputs

NA, NB = 4, 3  # Alist: 4 items (file ids 0..3), Blist: 3 (file ids 4..6)


def _folder(tmp_path, train="7\tx\t0|5\t4|1\t2|9\n", valid="7\tx\t1|1\t5|2\n", test=None):
  (tmp_path / "Alist.txt").write_text("".join(f"a{i}\n" for i in range(NA)))
  (tmp_path / "Blist.txt").write_text("".join(f"b{i}\n" for i in range(NB)))
  (tmp_path / "traindata_new.txt").write_text(train)
  (tmp_path / "validdata_new.txt").write_text(valid)
  (tmp_path / "testdata_new.txt").write_text(test if test is not None else "9\ty\t2|1\t6|2\t0|3\n")
  return tmp_path


def test_reader_sorts_by_timestamp_and_splits_by_line(tmp_path):
  ds = reader.read_c2dsr(_folder(tmp_path, train="7\tx\t0|5\t4|1\t2|9\t3|5\n\n8\tx\t5|3\t6|2\n"))
  assert (ds.num_items_a, ds.num_items_b) == (NA, NB)
  # File ids + 1, stably sorted by timestamp (0|5 before 3|5, as the loader's list.sort).
  np.testing.assert_array_equal(ds.sequence(0), [5, 1, 4, 3])
  np.testing.assert_array_equal(ds.sequence(1), [7, 6])
  assert list(ds.user_ids) == [
    "traindata_new:1",
    "traindata_new:3",
    "validdata_new:1",
    "testdata_new:1",
  ]
  np.testing.assert_array_equal(
    ds.user_split, [dataset_lib.USER_TRAIN] * 2 + [dataset_lib.USER_VALID, dataset_lib.USER_TEST]
  )
  # The validation line's first field (7) also owns a training line; the test line's (9) does not.
  np.testing.assert_array_equal(ds.user_in_train, [False, False, True, False])
  valid = splits.eval_split(ds, "valid")
  assert (valid.targets.tolist(), valid.input_len.tolist()) == ([6], [1])
  assert ds.item_keys[1] == "a0" and ds.item_keys[NA + 1] == "b0"


@pytest.mark.parametrize(
  "files, match",
  [
    ({"train": "7\tx\t0|5\t4\n"}, r"traindata_new.txt:1: field 4 '4' has no \|timestamp"),
    (
      {"valid": "7\tx\t1|1\tq|2\n"},
      r"validdata_new.txt:1: field 4: item id 'q' is not a non-negative",
    ),
    (
      {"test": "9\ty\t2|1\t7|2\n"},
      r"testdata_new.txt:1: field 4: item id 7 out of range; expected 0..6",
    ),
    (
      {"train": "7\tx\t0|5\t1|t\n"},
      r"traindata_new.txt:1: field 4: timestamp 't' is not an integer",
    ),
    ({"train": "7\t0|5\n"}, r"traindata_new.txt:1: 2 tab-separated field\(s\); expected"),
    ({"train": "7\tx\t0|9223372036854775808\n"}, r"timestamp 9223372036854775808 is outside"),
    ({"train": "\n"}, r"traindata_new.txt: no sequence line; expected"),
    ({"valid": "7\tx\t1|1\n"}, r"validdata_new.txt: no sequence line with a history"),
  ],
)
def test_bad_lines_are_named(tmp_path, files, match):
  with pytest.raises(errors.DataError, match=match):
    reader.read_c2dsr(_folder(tmp_path, **files))


def test_empty_domain_list_is_named(tmp_path):
  folder = _folder(tmp_path)
  (folder / "Blist.txt").write_text("")
  with pytest.raises(errors.DataError, match=r"Blist.txt: empty; expected one line per item"):
    reader.read_c2dsr(folder)


def test_blank_list_lines_count_as_items_with_a_warning(tmp_path, capsys):
  folder = _folder(tmp_path)
  (folder / "Alist.txt").write_text("a0\n\na2\na3\n")
  ds = reader.read_c2dsr(folder)
  assert ds.num_items_a == NA  # the loader counts every line
  assert "Alist.txt:2: 1 blank line(s) counted as items" in capsys.readouterr().err


def test_no_sequence_with_both_domains_is_named(tmp_path):
  config = contract.tiny_config("c2dsr")
  folder = _folder(tmp_path, train="7\tx\t0|1\t1|2\t2|3\n")
  config.data.update(format="c2dsr", path=str(folder), cache_dir=str(tmp_path / "cache"))
  config.eval.num_negatives = 2
  with pytest.raises(errors.DataError, match=r"no training sequence has a next item in both"):
    contract.bind(config)


def test_bad_files_are_one_line_errors_through_the_cli(tmp_path):
  folder = _folder(tmp_path, train="7\tx\t0|5\t4\n")
  run = subprocess.run(
    [
      sys.executable,
      "-m",
      "orthoalign.main",
      "--config=configs/tiny_c2dsr.py",
      f"--workdir={tmp_path / 'run'}",
      "--config.data.format=c2dsr",
      f"--config.data.path={folder}",
      f"--config.data.cache_dir={tmp_path / 'cache'}",
    ],
    capture_output=True,
    text=True,
    check=False,
  )
  assert run.returncode != 0
  lines = [line for line in run.stderr.strip().splitlines() if line]
  assert "Traceback" not in run.stderr
  assert "traindata_new.txt:1" in lines[-1] and "has no |timestamp" in lines[-1]


def _row(seq, final_b0_off_by_one=True):
  # nA = 4 (ids 1..4), nB = 3 (ids 5..7), window 8.
  return inputs.train_row(np.asarray(seq), NA, NB, 8, np.random.default_rng(0), final_b0_off_by_one)


def test_training_row_follows_the_loader():
  # A1 B5 A2 B6 A3 -> final target B7: the A stream's last item (3) is dropped from its window
  # but stays the target of the A item before it; B targets chain to the final target.
  r = _row([1, 5, 2, 6, 3, 7])
  tail = lambda k: r[k][-5:].tolist()
  assert tail("seq") == [1, 5, 2, 6, 3]
  assert tail("seq_a") == [1, 0, 2, 0, 0] and tail("pos_a") == [1, 0, 2, 0, 0]
  assert tail("seq_b") == [0, 5, 0, 6, 0] and tail("pos_b") == [0, 1, 0, 2, 0]
  assert tail("target") == [5, 2, 6, 3, 7]
  assert tail("target_a") == [2, 0, 3, 0, 0]
  assert tail("target_b") == [0, 6, 0, 7, 0]
  assert tail("pos") == [1, 2, 3, 4, 5] and r["seq"][:3].tolist() == [0, 0, 0]
  # Corrupted: A items kept and B items replaced by B items (corrupt_a), and the reverse.
  assert tail("corrupt_a")[::2] == [1, 2, 3] and all(x > NA for x in tail("corrupt_a")[1::2])
  assert tail("corrupt_b")[1::2] == [5, 6] and all(1 <= x <= NA for x in tail("corrupt_b")[::2])


def test_rows_without_a_target_in_both_domains_are_skipped():
  assert _row([1, 2, 3]) is None  # no B item at all
  assert _row([5, 1, 6]) is None  # one A item whose next A item does not exist: dropped


def test_final_b0_off_by_one_quirk():
  # Final target B item 0 (global id nA + 1 = 5): the loader's strict test gives the B stream
  # no final target and drops its last item; off, it is B's target like any other B item.
  on, off = _row([1, 6, 2, 5]), _row([1, 6, 2, 5], final_b0_off_by_one=False)
  assert on is None  # B has one item (6) whose target is lost, so no B target: skipped
  assert off["target_b"][-3:].tolist() == [0, 5, 0] and off["seq_b"][-3:].tolist() == [0, 6, 0]


def test_long_sequences_keep_their_most_recent_items():
  # nA = 3: A = 1..3, B = 4..7. 7 items, window 4: the last 4 items (5 3 6 1), 3 of them inputs
  # (the original's data never exceed its window).
  r = inputs.train_row(np.array([1, 4, 2, 5, 3, 6, 1]), 3, 4, 4, np.random.default_rng(0))
  assert r["seq"].tolist() == [0, 5, 3, 6] and r["target"].tolist() == [0, 3, 6, 1]
  assert r["target_a"].tolist() == [0, 0, 1, 0] and r["target_b"].tolist() == [0, 6, 0, 0]
  e = inputs.eval_row(np.arange(1, 10), 4, 4)
  assert e["seq"].tolist() == [0, 7, 8, 9] and e["pos"].tolist() == [0, 1, 2, 3]
  # No A item in the window: the last slot (the original's index -1).
  assert (int(e["idx_last_a"]), int(e["idx_last_b"])) == (3, 3)


def test_item_graphs_count_repeated_transitions_and_normalise_rows():
  # Original ids 0 4 0 4 5. Merged transitions: 0->4 (twice), 4->0, 4->5; same-domain: 0->0 (A),
  # 4->4 and 4->5 (B).
  merged, single = inputs.item_graphs([np.array([1, 5, 1, 5, 6])], NA)

  def dense(g):
    out = np.zeros((NA + NB + 1,) * 2)
    out[g.rows, g.cols] = g.weights
    return out

  m, s = dense(merged), dense(single)
  assert (m[0, 4], m[4, 0], m[4, 5]) == (1.0, 0.5, 0.5) and np.count_nonzero(m) == 3
  assert (s[0, 0], s[4, 4], s[4, 5]) == (1.0, 0.5, 0.5) and np.count_nonzero(s) == 3


def _tiny(**model):
  config = contract.tiny_config("c2dsr")
  config.model.update(dropout=0.0, **model)
  return config


def test_gcn_weight_is_dead_unless_applied():
  for setting, dead in (("unused", True), ("applied", False)):
    task = contract.bind(_tiny(gcn_weight=setting))
    params = task.model.init(jax.random.key(0))
    grads = jax.grad(
      lambda p: task.model.loss(p, {}, contract.batch_of(task), jax.random.key(1))[0]
    )(params)
    assert (np.abs(np.asarray(grads["gcn_m"]["weight_0"])).max() == 0.0) == dead


def test_per_step_corruption_draws_on_device():
  task = contract.bind(_tiny(corruption="per_step"))
  params = task.model.init(jax.random.key(0))
  batch = contract.batch_of(task)
  losses = {float(task.model.loss(params, {}, batch, jax.random.key(k))[0]) for k in range(3)}
  assert len(losses) == 3  # dropout 0: only the corrupted sequences vary with the key
  fixed = contract.bind(_tiny())
  losses = {float(fixed.model.loss(params, {}, batch, jax.random.key(k))[0]) for k in range(3)}
  assert len(losses) == 1


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("model.gcn_weight", "used", "model.gcn_weight"),
    ("model.corruption", "always", "model.corruption"),
    ("model.lam", 1.5, "model.lam"),
    ("model.ce_positions", 12, "model.ce_positions"),
    ("gca.positions", (3,), "gca.positions"),
  ],
)
def test_bad_settings_are_named(key, value, match):
  config = contract.tiny_config("c2dsr")
  config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(config)


def test_swept_lam_must_be_a_fraction():
  config = contract.tiny_config("c2dsr")
  config.sweep.model.lam = (0.5, 1.5)
  with pytest.raises(errors.ConfigError, match=r"sweep.model.lam.*element 1 \(1.5\).* in \[0, 1\]"):
    validation.validate(config)


def test_config_validates_and_documents_its_command():
  cfg = c2dsr_config.get_config()
  validation.validate(cfg)
  assert "python -m orthoalign.main --config=configs/c2dsr.py" in c2dsr_config.__doc__
  m = cfg.model
  assert (m.width, m.blocks, m.heads, m.gnn_layers, m.max_len, m.lam) == (256, 2, 1, 1, 15, 0.7)
  assert (cfg.train.learning_rate, cfg.train.eval_every, cfg.eval.num_negatives) == (1e-3, 5, 999)


def test_parameter_count_food_kitchen_matches_original():
  path = require_data("abxi-afk")
  cfg = c2dsr_config.get_config()
  cfg.data.path = str(path)
  # The original's sum(p.numel() for p in model.parameters()) at train_rec.py's defaults, module
  # by module (equal counts on the hand-made files: docs/results/c2dsr_port_check.md): three item
  # tables N x d (N = nA + nB + 1), three GCN layers d x d + d, three position tables 15 x d,
  # three encoders of 2 blocks (LN 2d, MHA 4d^2 + 4d, LN 2d, FFN 2(d^2 + d)) and a last LN 2d,
  # two discriminators d^2 + 1, lin_X, lin_Y, lin_PAD (d + 1 each output).
  n, d = 11837 + 16258 + 1, 256
  block = 2 * d + 4 * d * d + 4 * d + 2 * d + 2 * (d * d + d)
  total = (
    3 * n * d
    + 3 * (d * d + d)
    + 3 * 15 * d
    + 3 * (2 * block + 2 * d)
    + 2 * (d * d + 1)
    + (d + 1) * (11837 + 16258 + 1)
  )
  assert param_count.count(cfg) == (total, total) == (31_514_562, 31_514_562)
  ds = data_load.load(cfg.data)
  assert (ds.num_items_a, ds.num_items_b) == (11837, 16258)


def test_baseline_reports_what_it_kept():
  task = contract.bind(contract.tiny_config("c2dsr"))
  assert isinstance(task.model, c2dsr.Baseline)
  assert "training sequences have a target in both domains" in task.model.notes[0]
