"""The LLM4CDSR authors' embedding pickles: read beside their handled data, checked, used.

No copy of the authors' files exists here: the tests write files of the names, shapes and pickle
form their code reads (models/LLMCDSR.py; numpy arrays dumped with pickle.dump).
"""

import os
import pickle

import numpy as np
import pytest

from orthoalign import errors
from orthoalign.datasets import load as data_load
from orthoalign.datasets import synthetic
from orthoalign.datasets.readers import handled
from orthoalign.errors import DataError
from orthoalign.train import task as task_lib
from tests.conftest import tiny_config

HIDDEN = 16  # configs/tiny.py's model.width: the local tables' width must equal it


def _dump(path, value, protocol=pickle.HIGHEST_PROTOCOL):
  with open(path, "wb") as f:
    pickle.dump(value, f, protocol=protocol)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """An upstream-like handled folder: the interaction pickle, id_map.json and the four tables."""
  cfg = tiny_config()
  ds = synthetic.generate(synthetic.from_config_dict(cfg.data.synthetic))
  root = tmp_path_factory.mktemp("handled")
  handled.write_handled(ds, root / "cloth_sport.pkl", root / "id_map.json")
  rng = np.random.default_rng(0)
  eligible = int((np.diff(ds.offsets) >= 3).sum())
  tables = {
    "itm_emb_np_all.pkl": rng.normal(size=(ds.num_items, 24)),  # float64, as sklearn
    "itm_emb_np_A_pca128.pkl": rng.normal(size=(ds.num_items_a, HIDDEN)),
    "itm_emb_np_B_pca128.pkl": rng.normal(size=(ds.num_items_b, HIDDEN)),
    "usr_profile_emb.pkl": rng.normal(size=(eligible, 20)),
  }
  for i, (name, value) in enumerate(tables.items()):
    _dump(root / name, value, protocol=4 + i % 2)  # both protocols numpy arrays come in
  _dump(root / "title_A.pkl", ["a title"] * ds.num_items_a)  # other upstream files are ignored
  return root, tables


def _copy(root, tmp_path):
  """A writable copy of the handled folder's files."""
  copy = tmp_path / "handled"
  copy.mkdir()
  for f in root.iterdir():
    if f.is_file():
      (copy / f.name).write_bytes(f.read_bytes())
  return copy


def _config(root, **overrides):
  cfg = tiny_config(
    **{"data.format": "handled", "data.path": str(root), "data.cache_dir": str(root / "cache")}
  )
  cfg.update_from_flattened_dict(overrides)
  return cfg


def _build(cfg):
  ds = data_load.load(cfg.data)
  return ds, task_lib.bind(ds, cfg)


def test_the_authors_tables_are_read_and_used(folder):
  root, tables = folder
  ds, task = _build(_config(root))
  frozen = task.model.frozen["frozen"]
  for key, name in (
    ("global_table", "itm_emb_np_all.pkl"),
    ("table_a", "itm_emb_np_A_pca128.pkl"),
    ("table_b", "itm_emb_np_B_pca128.pkl"),
  ):
    np.testing.assert_array_equal(frozen[key][0], 0)  # padding row
    np.testing.assert_array_equal(frozen[key][1:], tables[name].astype(np.float32))
  # Profiles: row i of the user file = the i-th user with >= 3 interactions (upstream's index).
  eligible = np.flatnonzero(np.diff(ds.offsets) >= 3)
  rank = {u: i for i, u in enumerate(eligible)}
  users = task.train_data["user"]
  want = tables["usr_profile_emb.pkl"][[rank[u] for u in users]].astype(np.float32)
  np.testing.assert_array_equal(task.train_data["user_profile"], want)
  out = "\n".join(task.model.notes)  # the trainer prints them; the model prints nothing
  assert f"item tables = the authors' files in {root}" in out
  assert "itm_emb_np_all.pkl [110x24]" in out and "user profiles (beta loss) = the authors'" in out
  assert "items without text (all-zero text embedding): A 0 / 60, B 0 / 50" in out


def test_none_keeps_the_substitutes_and_says_so(folder, capsys):
  root, _ = folder
  _, task = _build(_config(root, **{"model.llm_emb_dir": "none"}))
  assert "global_table" not in task.model.frozen.get("frozen", {})  # no titles here: ID embeddings
  assert "user_profile" not in task.train_data
  assert "item tables = none: trainable ID embeddings" in task.model.notes[0]
  assert capsys.readouterr().out == ""  # models print nothing


def test_an_explicit_folder_without_the_files_is_refused(folder, tmp_path):
  root, _ = folder
  with pytest.raises(errors.ConfigError, match=r"model.llm_emb_dir=.*no \['itm_emb_np_all.pkl'"):
    _build(_config(root, **{"model.llm_emb_dir": str(tmp_path)}))


def test_the_local_width_must_equal_hidden_size(folder):
  root, _ = folder
  with pytest.raises(errors.ConfigError, match="model.width=32: .* equal their width, 16"):
    _build(_config(root, **{"model.width": 32}))


@pytest.mark.parametrize(
  "change, message",
  [
    (
      lambda d, t: os.remove(d / "itm_emb_np_B_pca128.pkl"),
      r"has \['itm_emb_np_all.pkl', 'itm_emb_np_A_pca128.pkl'\] "
      r"but not \['itm_emb_np_B_pca128.pkl'\]",
    ),
    (
      lambda d, t: _dump(d / "itm_emb_np_A_pca128.pkl", t["itm_emb_np_A_pca128.pkl"][:-1]),
      r"itm_emb_np_A_pca128.pkl: has 59 rows; expected 60",
    ),
    (
      lambda d, t: _dump(d / "usr_profile_emb.pkl", t["usr_profile_emb.pkl"][:5]),
      r"usr_profile_emb.pkl: has 5 rows; expected at least \d+ \(one per user with >= 3",
    ),
    (
      lambda d, t: _dump(d / "itm_emb_np_all.pkl", {"not": "an array"}),
      r"itm_emb_np_all.pkl: holds a dict; expected a 2-D float array",
    ),
    (
      lambda d, t: (d / "itm_emb_np_all.pkl").write_bytes(b"\x80\x04garbage"),
      r"itm_emb_np_all.pkl: not a valid pickle .*; expected a 2-D float numpy array",
    ),
  ],
)
def test_malformed_files_are_one_error_naming_the_file(folder, tmp_path, change, message):
  root, tables = folder
  copy = _copy(root, tmp_path)
  change(copy, tables)
  with pytest.raises(DataError, match=message):
    _build(_config(copy))


def test_a_pickle_naming_code_is_refused_without_running_it(folder, tmp_path):
  root, _ = folder
  copy = _copy(root, tmp_path)

  class Evil:
    def __reduce__(self):
      return (os.system, ("touch " + str(tmp_path / "ran"),))

  _dump(copy / "usr_profile_emb.pkl", Evil())
  with pytest.raises(DataError, match="usr_profile_emb.pkl"):
    _build(_config(copy))
  assert not (tmp_path / "ran").exists()


def test_several_interaction_pickles_need_inter_file(folder, tmp_path):
  root, _ = folder
  copy = _copy(root, tmp_path)
  (copy / "amazon_all.pkl").write_bytes((root / "cloth_sport.pkl").read_bytes())
  with pytest.raises(
    DataError,
    match=r"several interaction pickles \['amazon_all.pkl', "
    r"'cloth_sport.pkl'\]; name one with --config.data.reader_options=\"\{'inter_file'",
  ):
    _build(_config(copy))
  ds, _ = _build(_config(copy, **{"data.reader_options": {"inter_file": "cloth_sport"}}))
  assert ds.num_users == 160
