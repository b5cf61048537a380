"""`config.data` -> a CDSRDataset, through the dataset store's cache.

Formats (`data.format`):
  synthetic  the embedded generator (`data.synthetic.*`; no path)
  abxi       ABXI's preprocessed files (folder with *_preprocessed.txt, map_item_50.txt,
             map_user_50.txt)
  llmcdsr    LLMCDSR's files (folder with train_A/B/overlap, valid, test, num.txt, item_set_*,
             text_*)
  handled    LLM4CDSR's handled pickle + id_map.json (an upstream data/<ds>/handled/ folder); reader
             option inter_file (upstream's --inter_file) where it holds several interaction
             pickles. The authors' embedding pickles beside them are read by the LLM4CDSR model
             (readers/llm4cdsr_tables.py), not here.
  imvae      IM-VAE / AMID open-world CSVs (folder with one <pair>_train.csv, one
             <pair>_test_csu.csv); reader options (`data.reader_options`): valid_fraction (0.1),
             valid_seed (0)
  prepared   a folder written by `python -m orthoalign.data.prepare` (or `store.save_dataset`)

Every file-based format is read once and cached as .npz + manifest under
`data.cache_dir/<format>-<folder name>-<hash of its path>/`; the cache is rebuilt when a source
file, the bad-line policy, the title files or the text-embedding settings change. Frozen
evaluation candidates are cached beside it (`candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import glob
import hashlib
import os
from typing import Any
import weakref

import numpy as np

from orthoalign import errors
from orthoalign import fileio
from orthoalign.config import dicts
from orthoalign.data import badlines
from orthoalign.data import candidates as candidates_lib
from orthoalign.data import dataset as dataset_lib
from orthoalign.data import store
from orthoalign.data import synthetic
from orthoalign.errors import DataError

CDSRDataset = dataset_lib.CDSRDataset
TEXT_METHODS = ("none", "tfidf", "minilm")

# Where each loaded dataset is cached, so its frozen candidates are cached beside it.
_STORE_DIRS: weakref.WeakKeyDictionary[CDSRDataset, str] = weakref.WeakKeyDictionary()


def _read_abxi(path: str, bad: badlines.BadLines) -> CDSRDataset:
  from orthoalign.data.readers import abxi

  return abxi.read_abxi(path, bad)


def _read_llmcdsr(path: str, bad: badlines.BadLines) -> CDSRDataset:
  from orthoalign.data.readers import llmcdsr

  return llmcdsr.read_llmcdsr(path, bad)


def _read_imvae(path: str, bad: badlines.BadLines, **options: Any) -> CDSRDataset:
  from orthoalign.data.readers import imvae

  return imvae.read_imvae(path, bad, **options)


def _imvae_defaults() -> dict[str, Any]:
  from orthoalign.data.readers import imvae

  return {"valid_fraction": imvae.DEFAULT_VALID_FRACTION, "valid_seed": imvae.DEFAULT_VALID_SEED}


# Other pickles the authors' handled folders hold beside the interaction pickle: embedding tables
# (readers/llm4cdsr_tables.py), their caches, titles, graphs and the cold-start split.
_HANDLED_AUX_PREFIXES = ("itm_emb", "item_emb", "usr_", "user_", "title_", "adj")


def _handled_files(path: str, inter_file: str = "") -> tuple[str, str]:
  """The interaction pickle and id_map.json of a handled folder; DataError if not exactly one."""
  id_map = os.path.join(path, "id_map.json")
  if inter_file:
    pickles = [os.path.join(path, f"{inter_file}.pkl")]
    if not os.path.isfile(pickles[0]):
      raise DataError(
        f"data.reader_options.inter_file={inter_file!r}: no {inter_file}.pkl in the folder",
        path=path,
      )
  else:
    pickles = sorted(
      f
      for f in glob.glob(os.path.join(path, "*.pkl"))
      if not os.path.basename(f).startswith(_HANDLED_AUX_PREFIXES) and not f.endswith("_cold.pkl")
    )
    if len(pickles) > 1:
      raise DataError(
        f"several interaction pickles {[os.path.basename(f) for f in pickles]}; name "
        "one with --config.data.reader_options.inter_file=<name without .pkl> "
        "(upstream's --inter_file)",
        path=path,
      )
  if len(pickles) != 1 or not os.path.isfile(id_map):
    raise DataError(
      f"expected exactly one interaction *.pkl and an id_map.json, found "
      f"{len(pickles)} pickle(s){'' if os.path.isfile(id_map) else ' and no id_map.json'}",
      path=path,
    )
  return pickles[0], id_map


def _read_handled(path: str, bad: badlines.BadLines, inter_file: str = "") -> CDSRDataset:
  from orthoalign.data.readers import handled

  return handled.read_handled(*_handled_files(path, inter_file), bad)


def _read_prepared(path: str, bad: badlines.BadLines) -> CDSRDataset:
  del bad
  return store.load_dataset(path)[0]


# format -> reader(path, bad, **reader_options) -> CDSRDataset
READERS: dict[str, Callable[..., CDSRDataset]] = {
  "abxi": _read_abxi,
  "llmcdsr": _read_llmcdsr,
  "handled": _read_handled,
  "prepared": _read_prepared,
  "imvae": _read_imvae,
}
FORMATS = ("synthetic",) + tuple(READERS)
# format -> () -> {reader option: default}, for the readers that take options.
READER_OPTIONS: dict[str, Callable[[], dict[str, Any]]] = {
  "imvae": _imvae_defaults,
  "handled": lambda: {"inter_file": ""},
}


def _reader_options(fmt: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
  """The format's reader options with defaults filled in; DataError for an unknown key."""
  resolved = READER_OPTIONS[fmt]() if fmt in READER_OPTIONS else {}
  unknown = sorted(set(options or {}) - set(resolved))
  if unknown:
    raise DataError(
      f"unknown option(s) {unknown} for format {fmt!r}; valid: {sorted(resolved)}",
      key="data.reader_options",
    )
  resolved.update(options or {})
  return resolved


def _source_files(fmt: str, path: str, options: Mapping[str, Any]) -> list[str]:
  if fmt == "handled":
    return list(_handled_files(path, **options))
  if fmt == "prepared":
    return [os.path.join(path, store.MANIFEST_FILE), os.path.join(path, store.DATASET_FILE)]
  if fmt == "imvae":
    from orthoalign.data.readers import imvae

    return [str(f) for f in imvae.find_files(path)]
  return sorted(
    f
    for f in glob.glob(os.path.join(path, "*"))
    if os.path.isfile(f) and not os.path.basename(f).startswith((".", "README"))
  )


def attach_titles(ds: CDSRDataset, title_files: tuple[str, ...] | list[str]) -> CDSRDataset:
  """Adds titles from JSON files {item key: title} to items that have none, matched by item_keys."""
  if not title_files:
    return ds
  if ds.item_keys is None:
    raise DataError(
      "cannot attach titles: the dataset has no item keys (original item ids)", key="data.titles"
    )
  from orthoalign.data.readers import abxi  # its strict JSON-object reader names file and line

  table: dict[str, str] = {}
  for f in title_files:
    data, _ = abxi.read_json_object(f)
    table.update({str(k): str(v) for k, v in data.items() if v})
  titles = ds.item_titles if ds.item_titles is not None else np.full(ds.num_items + 1, "", object)
  merged = np.array([t if t else table.get(k, "") for k, t in zip(ds.item_keys, titles)], dtype=str)
  merged[0] = ""
  return dataclasses.replace(ds, item_titles=merged)


def attach_text_emb(ds: CDSRDataset, method: str, dim: int) -> CDSRDataset:
  """Item text embeddings from titles (`data.text_emb`); a no-op for "none" or no titles."""
  if method == "none" or ds.item_titles is None:
    return ds
  from orthoalign.data import text_emb

  return dataclasses.replace(
    ds, item_text_emb=text_emb.dataset_text_emb(ds, method=method, dim=dim)
  )


def load_path(
  fmt: str,
  path: str,
  *,
  on_bad_line: str = "error",
  cache_dir: str | None = None,
  titles: tuple[str, ...] = (),
  text_emb: str = "none",
  text_dim: int = 384,
  reader_options: Mapping[str, Any] | None = None,
) -> CDSRDataset:
  """Loads a file-based dataset through the cache (see the module docstring).

  `reader_options` go to the format's reader (`imvae`: valid_fraction, valid_seed; `handled`:
  inter_file, the interaction pickle's name where the folder holds several)
  and, with their defaults filled in, into the cache params, so changing one rebuilds the cache.
  """
  if fmt not in READERS:
    raise DataError(f"expected one of {list(FORMATS)}, got {fmt!r}", key="data.format")
  options = _reader_options(fmt, reader_options)
  if text_emb not in TEXT_METHODS:
    raise DataError(f"expected one of {list(TEXT_METHODS)}, got {text_emb!r}", key="data.text_emb")
  if not path or not os.path.isdir(path):
    raise DataError(f"expected a folder of {fmt} files, got {path!r}", key="data.path")
  path = os.path.abspath(path)
  digest = hashlib.sha1(path.encode()).hexdigest()[:10]
  out_dir = os.path.join(
    cache_dir or fileio.cache_root(), f"{fmt}-{os.path.basename(path)}-{digest}"
  )
  bad = badlines.BadLines(on_bad_line)
  titles = tuple(os.path.abspath(t) for t in titles)

  def build() -> CDSRDataset:
    ds = READERS[fmt](path, bad, **options)
    bad.print_summary()
    ds = attach_titles(ds, titles)
    return attach_text_emb(ds, text_emb, text_dim)

  ds = store.cached(
    out_dir,
    sources=_source_files(fmt, path, options) + list(titles),
    recipe=f"read:{fmt}",
    params={
      "on_bad_line": on_bad_line,
      "text_emb": text_emb,
      "text_dim": text_dim,
      **({"reader_options": options} if options else {}),
    },
    build=build,
    bad_lines_report=bad,
  )
  _STORE_DIRS[ds] = out_dir
  return ds


# The data keys the loader reads (configs/base.py has them all).
_KEYS = tuple(
  f"data.{k}"
  for k in ("format", "path", "on_bad_line", "cache_dir", "titles", "text_emb", "text_dim")
)


def check_config(config: Any) -> None:
  """The `data.*` section's checks (orthoalign.config.validation runs them before anything else).

  Raises:
    ConfigError: naming the first invalid key, its value and what is allowed.
  """
  dicts.require(config, _KEYS, "the dataset loader", "configs/base.py")
  data = config.data
  dicts.choice("data.format", data.format, FORMATS)
  dicts.choice("data.on_bad_line", data.on_bad_line, ("error", "skip"))
  dicts.choice("data.text_emb", data.text_emb, TEXT_METHODS)
  if data.format != "synthetic" and not data.path:
    raise errors.ConfigError(
      f"config key data.path is empty; data.format={data.format!r} needs the folder of its "
      "files, e.g. --config.data.path=../shared/data/abxi-afk"
    )
  dicts.check_section(config, "data.reader_options")
  if data.format == "synthetic":
    dicts.check_section(config, "data.synthetic")
    try:  # the generator's own checks, before anything is written
      synthetic.from_config_dict(data.synthetic)
    except DataError as e:
      key = str(e.key).split()[-1].strip("'")
      raise errors.ConfigError(f"config key data.synthetic.{key}: {e.detail}") from None
  titles = data.titles
  if not isinstance(titles, (tuple, list)) or not all(isinstance(t, str) and t for t in titles):
    raise errors.ConfigError(
      f"config key data.titles={titles!r} must be a tuple of file paths (JSON files {{item id: "
      "title}), e.g. '(\"titles.json\",)'"
    )


def load(data_cfg: Any) -> CDSRDataset:
  """Loads (or generates) the dataset `config.data` names (an upgraded, checked section)."""
  fmt = data_cfg.format
  if fmt == "synthetic":
    return synthetic.generate(synthetic.from_config_dict(data_cfg.synthetic))
  options = data_cfg.reader_options  # a ConfigDict, or a dict in a config built by hand
  options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
  return load_path(
    fmt,
    data_cfg.path,
    on_bad_line=data_cfg.on_bad_line,
    cache_dir=data_cfg.cache_dir or None,
    titles=tuple(data_cfg.titles),
    text_emb=data_cfg.text_emb,
    text_dim=data_cfg.text_dim,
    reader_options=options,
  )


def candidates(ds: CDSRDataset, split: str, num_negatives: int, seed: int) -> np.ndarray:
  """Frozen evaluation candidates [E, 1+N] (target first): cached beside the dataset when it has a
  store folder, else sampled (deterministically) in memory.
  """
  out_dir = _STORE_DIRS.get(ds)
  if out_dir is not None:
    return store.candidates(out_dir, ds, split, num_negatives, seed)
  return candidates_lib.sample_candidates(
    ds, dataset_lib.eval_split(ds, split), num_negatives, seed
  )
