"""Prepared-dataset store: one folder per dataset, reloaded in milliseconds.

Layout of a store folder:

  dataset.npz                     every CDSRDataset array (np.savez, no pickle)
  manifest.json                   what the npz holds and how it was made (see `save_dataset`)
  candidates_<split>_n<N>_s<seed>.npy
                                  frozen evaluation candidates (inputs/candidates.py)

Every file is written to a temp name in the same folder, fsynced and renamed, so a reader sees
either the old or the new file, never a half-written one. The npz is renamed before the manifest,
and the manifest records the npz size, so a manifest never vouches for an incomplete npz.

`cached` wraps a reader: it returns the stored dataset while its recipe, params and source files
are unchanged, and otherwise rebuilds and stores it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import datetime
import glob
import hashlib
import itertools
import json
import os
import sys
from typing import Any
import zipfile

import numpy as np

import orthoalign
from orthoalign.datasets import summary
from orthoalign.datasets.checks import check_no_leakage
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.errors import DataError
from orthoalign.fileio import atomic_write_binary
from orthoalign.fileio import jsonable as _jsonable
from orthoalign.fileio import writable_dir
from orthoalign.fileio import write_json

# Bump whenever the npz keys, dtypes or meaning change: older stores are then rebuilt by `cached`.
FORMAT_VERSION = 1
DATASET_FILE = "dataset.npz"
MANIFEST_FILE = "manifest.json"
_REQUIRED = ("offsets", "items", "domains")
_OPTIONAL = (
  "timestamps",
  "item_text_emb",
  "user_ids",
  "user_split",
  "item_keys",
  "item_titles",
  "user_in_train",
)
# Manifest keys that `save_dataset` computes; manifest_extra may not override them.
_RESERVED = (
  "format_version",
  "orthoalign_version",
  "name",
  "created",
  "statistics",
  "files",
  "content_sha256",
)
_CANDIDATES_GLOB = "candidates_*.npy"
# npz member suffixes of a packed string array (see `_pack_strings`).
_UTF8, _OFFSETS, _WIDTH = "__utf8", "__offsets", "__width"
_HASH_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
  """Hex sha256 of a file, streamed in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
      digest.update(chunk)
  return digest.hexdigest()


def _now() -> str:
  return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def source_info(path: str | os.PathLike[str], sha256: str | None = None) -> dict[str, Any]:
  """{'path' (absolute), 'bytes', 'mtime', 'mtime_ns', 'sha256'} of a source file."""
  path = os.path.abspath(path)
  try:
    st = os.stat(path)
  except OSError as e:
    raise DataError(f"cannot read source file: {e.strerror}", path=path) from None
  return {
    "path": path,
    "bytes": st.st_size,
    "mtime": st.st_mtime,
    "mtime_ns": st.st_mtime_ns,
    "sha256": sha256 or sha256_file(path),
  }


def _storable(ds: CDSRDataset) -> dict[str, np.ndarray]:
  """The npz members: plain numeric arrays only (loadable without pickle); strings packed."""
  arrays = {
    "format_version": np.array(FORMAT_VERSION, np.int64),
    "name": np.array(ds.name, dtype=str),
    "num_items_a": np.array(ds.num_items_a, np.int64),
    "num_items_b": np.array(ds.num_items_b, np.int64),
    # 0-d bool; stores written before the field existed lack it and load as True.
    "merged_timeline": np.array(ds.merged_timeline, np.bool_),
    # Stores written before the field existed lack it and load as ("A", "B").
    "domain_names": np.array(ds.domain_names, dtype=str),
  }
  for field in _REQUIRED + _OPTIONAL:
    value = getattr(ds, field)
    if value is None:
      continue
    if value.dtype == object and value.ndim == 1:
      # Titles, keys and user ids: any Python objects are stored as their str() (no pickle).
      arrays.update({field + k: v for k, v in _pack_strings(value).items()})
      continue
    if value.dtype.kind not in "biufUS":
      raise DataError(
        f"dtype {value.dtype} cannot be stored without pickle; expected numbers or strings",
        key=f"dataset {ds.name!r}, {field}",
      )
    if value.dtype.kind == "U" and value.ndim == 1:
      arrays.update({field + k: v for k, v in _pack_strings(value).items()})
    else:
      arrays[field] = value
  return arrays


def _pack_strings(value: np.ndarray) -> dict[str, np.ndarray]:
  """A string array as UTF-8 bytes + code-point offsets + the longest length.

  Fixed-width unicode pads every string to the longest at 4 bytes a character: LLMCDSR's titles
  take 125 MB that way and 3 MB as UTF-8.
  """
  strings = [str(s) for s in value.tolist()]
  offsets = np.zeros(len(strings) + 1, np.int64)
  np.cumsum([len(s) for s in strings], out=offsets[1:])
  blob = np.frombuffer("".join(strings).encode("utf-8"), np.uint8)
  width = max((len(t) for t in strings), default=0)
  return {_UTF8: blob, _OFFSETS: offsets, _WIDTH: np.array(width, np.int64)}


def _unpack_strings(arrays: dict[str, np.ndarray], field: str) -> np.ndarray:
  """Inverse of `_pack_strings`; raises UnicodeDecodeError / ValueError on corrupt members."""
  text = arrays.pop(field + _UTF8).tobytes().decode("utf-8")
  offsets = arrays.pop(field + _OFFSETS).tolist()
  arrays.pop(field + _WIDTH)  # informational only
  if not offsets or offsets[0] != 0 or offsets[-1] != len(text):
    raise ValueError(f"{field}{_OFFSETS} does not span the text")
  out = np.empty(len(offsets) - 1, dtype=object)
  out[:] = [text[a:b] for a, b in itertools.pairwise(offsets)]
  return out


def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
  """A fingerprint of the stored arrays (names, dtypes, shapes, bytes); zip timestamps vary."""
  digest = hashlib.sha256()
  for key in sorted(arrays):
    value = np.ascontiguousarray(arrays[key])
    digest.update(f"{key}:{value.dtype.str}:{value.shape};".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def _read_manifest(out_dir: str) -> dict[str, Any]:
  path = os.path.join(out_dir, MANIFEST_FILE)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise DataError(
      "missing; expected a store folder written by orthoalign.datasets.store.save_dataset",
      path=path,
    ) from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f"unreadable manifest: {e}", path=path) from None
  if not isinstance(manifest, dict):
    raise DataError("expected a JSON object", path=path)
  return manifest


def save_dataset(
  ds: CDSRDataset,
  out_dir: str | os.PathLike[str],
  *,
  manifest_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
  """Stores `ds` as `out_dir/dataset.npz` plus `out_dir/manifest.json`.

  Manifest fields: format_version, orthoalign_version, name, created (UTC ISO 8601), statistics
  (`summary.compute(ds)`: `ds.summary()`, length percentiles, valid/test targets per domain),
  recipe, params, sources ([{path, bytes, mtime, mtime_ns, sha256}] of manifest_extra['sources']),
  bad_lines, files ({'dataset.npz': {bytes}}), content_sha256 (fingerprint of the arrays), plus
  every other manifest_extra key. Frozen candidate files are deleted when the content changes.

  Args:
    ds: the dataset.
    out_dir: the store folder (created if needed).
    manifest_extra: optional 'sources' (file paths, hashed here), 'recipe', 'params',
      'bad_lines' and any other JSON-serialisable keys to record.

  Returns:
    The manifest as written.

  Raises:
    DataError: if an array cannot be stored without pickle, a source cannot be read, or the
      folder cannot be written.
    ValueError: if manifest_extra tries to override a computed key.
  """
  out_dir = os.fspath(out_dir)
  extra = dict(manifest_extra or {})
  clash = sorted(set(extra) & set(_RESERVED))
  if clash:
    raise ValueError(f"manifest_extra may not set {clash}; they are computed")
  sources = extra.pop("sources", None) or []
  if isinstance(sources, (str, os.PathLike)):
    sources = [sources]
  # Precomputed infos (dicts, from `cached`) are kept; paths are stat'ed and hashed.
  sources = [s if isinstance(s, dict) else source_info(s) for s in sources]
  arrays = _storable(ds)
  content = _content_sha256(arrays)
  statistics = summary.compute(ds)  # Everything that can fail runs before the first write.
  writable_dir(out_dir, "the dataset store", DataError)

  npz_path = os.path.join(out_dir, DATASET_FILE)
  old_content = None
  try:
    old_content = _read_manifest(out_dir).get("content_sha256")
  except DataError:
    pass
  try:
    if old_content != content:
      # Candidates were drawn against the old content; they go before the npz changes.
      for path in glob.glob(os.path.join(glob.escape(out_dir), _CANDIDATES_GLOB)):
        os.unlink(path)
    atomic_write_binary(npz_path, lambda f: np.savez(f, **arrays))
  except OSError as e:
    raise DataError(f"cannot write the dataset store: {e.strerror or e}", path=npz_path) from None

  manifest = {
    "format_version": FORMAT_VERSION,
    "orthoalign_version": orthoalign.__version__,
    "name": ds.name,
    "created": _now(),
    "statistics": statistics,
    "recipe": extra.pop("recipe", None),
    "params": extra.pop("params", {}),
    "sources": sources,
    "bad_lines": extra.pop("bad_lines", None),
    "files": {DATASET_FILE: {"bytes": os.path.getsize(npz_path)}},
    "content_sha256": content,
    **extra,
  }
  manifest = _jsonable(manifest)
  _write_manifest(out_dir, manifest)
  return manifest


def _write_manifest(out_dir: str, manifest: dict[str, Any]) -> None:
  path = os.path.join(out_dir, MANIFEST_FILE)
  try:
    write_json(path, manifest)
  except OSError as e:
    raise DataError(f"cannot write the dataset store: {e.strerror or e}", path=path) from None


def load_dataset(out_dir: str | os.PathLike[str]) -> tuple[CDSRDataset, dict[str, Any]]:
  """Loads a store folder written by `save_dataset` and runs the leak checks.

  Args:
    out_dir: the store folder.

  Returns:
    (dataset, manifest).

  Raises:
    DataError: naming the missing, corrupt or inconsistent file, or the leaking user.
  """
  out_dir = os.fspath(out_dir)
  manifest = _read_manifest(out_dir)
  manifest_path = os.path.join(out_dir, MANIFEST_FILE)
  if manifest.get("format_version") != FORMAT_VERSION:
    raise DataError(
      f"format_version {manifest.get('format_version')!r}; this orthoalign reads "
      f"{FORMAT_VERSION} (rebuild the store)",
      path=manifest_path,
    )
  npz_path = os.path.join(out_dir, DATASET_FILE)
  try:
    size = os.path.getsize(npz_path)
  except OSError as e:
    raise DataError(f"cannot read: {e.strerror}", path=npz_path) from None
  expected = manifest.get("files", {}).get(DATASET_FILE, {}).get("bytes")
  if expected is not None and size != expected:
    raise DataError(
      f"{size} bytes but the manifest says {expected}; the store was modified or a "
      "save was interrupted (rebuild it)",
      path=npz_path,
    )
  try:
    with np.load(npz_path, allow_pickle=False) as npz:
      arrays = {key: npz[key] for key in npz.files}
    for field in _OPTIONAL:
      if field + _UTF8 in arrays:
        arrays[field] = _unpack_strings(arrays, field)
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
    raise DataError(f"corrupt or unreadable npz: {e}", path=npz_path) from None
  missing = [
    k
    for k in ("format_version", "name", "num_items_a", "num_items_b", *_REQUIRED)
    if k not in arrays
  ]
  if missing:
    raise DataError(f"missing arrays {missing}", path=npz_path)
  if int(arrays["format_version"]) != FORMAT_VERSION:
    raise DataError(
      f"format_version {int(arrays['format_version'])}; expected {FORMAT_VERSION}", path=npz_path
    )
  merged = arrays.get("merged_timeline", np.array(True))  # Absent in older stores: merged.
  if merged.shape != () or merged.dtype != np.bool_:
    raise DataError(
      f"merged_timeline is {merged.dtype} {merged.shape}; expected a 0-d bool", path=npz_path
    )
  names = arrays.get("domain_names", np.array(["A", "B"]))
  if names.shape != (2,) or names.dtype.kind != "U":
    raise DataError(
      f"domain_names is {names.dtype} {names.shape}; expected two strings", path=npz_path
    )
  try:
    ds = CDSRDataset(
      name=str(arrays["name"]),
      domain_names=tuple(str(n) for n in names),
      num_items_a=int(arrays["num_items_a"]),
      num_items_b=int(arrays["num_items_b"]),
      merged_timeline=bool(merged),
      **{k: arrays[k] for k in _REQUIRED},
      **{k: arrays.get(k) for k in _OPTIONAL},
    )
  except DataError as e:
    raise DataError(e.detail, path=npz_path, key=e.key) from None
  try:
    check_no_leakage(ds)
  except DataError as e:
    raise DataError(e.detail, path=npz_path, key=e.key) from None
  return ds, manifest


def _params_diff(old: Any, new: Any) -> str | None:
  """Describes the first difference between two JSON params dicts, or None if equal."""
  if old == new:
    return None
  if isinstance(old, dict) and isinstance(new, dict):
    for key in sorted(set(old) | set(new), key=str):
      if old.get(key, "<unset>") != new.get(key, "<unset>"):
        return (
          f"params[{key!r}] changed from {old.get(key, '<unset>')!r} to {new.get(key, '<unset>')!r}"
        )
  return f"params changed from {old!r} to {new!r}"


def _stale_reason(
  manifest: dict[str, Any], sources: list[str], recipe: str, params: Any
) -> tuple[str | None, list[dict[str, Any]], list[str]]:
  """Why the store cannot be reused (None if it can), refreshed source infos, touched files."""
  if manifest.get("format_version") != FORMAT_VERSION:
    return (f"format_version {manifest.get('format_version')!r} != {FORMAT_VERSION}", [], [])
  if manifest.get("recipe") != recipe:
    return f"recipe changed from {manifest.get('recipe')!r} to {recipe!r}", [], []
  diff = _params_diff(manifest.get("params"), params)
  if diff:
    return diff, [], []
  stored = manifest.get("sources") or []
  stored_paths = [s.get("path") for s in stored]
  if stored_paths != sources:
    return f"source files changed from {stored_paths} to {sources}", [], []
  infos, touched = [], []
  for old in stored:
    path = old["path"]
    try:
      st = os.stat(path)
    except OSError:
      return f"source {path} is missing", [], []
    if st.st_size == old.get("bytes") and st.st_mtime_ns == old.get("mtime_ns"):
      infos.append(old)
      continue
    # Size or mtime moved: only the content decides.
    info = source_info(path)
    if info["sha256"] != old.get("sha256"):
      reason = (
        f"source {path} changed (sha256 {info['sha256'][:12]}.. != stored "
        f"{str(old.get('sha256'))[:12]}..)"
      )
      return reason, [], []
    infos.append(info)
    touched.append(path)
  return None, infos, touched


def cached(
  out_dir: str | os.PathLike[str],
  *,
  sources: Sequence[str | os.PathLike[str]],
  recipe: str,
  params: dict[str, Any],
  build: Callable[[], CDSRDataset],
  bad_lines_report: Any = None,
  manifest_extra: Callable[[], dict[str, Any]] | None = None,
) -> CDSRDataset:
  """Returns the stored dataset if it is still valid, else builds, stores and returns it.

  The store is reused when its manifest has this module's FORMAT_VERSION, the same recipe and
  params, the same source paths, and each source has its recorded size and mtime. A source whose
  size or mtime moved is re-hashed: same sha256 -> reused (the manifest's mtime is refreshed),
  different -> rebuilt. Prints one line to stderr: 'loaded cached ...' or 'rebuilding ... because
  <reason>' ('building ...' on first use).

  Args:
    out_dir: the store folder.
    sources: the files `build` reads.
    recipe: names the reader / preprocessing (bump it, e.g. 'abxi-v2', when the reader changes).
    params: JSON-serialisable options of the recipe.
    build: makes the dataset from the sources.
    bad_lines_report: recorded as the manifest's bad_lines: a dict, or an object with a
      `report()` method (e.g. `BadLines`), read after `build` has run.
    manifest_extra: returns more manifest keys (e.g. the filters' passes), called after `build`.

  Returns:
    The dataset.
  """
  out_dir = os.fspath(out_dir)
  sources = [os.path.abspath(s) for s in sources]
  params = json.loads(json.dumps(_jsonable(params)))  # Compare as the manifest will store them.
  reason, first_use = None, False
  try:
    manifest = _read_manifest(out_dir)
  except DataError:
    manifest = None
    # A first use is the common case: say so, so that it does not read as a broken cache.
    first_use = not os.path.exists(os.path.join(out_dir, MANIFEST_FILE))
    reason = (
      "it is not cached yet (first use of these files and settings)"
      if first_use
      else f"its {MANIFEST_FILE} is unreadable"
    )
  if manifest is not None:
    reason, infos, touched = _stale_reason(manifest, sources, recipe, params)
    if reason is None:
      try:
        ds, manifest = load_dataset(out_dir)
      except DataError as e:
        reason = f"the stored dataset is unusable ({e})"
      else:
        note = ""
        if touched:
          manifest["sources"] = infos
          _write_manifest(out_dir, manifest)
          note = f" ({len(touched)} source(s) touched, content unchanged)"
        print(
          f"loaded cached dataset {ds.name!r} from {out_dir} (recipe {recipe}, "
          f"{ds.num_users:,} users, {ds.num_interactions:,} interactions){note}",
          file=sys.stderr,
        )
        return ds
  print(
    f"{'building' if first_use else 'rebuilding'} dataset in {out_dir} because {reason}",
    file=sys.stderr,
  )
  # Before the (possibly long) build: a cache folder that cannot be written is one clear error.
  writable_dir(
    out_dir,
    "the dataset cache (config data.cache_dir, default $ORTHOALIGN_CACHE or ~/.cache/orthoalign)",
    DataError,
  )
  infos = [source_info(s) for s in sources]  # Before build: a source edited meanwhile re-triggers.
  ds = build()
  check_no_leakage(ds)  # Same guarantee as a load from the store.
  report = bad_lines_report.report() if hasattr(bad_lines_report, "report") else bad_lines_report
  save_dataset(
    ds,
    out_dir,
    manifest_extra={
      **(manifest_extra() if manifest_extra is not None else {}),
      "sources": infos,
      "recipe": recipe,
      "params": params,
      "bad_lines": report,
    },
  )
  return ds
