"""The one upgrade of saved runs (orthoalign/config/upgrade.py) and that no reader keeps its own."""

import json
import os
import re
import shutil

import ml_collections
import pytest

from configs import base
from configs import tiny
import orthoalign
from orthoalign import errors
from orthoalign import models
from orthoalign.config import dicts
from orthoalign.config import flags
from orthoalign.config import upgrade
from orthoalign.config import validation
from orthoalign.experiments import status
from orthoalign.train import selection as selection_lib
from orthoalign.train import timing as timing_lib

OLD_RUN = os.path.join(os.path.dirname(__file__), "fixtures", "run_f34b26e_tiny")


@pytest.mark.parametrize("name", models.names())
def test_every_added_key_is_a_key_of_todays_config(name):
  """A key in the tables must exist today, with a value of its type (else the table is stale)."""
  today = base.get_config(name)
  for key, value in upgrade.added_keys(name).items():
    have = dicts.get(today, key)  # ConfigError if the key is not a key of today's config
    if isinstance(value, dict):
      assert isinstance(have, ml_collections.ConfigDict), key
      continue
    kinds = (int, float) if isinstance(have, (int, float)) and not isinstance(have, bool) else None
    assert isinstance(value, kinds or type(have)), (key, value, have)


@pytest.mark.parametrize("name", models.names())
def test_a_config_without_every_added_key_upgrades_to_a_valid_one(name):
  config = base.get_config(name)
  saved = json.loads(json.dumps(config.to_dict()))
  for key in upgrade.added_keys(name):
    *sections, leaf = key.split(".")
    node = saved
    for s in sections:
      node = node[s]
    node.pop(leaf, None)
  upgraded = upgrade.config(saved)
  validation.validate(upgraded)
  flat = dicts.flatten(upgraded.to_dict())
  for key, value in upgrade.added_keys(name).items():
    if not isinstance(value, dict):
      assert flat[key] == (list(value) if isinstance(value, tuple) else value), key


def test_the_upgrade_keeps_what_a_run_wrote_and_fills_only_what_it_lacks():
  config = upgrade.read_config(OLD_RUN)
  with open(os.path.join(OLD_RUN, "config.json")) as f:
    saved = dicts.flatten(json.load(f))
  flat = dicts.flatten(config.to_dict())
  saved = {upgrade.renamed_key(k): v for k, v in saved.items()}  # hidden_size -> width, ...
  assert {k: flat[k] for k in saved} == saved
  added = set(flat) - set(saved)
  assert added == {"gca.intervention", "gca.orth_penalty", "sweep.orth_penalties"}, added
  assert (config.gca.intervention, config.gca.orth_penalty) == ("none", 0.0)


def test_results_rows_of_an_old_run_gain_the_added_keys():
  with open(os.path.join(OLD_RUN, "results.jsonl")) as f:
    row = json.loads(f.readline())
  assert "config.gca.intervention" not in row and "gca.intervention" not in row["config"]
  upgraded = upgrade.result_row(row)
  assert upgraded["config"]["gca.intervention"] == "none"
  assert upgraded["config"]["sweep.orth_penalties"] == []
  assert upgraded["test/sampled/all/ndcg@10"] == row["test/sampled/all/ndcg@10"]
  # A model's own added keys only for that model; a subsection the config lacks stays absent.
  flat = upgrade.flat_config({"model.name": "sasrec", "data.format": "abxi"})
  assert "model.reg_pool" not in flat and "data.synthetic.planted" not in flat
  assert upgrade.flat_config({"model.name": "llm4cdsr"})["model.reg_pool"] == "history"


def test_grid_json_runs_get_name_workdir_and_axes(tmp_path):
  (tmp_path / "grid.json").write_text(json.dumps({"runs": [{"workdir": "a"}, {"name": "b"}]}))
  runs = status.read_grid(str(tmp_path))["runs"]
  assert runs == [
    {"name": "a", "workdir": "a", "axes": {}},
    {"name": "b", "workdir": "b", "axes": {}},
  ]


def test_an_old_tracker_record_becomes_selection_and_timing():
  old = {
    "best_value": [0.1, 0.2],
    "best_epoch": [1, 2],
    "bad_evals": [0, 1],
    "stopped": [False, True],
    "best_metrics": [{"k": 0.1}, {"k": 0.2}],
    "last_epoch": 2,
    "last_train": [{"train/loss": 1.0}, {"train/loss": 2.0}],
    "train_time_s": 3.0,
  }
  out = upgrade.checkpoint_meta({"tracker": old}, 2)
  selection = selection_lib.Selection(**out["selection"])
  assert selection.lr_scale == [1.0, 1.0] and selection.plateau_bad == [0, 0]
  assert selection.stopped == [False, True] and selection.best_metrics[1] == {"k": 0.2}
  timing = timing_lib.Timing.from_record(out["timing"], started=0.0)
  assert timing.seconds == {"compile": 0.0, "train": 3.0, "eval": 0.0, "checkpoint": 0.0}
  assert timing.train_steps == 0 and out["last_train"] == old["last_train"]
  kept = upgrade.checkpoint_meta(
    {"tracker": {**old, "lr_scale": [0.5, 1.0], "plateau_bad": [2, 0]}}, 2
  )
  assert kept["selection"]["lr_scale"] == [0.5, 1.0] and kept["selection"]["plateau_bad"] == [2, 0]
  assert upgrade.checkpoint_meta(out, 2) == out  # today's meta is kept as it is


def test_a_damaged_config_json_is_one_data_error(tmp_path):
  with pytest.raises(errors.DataError, match="no config.json"):
    upgrade.read_config(str(tmp_path))
  (tmp_path / "config.json").write_text('{"data": ')
  with pytest.raises(errors.DataError, match=r"config.json:1: expected a JSON object"):
    upgrade.read_config(str(tmp_path))
  (tmp_path / "config.json").write_text("[1, 2]")
  with pytest.raises(errors.DataError, match="expected a JSON object"):
    upgrade.read_config(str(tmp_path))
  (tmp_path / "config.json").write_bytes(b"\xff\xfe{}")  # not UTF-8: was a UnicodeDecodeError
  with pytest.raises(errors.DataError, match=r"config.json: byte 0 is not UTF-8"):
    upgrade.read_config(str(tmp_path))
  (tmp_path / "grid.json").write_bytes(b"\xff{}")
  with pytest.raises(errors.DataError, match=r"grid.json: byte 0 is not UTF-8"):
    status.read_grid(str(tmp_path))


def test_no_reader_keeps_a_default_for_an_added_key():
  """Outside config/upgrade.py no module reads an added key with `.get("<key>", default)`."""
  leaves = {k.rsplit(".", 1)[-1] for name in models.names() for k in upgrade.added_keys(name)}
  alternatives = "|".join(sorted(leaves))
  pattern = re.compile(r"""\.get\(\s*["'](""" + alternatives + r""")["']""")
  root = os.path.dirname(orthoalign.__file__)
  found = []
  for folder, _, files in os.walk(root):
    for name in files:
      path = os.path.join(folder, name)
      if not name.endswith(".py") or path.endswith(os.path.join("config", "upgrade.py")):
        continue
      with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
          if pattern.search(line):
            found.append(f"{os.path.relpath(path, root)}:{n}: {line.strip()}")
  assert not found, "read-site defaults:\n" + "\n".join(found)


def test_configdict_of_an_upgraded_config_keeps_lists_as_saved():
  config = upgrade.config({"model": {"name": "abxi"}, "train": {"length_buckets": [3]}})
  assert isinstance(config, ml_collections.ConfigDict)
  assert list(config.train.length_buckets) == [3]
  assert config.model.neg_scoring == "auto" and config.model.eval_domain_seq == "compact"


@pytest.mark.parametrize(
  "edit, match",
  [
    (lambda c: c["model"].pop("name"), "config key model.name is missing|unknown config key 'mode"),
    (lambda c: c["data"].pop("synthetic"), "data.synthetic"),
    (lambda c: c["data"].update(synthetic=5), r"config key data.synthetic=5 must be a section"),
    (lambda c: c["sweep"].pop("model"), "sweep.model"),
    (lambda c: c["sweep"].update(model=[]), r"config key sweep.model=\[\] must be a section"),
    (lambda c: c["train"].pop("compute_dtype") and c["train"].pop("batch_size"), "train.batch_s"),
    (lambda c: c["gca"].pop("heads"), r"config key gca.heads is missing; the GCA cell reads it"),
    (lambda c: c.update(model=5), r"config key model=5 must be a section"),
  ],
)
def test_a_hand_edited_saved_config_is_one_config_error(tmp_path, edit, match):
  """Keys or sections removed from (or mistyped in) an old run's config.json: one line each."""
  with open(os.path.join(OLD_RUN, "config.json")) as f:
    saved = json.load(f)
  edit(saved)
  (tmp_path / "config.json").write_text(json.dumps(saved))
  with pytest.raises(errors.ConfigError, match=match):
    validation.validate(upgrade.read_config(str(tmp_path)))


def test_a_resume_refusal_names_the_values_or_the_other_model(tmp_path):
  from orthoalign.train import workdir as workdir_lib

  shutil.copytree(OLD_RUN, tmp_path / "run")
  run = str(tmp_path / "run")
  config = upgrade.read_config(run)
  config.model.reg_pool = "history"  # the run has "inputs"
  with pytest.raises(errors.RunError, match=r"model.reg_pool: 'inputs' in the run, 'history' now"):
    workdir_lib.prepare(config, run)
  other = base.get_config("sasrec")
  with pytest.raises(errors.RunError, match=r"holds a llm4cdsr run, and this config is sasrec;"):
    workdir_lib.prepare(other, run)


def test_renamed_model_keys_are_read_under_their_new_names():
  config = upgrade.read_config(OLD_RUN)  # written with hidden_size, num_heads, freeze_emb, ...
  assert (config.model.width, config.model.blocks, config.model.freeze_global) == (16, 2, True)
  assert not set(upgrade.RENAMED_MODEL_KEYS) & set(config.model)
  with open(os.path.join(OLD_RUN, "results.jsonl")) as f:
    row = upgrade.result_row(json.loads(f.readline()))
  assert row["config"]["model.width"] == 16 and "model.hidden_size" not in row["config"]
  meta = upgrade.grid({"runs": [{"name": "r", "axes": {"model.ffn_size": 8, "gca.act": "x"}}]})
  assert meta["runs"][0]["axes"] == {"model.ffn": 8, "gca.act": "x"}


def test_an_old_abxi_config_gets_todays_window_length():
  """ABXI's max_len was upstream's len_max before the shared names: 50 items = windows of 47."""
  old = {"model": {"name": "abxi", "d_embed": 16, "n_head": 2, "d_ffn": 24, "max_len": 50}}
  model = upgrade.config_dict(old)["model"]
  assert (model["width"], model["heads"], model["ffn"], model["max_len"]) == (16, 2, 24, 47)
  assert (
    upgrade.config_dict({"model": {"name": "abxi", "width": 16, "max_len": 47}})["model"]["max_len"]
    == 47
  )  # today's configs as they are
  flat = upgrade.flat_config({"model.name": "abxi", "model.d_embed": 16, "model.max_len": 50})
  assert (flat["model.width"], flat["model.max_len"]) == (16, 47)


@pytest.mark.parametrize(
  "argv, match",
  [
    (["--config.model.hidden_size=8"], r"config key model\.hidden_size is now model\.width"),
    (["--config.model.d_ffn=8"], r"config key model\.d_ffn is now model\.ffn"),
  ],
)
def test_an_old_key_name_on_the_command_line_names_the_new_one(argv, match):
  with pytest.raises(errors.ConfigError, match=match):
    flags.check_overrides(["--config=configs/tiny.py", *argv])


def test_an_old_key_name_in_a_config_file_names_the_new_one():
  config = ml_collections.ConfigDict(tiny.get_config().to_dict())
  config.model.num_heads = 1
  with pytest.raises(errors.ConfigError, match=r"model\.num_heads is now model\.heads"):
    validation.validate(config)
  config = ml_collections.ConfigDict(tiny.get_config().to_dict())
  config.model.widht = 1
  with pytest.raises(errors.ConfigError, match=r"model\.widht: LLM4CDSR has no such setting"):
    validation.validate(config)
