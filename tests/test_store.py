"""Tests for the prepared-dataset store, frozen candidate files and the leak checks."""

import cProfile
import hashlib
import json
import os
import pstats
import time

from conftest import require_data
import numpy as np
import pytest

import orthoalign
from orthoalign.datasets import store
from orthoalign.datasets import synthetic
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.checks import check_no_leakage
from orthoalign.datasets.dataset import USER_TEST
from orthoalign.datasets.dataset import USER_TRAIN
from orthoalign.datasets.dataset import USER_VALID
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.splits import eval_split
from orthoalign.datasets.splits import train_lengths
from orthoalign.errors import DataError
from orthoalign.inputs import candidates
from orthoalign.inputs.candidates import sample_candidates

# nA = 4 (ids 1..4), nB = 3 (ids 5..7).
TOY_SEQS = [[1, 5, 2, 6], [3, 4], [7, 6, 5], [2, 1, 3]]


def full_toy() -> CDSRDataset:
  """Every optional field set, user_ids as Python objects (stored as strings)."""
  emb = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
  emb[0] = 0
  return CDSRDataset.from_sequences(
    "toy",
    4,
    3,
    [np.array(s) for s in TOY_SEQS],
    timestamps=[np.arange(len(s)) * 10 for s in TOY_SEQS],
    item_text_emb=emb,
    user_ids=np.array(["alice", "bob", 7, "dave"], dtype=object),
    item_keys=np.array(["", "a1", "a2", "a3", "a4", "b1", "b2", "b3"]),
    item_titles=np.array(["", "Tea", "Café", "", "Jam", "Pan", "Pot", "Cup"]),
  )


def small_synthetic(num_users: int = 150, seed: int = 0) -> CDSRDataset:
  return synthetic.generate(
    synthetic.SyntheticConfig(
      num_users=num_users,
      num_items_a=120,
      num_items_b=150,
      mean_length=12,
      min_length=5,
      max_length=30,
      text_dim=8,
      seed=seed,
    )
  )


def user_level() -> CDSRDataset:
  return CDSRDataset.from_sequences(
    "ul",
    4,
    3,
    [np.array(s) for s in TOY_SEQS],
    user_split=np.array([USER_TRAIN, USER_TRAIN, USER_VALID, USER_TEST]),
  )


def test_round_trip_all_fields(tmp_path):
  ds = full_toy()
  manifest = store.save_dataset(ds, tmp_path)
  loaded, stored = store.load_dataset(tmp_path)
  assert stored == manifest
  for field in (
    "offsets",
    "items",
    "domains",
    "timestamps",
    "item_text_emb",
    "item_keys",
    "item_titles",
  ):
    np.testing.assert_array_equal(getattr(loaded, field), getattr(ds, field))
    assert getattr(loaded, field).dtype == getattr(ds, field).dtype
  assert loaded.user_ids.tolist() == ["alice", "bob", "7", "dave"]
  assert loaded.user_split is None
  assert (loaded.name, loaded.num_items_a, loaded.num_items_b) == ("toy", 4, 3)
  # Plain arrays only: loadable without pickle; None fields are simply absent.
  with np.load(tmp_path / "dataset.npz", allow_pickle=False) as npz:
    assert "user_split" not in npz.files
    assert all(npz[k].dtype.kind in "biufU" for k in npz.files)


def test_round_trip_user_level(tmp_path):
  ds = user_level()
  store.save_dataset(ds, tmp_path)
  loaded, manifest = store.load_dataset(tmp_path)
  np.testing.assert_array_equal(loaded.user_split, ds.user_split)
  assert loaded.timestamps is None and loaded.item_text_emb is None
  assert manifest["statistics"]["split"] == "user-level"


def test_manifest_fields(tmp_path):
  src = tmp_path / "raw.txt"
  src.write_bytes(b"x" * 3_000_000)  # Several hash chunks.
  out = tmp_path / "store"
  manifest = store.save_dataset(
    full_toy(),
    out,
    manifest_extra={
      "sources": [str(src)],
      "recipe": "toy-v1",
      "params": {"k": 5},
      "bad_lines": {"skipped": 0},
      "note": "extra keys pass through",
    },
  )
  on_disk = json.loads((out / "manifest.json").read_text())
  assert on_disk == manifest
  assert manifest["format_version"] == store.FORMAT_VERSION
  assert manifest["orthoalign_version"] == orthoalign.__version__
  assert manifest["name"] == "toy" and manifest["recipe"] == "toy-v1"
  assert manifest["params"] == {"k": 5} and manifest["note"] == "extra keys pass through"
  assert manifest["bad_lines"] == {"skipped": 0}
  assert manifest["created"].endswith("+00:00")
  [source] = manifest["sources"]
  assert source["path"] == str(src.resolve()) and source["bytes"] == 3_000_000
  assert source["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
  assert source["mtime_ns"] == src.stat().st_mtime_ns
  stats = manifest["statistics"]
  assert stats["users"] == 4 and stats["interactions"] == 12
  # Users 0, 2, 3 are evaluated; test targets 6 (B), 5 (B), 3 (A); valid 2 (A), 6 (B), 1 (A).
  assert stats["targets"]["test"] == {"A": 1, "B": 2, "total": 3}
  assert stats["targets"]["valid"] == {"A": 2, "B": 1, "total": 3}
  assert manifest["files"]["dataset.npz"]["bytes"] == (out / "dataset.npz").stat().st_size
  with pytest.raises(ValueError, match="computed"):
    store.save_dataset(full_toy(), out, manifest_extra={"statistics": {}})


@pytest.mark.parametrize(
  "damage, match",
  [
    (lambda d: (d / "manifest.json").unlink(), "manifest.json: missing"),
    (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json: unreadable"),
    (lambda d: (d / "dataset.npz").unlink(), "dataset.npz: cannot read"),
    (
      lambda d: (d / "dataset.npz").write_bytes((d / "dataset.npz").read_bytes()[:200]),
      "dataset.npz: .*bytes but the manifest says",
    ),
  ],
)
def test_missing_or_corrupt_files_are_named(tmp_path, damage, match):
  store.save_dataset(full_toy(), tmp_path)
  damage(tmp_path)
  with pytest.raises(DataError, match=match):
    store.load_dataset(tmp_path)


def test_corrupt_npz_of_the_right_size(tmp_path):
  store.save_dataset(full_toy(), tmp_path)
  path = tmp_path / "dataset.npz"
  path.write_bytes(b"\0" * path.stat().st_size)
  with pytest.raises(DataError, match="dataset.npz: corrupt"):
    store.load_dataset(tmp_path)


def test_object_arrays_are_refused_at_load(tmp_path):
  store.save_dataset(full_toy(), tmp_path)
  path = tmp_path / "dataset.npz"
  with np.load(path) as npz:
    arrays = dict(npz)
  arrays["user_ids"] = np.array([{"a": 1}, None, 2, "x"], dtype=object)
  np.savez(path, **arrays)
  manifest = json.loads((tmp_path / "manifest.json").read_text())
  manifest["files"]["dataset.npz"]["bytes"] = path.stat().st_size
  (tmp_path / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(DataError, match="dataset.npz: corrupt.*pickle"):
    store.load_dataset(tmp_path)


def test_invalid_arrays_are_reported_with_the_file(tmp_path):
  store.save_dataset(full_toy(), tmp_path)
  path = tmp_path / "dataset.npz"
  with np.load(path) as npz:
    arrays = dict(npz)
  arrays["items"] = arrays["items"].copy()
  arrays["items"][0] = 99
  np.savez(path, **arrays)
  manifest = json.loads((tmp_path / "manifest.json").read_text())
  manifest["files"]["dataset.npz"]["bytes"] = path.stat().st_size
  (tmp_path / "manifest.json").write_text(json.dumps(manifest))
  with pytest.raises(DataError, match=r"dataset.npz: .*items\[0\].*out of range") as err:
    store.load_dataset(tmp_path)
  assert err.value.path == str(path)


def test_failed_save_leaves_old_store_intact(tmp_path, monkeypatch):
  store.save_dataset(full_toy(), tmp_path)
  before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

  def boom(*args, **kwargs):
    raise RuntimeError("disk full")

  monkeypatch.setattr(np, "savez", boom)
  with pytest.raises(RuntimeError):
    store.save_dataset(small_synthetic(20), tmp_path)
  assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # No temp files either.
  store.load_dataset(tmp_path)


def _python_calls(fn):
  """(fn(), Python function calls it made): how much of its work is a Python loop (any machine)."""
  profile = cProfile.Profile()
  profile.enable()
  try:
    out = fn()
  finally:
    profile.disable()
  return out, pstats.Stats(profile).total_calls


def _afk_like(num_users):
  """ABXI-afk-sized catalogue (~28k items, text embeddings), `num_users` users of 10-50 items."""
  rng = np.random.default_rng(0)
  n_a, n_b = 11837, 16258
  lengths = rng.integers(10, 51, num_users)
  seqs = [rng.choice(n_a + n_b, size=n, replace=False) + 1 for n in lengths]
  emb = rng.normal(size=(n_a + n_b + 1, 64)).astype(np.float32)
  emb[0] = 0
  return CDSRDataset.from_sequences(
    "afk-like",
    n_a,
    n_b,
    seqs,
    timestamps=[np.arange(n) for n in lengths],
    item_text_emb=emb,
    item_keys=np.array([""] + [f"B{i:09d}" for i in range(n_a + n_b)]),
  )


def _reload_calls(ds, folder):
  store.save_dataset(ds, folder)
  start = time.perf_counter()
  (loaded, manifest), calls = _python_calls(lambda: store.load_dataset(folder))
  print(
    f"reload of {loaded.num_interactions:,} interactions: "
    f"{(time.perf_counter() - start) * 1000:.1f} ms, {calls} Python calls"
  )
  return loaded, manifest, calls


def test_reload_does_no_per_user_python_work(tmp_path):
  """A reload is whole-array work: 7,000 users cost no more Python calls than 100 (a speed that
  holds on any machine; the milliseconds it takes are printed, not asserted).
  """
  _, _, few = _reload_calls(_afk_like(100), tmp_path / "few")
  ds = _afk_like(7000)
  loaded, _, many = _reload_calls(ds, tmp_path / "many")
  assert loaded.num_interactions == ds.num_interactions
  assert many < few + 0.1 * 7000, (few, many)


def test_reload_real_abxi_afk_does_no_per_user_python_work(tmp_path):
  path = require_data("abxi-afk")
  try:
    from orthoalign.datasets.readers.abxi import read_abxi
  except ImportError:
    pytest.skip("orthoalign.datasets.readers.abxi is not available yet")
  _, _, few = _reload_calls(_afk_like(100), tmp_path / "few")
  loaded, manifest, calls = _reload_calls(read_abxi(path), tmp_path / "afk")
  assert (loaded.num_users, loaded.num_interactions) == (7144, 173548)
  assert manifest["statistics"]["targets"]["test"] == {"A": 2419, "B": 4725, "total": 7144}
  assert calls < few + 0.1 * 7144, (few, calls)


class Builder:
  """A `build` callable that counts its calls."""

  def __init__(self, ds: CDSRDataset):
    self.ds, self.calls = ds, 0

  def __call__(self) -> CDSRDataset:
    self.calls += 1
    return self.ds


def test_cached_reuse_and_invalidation(tmp_path, capsys):
  src = tmp_path / "raw.txt"
  src.write_text("v1")
  out = tmp_path / "store"
  build = Builder(full_toy())
  kwargs = {"sources": [src], "recipe": "toy-v1", "params": {"k": 5}, "build": build}

  def run(**overrides) -> str:
    store.cached(out, **{**kwargs, **overrides})
    return capsys.readouterr().err

  err = run()
  # The first build said "rebuilding ... no readable manifest.json", as if the cache were broken.
  assert err.startswith("building dataset") and "not cached yet (first use" in err
  assert build.calls == 1
  err = run()
  assert err.startswith("loaded cached") and build.calls == 1
  assert err.count("\n") == 1

  # Touched but unchanged: re-hashed, reused, and the new mtime recorded (no re-hash next time).
  os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
  err = run()
  assert "loaded cached" in err and "content unchanged" in err and build.calls == 1
  manifest = json.loads((out / "manifest.json").read_text())
  assert manifest["sources"][0]["mtime_ns"] == src.stat().st_mtime_ns
  assert "content unchanged" not in run()

  src.write_text("v2")
  assert "rebuilding" in (err := run()) and "raw.txt changed (sha256" in err
  assert build.calls == 2
  assert "params['k'] changed from 5 to 6" in run(params={"k": 6})
  assert build.calls == 3
  assert "recipe changed from 'toy-v1' to 'toy-v2'" in run(recipe="toy-v2", params={"k": 6})
  other = tmp_path / "other.txt"
  other.write_text("x")
  assert "source files changed" in run(sources=[other], recipe="toy-v2", params={"k": 6})
  assert build.calls == 5


def test_cached_first_build_and_bad_lines(tmp_path, capsys):
  src = tmp_path / "raw.txt"
  src.write_text("v1")
  bad = BadLines("skip")

  def build():
    bad.handle(DataError("bad line", path=str(src), line=2))
    return full_toy()

  ds = store.cached(
    tmp_path / "store", sources=[src], recipe="r", params={}, build=build, bad_lines_report=bad
  )
  err = capsys.readouterr().err
  assert err.startswith("building dataset") and "not cached yet" in err
  assert ds.name == "toy"
  manifest = json.loads((tmp_path / "store" / "manifest.json").read_text())
  assert manifest["bad_lines"]["skipped"] == 1
  (tmp_path / "store" / "manifest.json").write_text("{not json")
  store.cached(tmp_path / "store", sources=[src], recipe="r", params={}, build=build)
  err = capsys.readouterr().err
  assert err.startswith("rebuilding dataset in") and "manifest.json is unreadable" in err


def test_cached_rebuilds_unusable_store_and_missing_source(tmp_path, capsys):
  src = tmp_path / "raw.txt"
  src.write_text("v1")
  out = tmp_path / "store"
  build = Builder(full_toy())
  kwargs = {"sources": [src], "recipe": "r", "params": {}, "build": build}
  store.cached(out, **kwargs)
  (out / "dataset.npz").write_bytes(b"garbage")
  capsys.readouterr()
  store.cached(out, **kwargs)
  assert "stored dataset is unusable" in capsys.readouterr().err and build.calls == 2
  src.unlink()
  with pytest.raises(DataError, match="raw.txt: cannot read source"):
    store.cached(out, **kwargs)
  assert "raw.txt is missing" in capsys.readouterr().err


def test_candidates_are_frozen_in_the_store(tmp_path, monkeypatch):
  ds = small_synthetic()
  store.save_dataset(ds, tmp_path)
  ds, _ = store.load_dataset(tmp_path)
  first = candidates.cached(tmp_path, ds, "test", 50, 3)
  path = tmp_path / "candidates_test_n50_s3.npy"
  assert path.exists()
  np.testing.assert_array_equal(first, sample_candidates(ds, eval_split(ds, "test"), 50, 3))
  assert not first.flags.writeable

  def fail(*args):
    raise AssertionError("should load the cached file")

  monkeypatch.setattr(candidates, "sample_candidates", fail)
  np.testing.assert_array_equal(candidates.cached(tmp_path, ds, "test", 50, 3), first)


def test_candidates_mismatch_and_corruption(tmp_path):
  ds = small_synthetic()
  store.save_dataset(ds, tmp_path)
  candidates.cached(tmp_path, ds, "valid", 20, 0)
  path = tmp_path / "candidates_valid_n20_s0.npy"
  with pytest.raises(DataError, match="candidates_valid_n20_s0.npy: .*does not fit"):
    candidates.cached(tmp_path, small_synthetic(seed=1), "valid", 20, 0)
  path.write_bytes(b"\x93NUMPY garbage")
  with pytest.raises(DataError, match="candidates_valid_n20_s0.npy: corrupt"):
    candidates.cached(tmp_path, ds, "valid", 20, 0)
  np.save(path, np.zeros((3, 21), np.int64))
  with pytest.raises(DataError, match="expected int32"):
    candidates.cached(tmp_path, ds, "valid", 20, 0)


def test_candidates_dropped_when_content_changes(tmp_path):
  ds = small_synthetic()
  store.save_dataset(ds, tmp_path)
  candidates.cached(tmp_path, ds, "test", 10, 0)
  store.save_dataset(ds, tmp_path)  # Same content: candidates stay valid and are kept.
  assert (tmp_path / "candidates_test_n10_s0.npy").exists()
  store.save_dataset(small_synthetic(seed=1), tmp_path)
  assert not (tmp_path / "candidates_test_n10_s0.npy").exists()


# Leak checks.


def test_checks_pass_on_library_splits():
  check_no_leakage(small_synthetic())
  check_no_leakage(user_level())
  ds = small_synthetic()
  cands = {s: sample_candidates(ds, eval_split(ds, s), 30, 0) for s in ("valid", "test")}
  check_no_leakage(ds, cands)


def test_check_training_prefix_covering_a_target():
  ds = CDSRDataset.from_sequences("toy", 4, 3, [np.array(s) for s in TOY_SEQS])
  t = train_lengths(ds).copy()
  t[2] = 2  # User 2 = [7, 6, 5]: a prefix of 2 covers the valid target 6 at position 1.
  with pytest.raises(
    DataError,
    match=r"'toy', user 2: valid target item 6 at position 1 is "
    r"inside the training prefix",
  ) as err:
    check_no_leakage(ds, train_len=t)
  assert err.value.key == "dataset 'toy', user 2"
  t[2] = 4
  with pytest.raises(DataError, match="user 2: training prefix length 4 outside 0..3"):
    check_no_leakage(ds, train_len=t)


def test_check_held_out_user_trains():
  ds = user_level()
  t = train_lengths(ds).copy()
  t[3] = 1
  with pytest.raises(
    DataError,
    match=r"user 3: held-out user .* contributes 1 training items, "
    "the first being item 2",
  ):
    check_no_leakage(ds, train_len=t)


@pytest.mark.parametrize(
  "edit, match",
  [
    (
      lambda c, ds, s: c.__setitem__((0, 1), ds.sequence(int(s.users[0]))[0]),
      "user {u0}: negative item .* in the user's own sequence",
    ),
    (lambda c, ds, s: c.__setitem__((0, 2), c[0, 1]), "user {u0}: negative item .* appears twice"),
    (lambda c, ds, s: c.__setitem__((0, 0), c[0, 1]), "user {u0}: column 0 is item"),
    (lambda c, ds, s: c.__setitem__((0, 1), 0), "user {u0}: negative item 0 out of range"),
  ],
)
def test_check_candidate_errors(edit, match):
  ds = small_synthetic()
  split = eval_split(ds, "test")
  cands = sample_candidates(ds, split, 30, 0)
  edit(cands, ds, split)
  with pytest.raises(DataError, match=match.format(u0=int(split.users[0]))):
    check_no_leakage(ds, {"test": cands})


def test_check_candidate_domain_and_shape():
  ds = small_synthetic()
  split = eval_split(ds, "test")
  cands = sample_candidates(ds, split, 30, 0)
  i = int(np.argmax(split.target_domain == 0))  # An A target gets a B negative.
  cands[i, 5] = ds.num_items
  with pytest.raises(
    DataError,
    match=f"user {split.users[i]}: negative item {ds.num_items} is not in the target's domain A",
  ):
    check_no_leakage(ds, {"test": cands})
  with pytest.raises(DataError, match=r"shape \(3, 31\)"):
    check_no_leakage(ds, {"test": cands[:3]})


def test_check_is_vectorised_on_many_users():
  rng = np.random.default_rng(0)
  num_users, n_a, n_b = 50_000, 5000, 5000
  lengths = rng.integers(3, 40, num_users)
  items = rng.integers(1, n_a + n_b + 1, int(lengths.sum()))
  ds = CDSRDataset(
    "big", n_a, n_b, np.concatenate([[0], np.cumsum(lengths)]), items, (items > n_a).astype(np.int8)
  )
  cands = sample_candidates(ds, eval_split(ds, "test"), 100, 0)
  start = time.perf_counter()
  _, calls = _python_calls(lambda: check_no_leakage(ds, {"test": cands}))
  print(
    f"leak check, 50k users x 100 negatives: {(time.perf_counter() - start) * 1000:.0f} ms, "
    f"{calls} Python calls"
  )
  # Whole-array work per chunk of ~100 users (a [rows, items] table of 2^20 cells: ~0.2 calls per
  # user here), where a loop over users would make at least one call per user.
  assert calls < 0.5 * num_users, calls


def _rewrite_npz(out_dir, edit) -> None:
  """Applies `edit` to the stored arrays and fixes the manifest's recorded size."""
  path = out_dir / "dataset.npz"
  with np.load(path) as npz:
    arrays = dict(npz)
  edit(arrays)
  np.savez(path, **arrays)
  manifest = json.loads((out_dir / "manifest.json").read_text())
  manifest["files"]["dataset.npz"]["bytes"] = path.stat().st_size
  (out_dir / "manifest.json").write_text(json.dumps(manifest))


def test_round_trip_merged_timeline_and_user_in_train(tmp_path):
  ds = CDSRDataset.from_sequences(
    "open-world",
    4,
    3,
    [np.array(s) for s in TOY_SEQS],
    user_split=np.array([USER_TRAIN, USER_TRAIN, USER_VALID, USER_TEST]),
    user_in_train=[False, False, False, True],
    merged_timeline=False,
  )
  manifest = store.save_dataset(ds, tmp_path)
  loaded, _ = store.load_dataset(tmp_path)
  assert loaded.merged_timeline is False
  np.testing.assert_array_equal(loaded.user_in_train, [False, False, False, True])
  assert loaded.user_in_train.dtype == np.bool_
  assert manifest["statistics"]["merged_timeline"] is False
  assert manifest["statistics"]["held_out_in_train"] == {"valid": 0, "test": 1}
  # The default (merged) round-trips too, and a dataset without user_in_train stores none.
  store.save_dataset(full_toy(), tmp_path / "merged")
  loaded, _ = store.load_dataset(tmp_path / "merged")
  assert loaded.merged_timeline is True and loaded.user_in_train is None
  with np.load(tmp_path / "merged" / "dataset.npz", allow_pickle=False) as npz:
    assert "user_in_train" not in npz.files and bool(npz["merged_timeline"])


def test_stores_without_merged_timeline_load_as_merged(tmp_path):
  """Stores written before the field existed have no `merged_timeline` member."""
  store.save_dataset(user_level(), tmp_path)
  _rewrite_npz(tmp_path, lambda arrays: arrays.pop("merged_timeline"))
  loaded, _ = store.load_dataset(tmp_path)
  assert loaded.merged_timeline is True


def test_malformed_merged_timeline_is_named(tmp_path):
  store.save_dataset(user_level(), tmp_path)
  _rewrite_npz(tmp_path, lambda arrays: arrays.update(merged_timeline=np.array([1, 0])))
  with pytest.raises(
    DataError,
    match=r"dataset.npz: merged_timeline is int64 \(2,\); expected "
    "a 0-d bool",
  ):
    store.load_dataset(tmp_path)
