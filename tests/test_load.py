"""config.data -> CDSRDataset: each format through the cache, titles, candidates."""

import os

from conftest import require_data
import numpy as np
import pytest

from configs import base
from orthoalign import errors
from orthoalign.config import validation
from orthoalign.datasets import load as data_load
from orthoalign.datasets import store
from orthoalign.datasets import synthetic
from orthoalign.errors import DataError
from orthoalign.inputs import candidates


def data_config(fmt, path, **kw):
  cfg = base.get_config().data
  cfg.format = fmt
  cfg.path = str(path)
  cfg.update(kw)
  return cfg


def test_abxi_through_cache_reloads_from_the_store(tmp_path, capsys):
  path = require_data("abxi-afk")
  cfg = data_config("abxi", path, cache_dir=str(tmp_path))
  ds = data_load.load(cfg)
  assert (ds.num_users, ds.num_items_a, ds.num_items_b, len(ds.items)) == (
    7144,
    11837,
    16258,
    173548,
  )
  capsys.readouterr()
  again = data_load.load(cfg)
  assert "loaded cached dataset" in capsys.readouterr().err  # the store, not the text files
  np.testing.assert_array_equal(again.items, ds.items)
  folders = os.listdir(tmp_path)
  assert len(folders) == 1 and folders[0].startswith("abxi-abxi-afk-")
  # Frozen candidates live with the dataset: 999 as ABXI, and the same on a second call.
  c1 = candidates.frozen(again, "test", 999, 0)
  assert c1.shape == (7144, 1000)
  assert os.path.exists(candidates.candidates_path(tmp_path / folders[0], "test", 999, 0))
  np.testing.assert_array_equal(candidates.frozen(again, "test", 999, 0), c1)


def test_cache_rebuilds_when_settings_change(tmp_path, capsys):
  path = require_data("abxi-afk")
  data_load.load(data_config("abxi", path, cache_dir=str(tmp_path)))
  capsys.readouterr()
  data_load.load(data_config("abxi", path, cache_dir=str(tmp_path), on_bad_line="skip"))
  assert "rebuilding" in capsys.readouterr().err


def test_llmcdsr_titles_and_tfidf_text_embeddings(tmp_path):
  path = require_data("llmcdsr-food-kitchen")
  ds = data_load.load(
    data_config("llmcdsr", path, cache_dir=str(tmp_path), text_emb="tfidf", text_dim=64)
  )
  assert ds.user_split is not None and ds.item_titles is not None
  assert ds.item_text_emb.shape == (ds.num_items + 1, 64)
  has_title = ds.item_titles != ""
  norms = np.linalg.norm(ds.item_text_emb, axis=1)
  assert np.all(norms[~has_title] == 0)
  unit = np.abs(norms - 1.0) < 1e-4
  # A title whose every term is too rare for the TF-IDF vocabulary also gets a zero row.
  assert np.all(unit[has_title] | (norms[has_title] == 0)) and unit[has_title].mean() > 0.99


def test_abxi_titles_from_llmcdsr_files(tmp_path):
  path = require_data("abxi-afk")
  text = require_data("llmcdsr-food-kitchen")
  ds = data_load.load(
    data_config(
      "abxi",
      path,
      cache_dir=str(tmp_path),
      titles=(str(text / "text_A.json"), str(text / "text_B.json")),
    )
  )
  titled = ds.item_titles != ""
  # The abxi-afk README: 7,601 of 11,837 Food and 15,756 of 16,258 Kitchen ASINs have titles there.
  assert titled[1 : ds.num_items_a + 1].sum() == 7601
  assert titled[ds.num_items_a + 1 :].sum() == 15756


def test_prepared_format(tmp_path):
  ds = synthetic.generate(synthetic.SyntheticConfig(num_users=300, num_items_a=80, num_items_b=70))
  store.save_dataset(ds, tmp_path / "prepared")
  loaded = data_load.load(
    data_config("prepared", tmp_path / "prepared", cache_dir=str(tmp_path / "c"))
  )
  np.testing.assert_array_equal(loaded.items, ds.items)


def test_bad_format_and_path_are_named():
  cfg = base.get_config()
  cfg.data.format = "abxi"
  with pytest.raises(errors.ConfigError, match="data.path is empty"):
    validation.validate(cfg)
  cfg.data.format = "csv"
  with pytest.raises(errors.ConfigError, match="data.format='csv' is invalid; valid choices"):
    validation.validate(cfg)
  with pytest.raises(DataError, match="data.path: expected a folder of abxi files"):
    data_load.load(data_config("abxi", "/nonexistent/folder"))


def test_handled_format_round_trip(tmp_path):
  from orthoalign.datasets.readers import handled

  ds = synthetic.generate(synthetic.SyntheticConfig(num_users=200, num_items_a=70, num_items_b=60))
  folder = tmp_path / "handled"
  folder.mkdir()
  handled.write_handled(ds, folder / "pair.pkl", folder / "id_map.json")
  loaded = data_load.load(data_config("handled", folder, cache_dir=str(tmp_path / "c")))
  np.testing.assert_array_equal(loaded.items, ds.items)
  np.testing.assert_array_equal(loaded.offsets, ds.offsets)


def test_main_job_config_on_real_data_builds():
  """The README's real-data command resolves to a valid config and a buildable LLM4CDSR task."""
  from configs import llm4cdsr as llm4cdsr_config
  from orthoalign.train import task as task_lib

  path = require_data("abxi-afk")
  cfg = llm4cdsr_config.get_config()
  cfg.data.format, cfg.data.path = "abxi", str(path)
  validation.validate(cfg)
  task = task_lib.bind(data_load.load(cfg.data), cfg)
  assert task.model.frozen == {}  # no titles: trainable ID embeddings
  assert task.eval_data["test"]["cand"].shape == (7144, 101)


IMVAE_TRAIN = (
  'user_id,seq_d1,seq_d2,domain_id\n1,"[4, 2]","[9]",0\n2,[],"[9, 3]",1\n3,"[2]","[3, 9]",1\n'
)
IMVAE_TEST = 'user_id,seq_d1,seq_d2,domain_id\n1,"[4]","[3]",0\n7,"[2]","[9]",1\n'


def _config_with(data_cfg):
  cfg = base.get_config()
  cfg.data = data_cfg
  return cfg


def imvae_folder(tmp_path):
  folder = tmp_path / "imvae-toy"
  folder.mkdir()
  (folder / "toy_train.csv").write_text(IMVAE_TRAIN)
  (folder / "toy_test_csu.csv").write_text(IMVAE_TEST)
  return folder


def test_imvae_format_through_cache(tmp_path, capsys):
  folder = imvae_folder(tmp_path)
  (folder / "README.md").write_text("not a source")
  cfg = data_config("imvae", folder, cache_dir=str(tmp_path / "c"))
  validation.validate(_config_with(cfg))
  ds = data_load.load(cfg)
  assert ds.merged_timeline is False and ds.num_users == 5
  np.testing.assert_array_equal(ds.user_in_train, [0, 0, 0, 1, 0])
  [folder_name] = os.listdir(tmp_path / "c")
  manifest = store.load_dataset(tmp_path / "c" / folder_name)[1]
  # The two CSVs only (not the README).
  assert [os.path.basename(s["path"]) for s in manifest["sources"]] == [
    "toy_train.csv",
    "toy_test_csu.csv",
  ]
  assert manifest["params"]["reader_options"] == {"valid_fraction": 0.1, "valid_seed": 0}
  capsys.readouterr()
  again = data_load.load(cfg)
  assert "loaded cached" in capsys.readouterr().err and again.merged_timeline is False
  # Reader options change the cache key; a 0.5 carve moves one of the two eligible ids.
  carved = data_load.load_path(
    "imvae",
    str(folder),
    cache_dir=str(tmp_path / "c"),
    reader_options={"valid_fraction": 0.5, "valid_seed": 1},
  )
  assert "rebuilding" in capsys.readouterr().err
  assert np.sum(carved.user_split == 1) == 1


def test_reader_options_are_checked(tmp_path):
  folder = imvae_folder(tmp_path)
  with pytest.raises(
    DataError,
    match=r"data.reader_options: unknown option\(s\) \['seed'\] for "
    r"format 'imvae'; valid: \['valid_fraction', 'valid_seed'\]",
  ):
    data_load.load_path("imvae", str(folder), reader_options={"seed": 1})
  with pytest.raises(DataError, match=r"unknown option\(s\) \['valid_seed'\] for format 'abxi'"):
    data_load.load_path("abxi", str(folder), reader_options={"valid_seed": 1})


def test_reader_option_values_are_refused_before_any_file_is_read(tmp_path):
  cfg = data_config("imvae", tmp_path / "nothing-here", cache_dir=str(tmp_path / "cache"))
  cfg.reader_options = {"valid_fraction": 1.5}
  with pytest.raises(
    errors.ConfigError, match=r"config key data.reader_options.valid_fraction=1.5: 1.5 is outside"
  ):
    validation.validate(_config_with(cfg))
  assert not (tmp_path / "cache").exists()
  synthetic_cfg = base.get_config().data
  synthetic_cfg.reader_options = {"valid_fraction": 0.5}
  with pytest.raises(errors.ConfigError, match="'synthetic' reads no files and takes no reader"):
    validation.validate(_config_with(synthetic_cfg))


def test_imvae_real_folder_through_config(tmp_path):
  path = require_data("imvae-phone-elec")
  cfg = data_config("imvae", path, cache_dir=str(tmp_path))
  validation.validate(_config_with(cfg))
  ds = data_load.load(cfg)
  assert ds.num_users == 16092 + 4024 and ds.merged_timeline is False
  assert int(ds.user_in_train.sum()) == 312
