"""`config.data` -> a CDSRDataset, through the dataset store's cache.

Formats (`data.format`): "synthetic" (the embedded generator, `data.synthetic.*`, no path) and the
file-based formats of datasets/formats.py.

Every file-based format is read once and cached as .npz + manifest under
`data.cache_dir/<format>-<folder name>-<hash of its path>/`; the cache is rebuilt when a source
file, the bad-line policy, the title files or the text-embedding settings change. Frozen
evaluation candidates are cached beside it (inputs/candidates.py, through `store_dir`).
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import hashlib
import os
from typing import Any
import weakref

import numpy as np

from orthoalign import errors
from orthoalign import fileio
from orthoalign.config import dicts
from orthoalign.datasets import badlines
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import formats
from orthoalign.datasets import store
from orthoalign.datasets import synthetic
from orthoalign.errors import DataError

CDSRDataset = dataset_lib.CDSRDataset
TEXT_METHODS = ("none", "tfidf", "minilm")

# Where each loaded dataset is cached, so what is derived from it can be cached beside it.
_STORE_DIRS: weakref.WeakKeyDictionary[CDSRDataset, str] = weakref.WeakKeyDictionary()


def attach_titles(ds: CDSRDataset, title_files: tuple[str, ...] | list[str]) -> CDSRDataset:
  """Adds titles from JSON files {item key: title} to items that have none, matched by item_keys."""
  if not title_files:
    return ds
  if ds.item_keys is None:
    raise DataError(
      "cannot attach titles: the dataset has no item keys (original item ids)", key="data.titles"
    )
  from orthoalign.datasets.readers import abxi  # its strict JSON-object reader names file and line

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
  from orthoalign.datasets import text_emb

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
  reader = formats.get(fmt)
  options = formats.reader_options(reader, reader_options)
  if text_emb not in TEXT_METHODS:
    raise DataError(f"expected one of {list(TEXT_METHODS)}, got {text_emb!r}", key="data.text_emb")
  if not path or not (os.path.isdir(path) or (reader.file_or_folder and os.path.isfile(path))):
    what = "a file or a folder" if reader.file_or_folder else "a folder"
    raise DataError(f"expected {what} of {fmt} files, got {path!r}", key="data.path")
  path = os.path.abspath(path)
  digest = hashlib.sha1(path.encode()).hexdigest()[:10]
  out_dir = os.path.join(
    cache_dir or fileio.cache_root(), f"{fmt}-{os.path.basename(path)}-{digest}"
  )
  bad = badlines.BadLines(on_bad_line)
  titles = tuple(os.path.abspath(t) for t in titles)

  report: dict[str, Any] = {}

  def build() -> CDSRDataset:
    ds = reader.read(path, bad, **options, **({"report": report} if reader.reports else {}))
    bad.print_summary()
    ds = attach_titles(ds, titles)
    return attach_text_emb(ds, text_emb, text_dim)

  ds = store.cached(
    out_dir,
    sources=reader.source_files(path, options) + list(titles),
    recipe=f"read:{fmt}",
    params={
      "on_bad_line": on_bad_line,
      "text_emb": text_emb,
      "text_dim": text_dim,
      **({"reader_options": options} if options else {}),
    },
    build=build,
    bad_lines_report=bad,
    manifest_extra=lambda: report,
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
  dicts.choice("data.format", data.format, formats.FORMATS)
  dicts.choice("data.on_bad_line", data.on_bad_line, ("error", "skip"))
  dicts.choice("data.text_emb", data.text_emb, TEXT_METHODS)
  dicts.check_section(config, "data.reader_options")
  options = dict(data.reader_options)
  if data.format == formats.SYNTHETIC and options:
    raise errors.ConfigError(
      f"config key data.reader_options={options}: data.format='synthetic' reads no files and "
      "takes no reader options"
    )
  if data.format != formats.SYNTHETIC:  # before any file is read
    try:
      formats.reader_options(formats.get(data.format), options)
    except DataError as e:
      option = str(e.key).removeprefix("data.reader_options.")
      if option in options:  # "config key K=V: expected ...", as every config error reads
        detail = e.detail.split("; ", 1)[-1] if e.detail.startswith("got ") else e.detail
        raise errors.ConfigError(f"config key {e.key}={options[option]!r}: {detail}") from None
      raise errors.ConfigError(f"config key {e.key}: {e.detail}") from None
  if data.format != formats.SYNTHETIC and not data.path:
    what = "the file or folder" if formats.get(data.format).file_or_folder else "the folder"
    raise errors.ConfigError(
      f"config key data.path is empty; data.format={data.format!r} needs {what} of its "
      "files, e.g. --config.data.path=../shared/data/abxi-afk"
    )
  if data.format == formats.SYNTHETIC:
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
  if fmt == formats.SYNTHETIC:
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


def store_dir(ds: CDSRDataset) -> str | None:
  """The store folder a dataset was loaded through (`load_path`), where derived arrays such as
  the frozen evaluation candidates are cached beside it; None for a dataset built in memory.
  """
  return _STORE_DIRS.get(ds)
