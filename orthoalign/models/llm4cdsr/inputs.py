"""LLM4CDSR's frozen inputs: the authors' or PCA item tables, user profiles, text-less items."""

from __future__ import annotations

import os

import ml_collections
import numpy as np

from orthoalign import errors
from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets.readers import llm4cdsr_tables
from orthoalign.models.llm4cdsr.config import Config


def _pca(x: np.ndarray, dim: int) -> np.ndarray:
  """Rows of x projected on their top-`dim` principal components (sklearn's PCA, no whitening)."""
  x = x - x.mean(0, keepdims=True)
  _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
  return (x @ vt[:dim].T).astype(np.float32)


def author_tables(
  ds: dataset_lib.CDSRDataset, config: ml_collections.ConfigDict
) -> llm4cdsr_tables.AuthorTables | None:
  """The authors' embedding pickles when `model.llm_emb_dir` finds them, else None.

  "auto" looks in the data folder of a `handled` dataset (where upstream keeps them), "none" never
  looks, anything else is a folder that must hold them. Read once per dataset and folder.

  Raises:
    ConfigError: model.llm_emb_dir names a folder without the authors' item files.
    DataError: a file is present but malformed (readers/llm4cdsr_tables.py).
  """
  m = config.model
  where = m.llm_emb_dir
  if where == "none" or (where == "auto" and config.data.format != "handled"):
    return None
  folder = os.path.abspath(config.data.path if where == "auto" else where)
  item_file = m.llm_emb_file
  user_file = m.user_emb_file

  def read() -> llm4cdsr_tables.AuthorTables | None:
    tables = llm4cdsr_tables.load(
      folder, np.diff(ds.offsets), ds.num_items_a, ds.num_items_b, item_file, user_file
    )
    if tables is None and where != "auto":
      raise errors.ConfigError(
        f"config key model.llm_emb_dir={where!r}: "
        f"no {list(llm4cdsr_tables.item_file_names(item_file))} "
        "there (model.llm_emb_file names them); 'auto' = the handled data folder, 'none' = "
        "orthoalign's substitutes"
      )
    return tables

  return ds.cached(("llm4cdsr/author", folder, item_file, user_file), read)


def frozen_tables(
  ds: dataset_lib.CDSRDataset,
  cfg: Config,
  author: llm4cdsr_tables.AuthorTables | None = None,
) -> dict[str, np.ndarray]:
  """Item tables: the authors' (`author`) or made as their notebooks do, by joint PCA (global) and
  per-domain PCA (local) of `ds.item_text_emb`. float32, row 0 = padding (zeros). Kept with the
  dataset (`CDSRDataset.cached`): parameter matching builds the same model at many FFN widths,
  and an SVD of a large catalog's text embeddings takes seconds.
  """
  key = (
    bool(cfg.global_emb),
    int(cfg.global_dim),
    bool(cfg.local_emb),
    int(cfg.width),
    author.folder if author else None,
  )
  return ds.cached(("llm4cdsr/tables", *key), lambda: _frozen_tables(ds, cfg, author))


def _text_rows(
  ds: dataset_lib.CDSRDataset, author: llm4cdsr_tables.AuthorTables | None
) -> np.ndarray | None:
  """[nA+nB+1, D] rows by global id that say which items have text, or None."""
  if author is not None:
    return np.concatenate([np.zeros((1, author.item_all.shape[1]), np.float32), author.item_all])
  return ds.item_text_emb


def missing_text_index(
  ds: dataset_lib.CDSRDataset, author: llm4cdsr_tables.AuthorTables | None = None
) -> tuple[dict[str, np.ndarray], str | None]:
  """Row maps of the items without text (cached per dataset), and a line saying how many per domain.

  An item is without text where its text row (the authors' joint table, else `ds.item_text_emb`)
  is all zero (text_emb.py's row for a blank title). Returns {"m": int32 [nA+nB+1] by global id,
  "a": [nA+1], "b": [nB+1] by local id}: the item's row in that table's trainable rows (0, 1, ... in
  id order), -1 where it has text and for padding (id 0); {} when there is no text at all. The
  line is None then too.
  """

  def find() -> tuple[dict[str, np.ndarray], str | None]:
    out, note = {}, None
    rows = _text_rows(ds, author)
    if rows is not None:
      na = ds.num_items_a
      missing = ~np.any(rows[1:] != 0, axis=1)
      for name, part in (("m", missing), ("a", missing[:na]), ("b", missing[na:])):
        index = np.full(len(part) + 1, -1, np.int32)
        index[1:][part] = np.arange(int(part.sum()), dtype=np.int32)
        out[name] = index
      note = (
        f"LLM4CDSR: items without text (all-zero text embedding): A {int(missing[:na].sum())} / "
        f"{na}, B {int(missing[na:].sum())} / {ds.num_items_b} (model.missing_text: 'learned' = "
        "own trainable rows, 'zero' = one shared frozen row)"
      )
    return out, note

  return ds.cached(("llm4cdsr/missing", author.folder if author else None), find)


def _frozen_tables(
  ds: dataset_lib.CDSRDataset,
  cfg: Config,
  author: llm4cdsr_tables.AuthorTables | None,
) -> dict[str, np.ndarray]:
  out = {}
  pad = lambda x: np.concatenate([np.zeros((1, x.shape[1]), np.float32), x])
  if author is not None:  # upstream's tables as they are: its global width is the file's
    if cfg.global_emb:
      out["global_table"] = pad(author.item_all)
    if cfg.local_emb:
      if author.item_a.shape[1] != cfg.width:
        raise errors.ConfigError(
          f"config key model.width={cfg.width}: with the authors' local tables it must "
          f"equal their width, {author.item_a.shape[1]} ({author.files[1]}), as upstream requires; "
          "or set --config.model.local_emb=False"
        )
      out["table_a"], out["table_b"] = pad(author.item_a), pad(author.item_b)
    return out
  emb = ds.item_text_emb
  if emb is None:
    return out
  na = ds.num_items_a
  items = emb[1:]
  if cfg.global_emb:
    g = min(cfg.global_dim, items.shape[1], items.shape[0])
    out["global_table"] = pad(_pca(items, g))
  if cfg.local_emb:
    d = cfg.width
    for name, part in (("table_a", items[:na]), ("table_b", items[na:])):
      if min(part.shape) < d:
        raise errors.ConfigError(
          f"model.local_emb needs item text embeddings of at least model.width={d} dims and "
          f"items per domain (got {part.shape[1]} dims, {part.shape[0]} items); set "
          f"--config.model.local_emb=False or a smaller model.width"
        )
      out[name] = pad(_pca(part, d))
  return out


def report_inputs(
  ds: dataset_lib.CDSRDataset,
  config: ml_collections.ConfigDict,
  author: llm4cdsr_tables.AuthorTables | None,
  profiles: str,
) -> str:
  """The line saying where the item tables and user profiles come from."""
  if author is not None:
    items = f"the authors' files in {author.folder}: {author.describe()}"
  elif ds.item_text_emb is not None:
    source = (
      "synthetic" if config.data.format == "synthetic" else f"data.text_emb={config.data.text_emb}"
    )
    where = config.model.llm_emb_dir
    why = (
      "model.llm_emb_dir='none'"
      if where == "none"
      else "model.llm_emb_dir='auto' uses the authors' tables only where their data folder has them"
    )
    items = (
      f"PCA of the dataset's item text embeddings ({source}), the substitute for the "
      f"authors' LLM tables ({why})"
    )
  else:
    items = "none: trainable ID embeddings (no item text and no authors' files)"
  return f"LLM4CDSR: item tables = {items}; user profiles (beta loss) = {profiles}"
