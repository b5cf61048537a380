"""Click prediction end to end: the config's checks, the model's masks, a tiny run and its rerun."""

import json

import jax
import numpy as np
import pytest

from orthoalign import errors
from orthoalign.ctr import config as ctr_config
from orthoalign.ctr import inputs
from orthoalign.ctr import loop
from orthoalign.ctr import model as model_lib


def tiny_config(**overrides):
  config = ctr_config.default_config()
  config.data.ads.update(num_users=300, num_ads=30, num_posts=40, num_liked=30, days=12)
  config.ctr.update(valid_days=2.0, test_days=2.0, target_len=4, source_len=8)
  config.model.update(width=16, mlp=(16,))
  config.train.update(max_epochs=2, batch_size=256)
  config.eval.batch_size = 512
  config.update_from_flattened_dict(overrides)
  return config


@pytest.mark.parametrize(
  "key, value, match",
  [
    ("ctr.split", "random", r"config key ctr.split='random' is invalid"),
    ("ctr.downsample", 0.0, r"ctr.downsample=0.0 must be a rate in \(0, 1\]"),
    ("gca.positions", (2,), r"positions are 0..model.blocks=1"),
    ("model.heads", 3, r"model.heads=3 must divide model.width=32"),
    ("data.ads.ctr", 0.9, r"config key data.ads: .*expected 0 < ctr <= 0.5"),
    ("data.format", "events", r"config key data.path is empty"),
  ],
)
def test_config_mistakes_are_one_line(key, value, match):
  config = ctr_config.default_config()
  config.update_from_flattened_dict({key: value})
  with pytest.raises(errors.ConfigError, match=match):
    ctr_config.check_config(config)


def test_an_unknown_key_is_named():
  config = ctr_config.default_config()
  with config.unlocked():
    config.ctr.colour = "red"
  with pytest.raises(errors.ConfigError, match=r"ctr.colour is not a click-prediction key"):
    ctr_config.check_config(config)


def test_padding_changes_no_logit():
  """Padding slots (item 0) of every stream are masked: their times and values change nothing."""
  config = tiny_config()
  data = loop.load_data(config)
  rows = inputs.arrays(data, np.arange(64), 4, 8)
  module = model_lib.ClickModel(
    num_items=tuple((n, s.num_items) for n, s in data.streams.items()),
    width=16,
    positions=(0, 1),
    cell=(("heads", 1),),
  )
  batch = inputs.model_inputs(rows)
  params = module.init({"params": jax.random.key(0)}, batch, train=False)["params"]
  logits, out = module.apply({"params": params}, batch, train=False)
  assert set(out["cells"]) == {"gca0_posts", "gca0_likes", "gca1_posts", "gca1_likes"}
  noisy = dict(batch)
  rng = np.random.default_rng(0)
  for key in ("target/time", "posts/time", "posts/value", "likes/time"):
    stream = key.split("/")[0]
    pad = batch[f"{stream}/items"] == 0
    noisy[key] = np.where(pad, rng.integers(-5, 5, pad.shape), batch[key]).astype(batch[key].dtype)
  assert np.any(batch["posts/items"] == 0) and np.any(batch["target/items"] == 0)
  again, _ = module.apply({"params": params}, noisy, train=False)
  np.testing.assert_allclose(np.asarray(again), np.asarray(logits), rtol=1e-5, atol=1e-6)


def test_a_tiny_run_reports_ctr_metrics_and_cells_and_reruns_identically(tmp_path, capsys):
  config = tiny_config(**{"sweep.seeds": (0, 1)})
  rows = loop.train_and_evaluate(config, str(tmp_path / "run"))
  out = capsys.readouterr().out
  assert "GCA cells, on the test impressions" in out and "gca0_posts" in out
  assert len(rows) == 2 and rows[0]["seed"] == 0 and rows[1]["seed"] == 1
  for row in rows:
    for metric in ("logloss", "auc", "gauc", "pcoc", "cold/auc", "warm/logloss"):
      assert np.isfinite(row[f"test/{metric}"]), metric
    assert 0 <= row["align/gca0_posts/mean_abs_cos"] <= 1
    assert 0 < row["align/gca0_likes/alpha"] < 1  # a sigmoid gate
    assert row["test/impressions"] == row["test/cold/impressions"] + row["test/warm/impressions"]
  assert rows[0]["test/auc"] != rows[1]["test/auc"]  # two seeds, two models
  history = [json.loads(line) for line in open(tmp_path / "run" / "history.jsonl")]
  assert [(h["epoch"], h["replica"]) for h in history] == [(1, 0), (1, 1), (2, 0), (2, 1)]
  # The same command again: nothing left to train, the same test numbers.
  again = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert [r["test/auc"] for r in again] == [r["test/auc"] for r in rows]


def test_no_source_and_plain_runs(tmp_path):
  rows = loop.train_and_evaluate(
    tiny_config(**{"ctr.sources": (), "train.max_epochs": 1}), str(tmp_path / "none")
  )
  assert not any(k.startswith("align/") for k in rows[0]) and np.isfinite(rows[0]["test/auc"])
  rows = loop.train_and_evaluate(
    tiny_config(**{"gca.positions": (), "train.max_epochs": 1, "ctr.downsample": 0.5}),
    str(tmp_path / "plain"),
  )
  assert np.isfinite(rows[0]["test/logloss"])


def test_the_sources_grid_expands_to_seven_paired_programs():
  from orthoalign.experiments import expand

  points = expand.expand("configs/grids/ads_ctr_sources.py")
  names = [p.name for p in points]
  assert names[0] == "sources=none_cell=plain" and len(names) == 7
  assert {(tuple(p.config.ctr.sources), tuple(p.config.gca.positions)) for p in points} == {
    ((), ()),
    *((s, g) for s in (("posts",), ("likes",), ("posts", "likes")) for g in ((), (0,))),
  }
  assert all(tuple(p.config.sweep.seeds) == (0, 1, 2, 3, 4) for p in points)


KUAIRAND_COLUMNS = (
  "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,"
  "is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,"
  "is_profile_enter,is_rand,tab"
)


def test_kuairand_files_train_through_its_config(tmp_path):
  """Files in KuaiRand-Pure's layout and columns (a tiny random log), read by the recipe config."""
  from configs import kuairand_ctr

  rng = np.random.default_rng(0)
  folder = tmp_path / "KuaiRand-Pure" / "data"
  folder.mkdir(parents=True)
  start = 1_649_376_000_000  # 2022-04-08, milliseconds
  for name, days in (
    ("log_standard_4_08_to_4_21_pure.csv", (0, 14)),
    ("log_standard_4_22_to_5_08_pure.csv", (14, 31)),
  ):
    lines = [KUAIRAND_COLUMNS]
    for _ in range(3000):
      t = start + int(rng.integers(days[0] * 86_400_000, days[1] * 86_400_000))
      tab = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
      click = int(rng.random() < (0.1 if tab == 1 else 0.5))
      play = int(rng.integers(0, 60_000))
      lines.append(
        f"{rng.integers(50)},{rng.integers(300)},20220408,1200,{t},{click},0,0,0,0,0,1,{play},"
        f"60000,0,0,0,0,{tab}"
      )
    (folder / name).write_text("\n".join(lines) + "\n")
  (folder / "user_features_pure.csv").write_text("user_id,user_active_degree\n1,full_active\n")
  config = kuairand_ctr.get_config()
  config.data.path = str(folder)
  config.ctr.update(valid_days=3.0, test_days=3.0, target_len=4, source_len=8)
  config.model.update(width=16, mlp=(16,))
  config.train.update(max_epochs=1, batch_size=256)
  data = loop.load_data(config)
  assert data.target == "1" and data.sources == ("0",)
  assert 0.05 < data.label.mean() < 0.15  # tab 1's clicks, not the other tabs'
  # Play time in seconds (value_scale): under a minute is bucket 1 + floor(log2(1 + 60)) = 6 at
  # most; read in milliseconds it would fill the top bucket (15).
  assert data.streams["0"].value_bucket.max() == 6
  rows = loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert np.isfinite(rows[0]["test/auc"]) and "align/gca0_0/mean_abs_cos" in rows[0]
  config.ctr.sources = ("0", "7")
  with pytest.raises(errors.DataError, match=r"ctr.target / ctr.sources: domain '7' is not in"):
    loop.load_data(config)


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path, monkeypatch, capsys):
  from orthoalign.train import metric_writer

  # Two seeds as in the tiny run above, whose compiled programs the tests' cache then holds.
  config = tiny_config(**{"train.max_epochs": 3, "sweep.seeds": (0, 1)})
  whole = loop.train_and_evaluate(config, str(tmp_path / "whole"))
  report = metric_writer.MetricWriter.report

  def stop_after_epoch_2(self, epoch, *parts):
    report(self, epoch, *parts)
    if epoch == 2:
      raise KeyboardInterrupt

  monkeypatch.setattr(metric_writer.MetricWriter, "report", stop_after_epoch_2)
  with pytest.raises(errors.Interrupted, match="the checkpoint of epoch 2 is kept"):
    loop.train_and_evaluate(config, str(tmp_path / "cut"))
  monkeypatch.setattr(metric_writer.MetricWriter, "report", report)
  resumed = loop.train_and_evaluate(config, str(tmp_path / "cut"))
  assert "resumed" in capsys.readouterr().out
  for key in ("test/auc", "test/logloss", "test/gauc", "best_epoch", "align/gca0_posts/alpha"):
    assert [r[key] for r in resumed] == [r[key] for r in whole], key
  history = [json.loads(line) for line in open(tmp_path / "cut" / "history.jsonl")]
  assert [(h["epoch"], h["replica"]) for h in history] == [
    (e, r) for e in (1, 2, 3) for r in (0, 1)
  ]
