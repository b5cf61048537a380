"""Reader and writer for LLM4CDSR's "handled" format (data/<ds>/handled/).

Two files:

  <pair>.pkl    pickle of (inter_seq, domain_seq): {user id: np.array of LOCAL
                item ids}, {user id: np.array of domain flags 0/1}; user ids
                and local item ids are 1-based, per domain.
  id_map.json   {"user_dict": {"str2id": {name: uid}, "id2str": {"uid": name}},
                 "item_dict": {"0": {"str2id", "id2str"}, "1": {...},
                               "item_count": {"0": nA, "1": nB}}}

Global id = local id for A and nA + local id for B. The pickle is never
unpickled with the stock loader but with `safe_pickle.safe_load_pickle`, so a
malicious or corrupt file fails with a DataError instead of running code.
See docs/data.md ("Baseline data formats").
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import pickle
from typing import Any

import numpy as np

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import abxi
from orthoalign.datasets.readers import format as format_lib
from orthoalign.datasets.readers.safe_pickle import safe_load_pickle
from orthoalign.errors import DataError

# Protocol 4 pickles numpy arrays without out-of-band buffers and is read by
# every Python LLM4CDSR supports (>= 3.4).
PICKLE_PROTOCOL = 4


def _json_int(value: Any) -> int | None:
  """`value` as an int if it is a JSON integer or an integer-valued key."""
  if abxi.is_int(value):
    return value
  if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
    return int(value)
  return None


class _IdMap:
  """The parts of id_map.json the reader needs, checked."""

  def __init__(self, path: pathlib.Path, bad: BadLines | None = None):
    obj, text = abxi.read_json_object(path, bad)

    def fail(detail: str, key: str) -> DataError:
      # A missing key has no line: point at the object that should hold it.
      line = abxi.json_line(text, key) or abxi.json_line(text, "item_dict") or 1
      return DataError(detail, path=path, line=line, key=key)

    user_dict, item_dict = obj.get("user_dict"), obj.get("item_dict")
    if not isinstance(user_dict, dict) or not isinstance(item_dict, dict):
      raise DataError('expected objects "user_dict" and "item_dict"', path=path, line=1)
    counts = item_dict.get("item_count")
    if not isinstance(counts, dict):
      raise fail('expected an object {"0": nA, "1": nB}', "item_count")
    self.counts = []
    for d in ("0", "1"):
      count = counts.get(d)
      if not abxi.is_int(count) or count < 1:
        raise fail(f"item_count[{d!r}] = {count!r}; expected an integer >= 1", "item_count")
      self.counts.append(count)
    num_a, num_b = self.counts

    id2strs = []
    for d in ("0", "1"):
      domain_dict = item_dict.get(d, {})
      id2str = domain_dict.get("id2str", {}) if isinstance(domain_dict, dict) else None
      if not isinstance(id2str, dict):
        raise fail(f'item_dict[{d!r}]: expected an object whose "id2str" is an object', d)
      id2strs.append(id2str)
    # Original item ids by global id; None when the map names no item. If it
    # names any, each id2str must name every local id once (which also bounds
    # this array by the file's size, whatever item_count claims).
    self.item_keys: np.ndarray | None = None
    if any(id2strs):
      self.item_keys = np.full(num_a + num_b + 1, None, dtype=object)
      for d, id2str, offset in zip("01", id2strs, (0, num_a)):
        count = self.counts[int(d)]
        if len(id2str) != count:
          raise fail(
            f"item_dict[{d!r}].id2str has {len(id2str)} entries; "
            f"expected item_count[{d!r}] = {count} (one per local "
            "id)",
            d,
          )
        for key, name in id2str.items():
          local = _json_int(key)
          if local is None or not 1 <= local <= count:
            raise fail(
              f"item_dict[{d!r}].id2str key {abxi.show(key)}; expected a local id 1..{count}", key
            )
          if not isinstance(name, str):
            raise fail(f"item name {name!r}; expected a string", key)
          if self.item_keys[offset + local] is not None:
            raise fail(f"item_dict[{d!r}].id2str names local id {local} twice", key)
          self.item_keys[offset + local] = name
      self.item_keys[0] = ""

    id2str = user_dict.get("id2str")
    if id2str is not None and not isinstance(id2str, dict):
      raise fail("user_dict.id2str must be an object", "id2str")
    # None: no names, the dataset's user_ids are then the pickle's user ids.
    self.user_names: dict[int, str] | None = None
    if id2str is not None:
      self.user_names = {}
      for key, name in id2str.items():
        uid = _json_int(key)
        if uid is None or not isinstance(name, str):
          raise fail(
            f"user_dict.id2str entry {abxi.show(key)}: "
            f'{abxi.show(repr(name))}; expected "<uid>": "<name>"',
            key,
          )
        self.user_names[uid] = name


def _user_sequence(uid: Any, items: Any, domains: Any, counts: list[int]) -> np.ndarray:
  """Checks one user's arrays; returns global ids. Raises DataError."""
  try:
    items = np.asarray(items)
    domains = np.asarray(domains)
  except Exception as e:  # noqa: BLE001  # pylint: disable=broad-except
    # Whatever the pickle held, failing to make an array is a data error.
    raise DataError(f"not an array ({type(e).__name__}: {e})") from None
  for arr, what in ((items, "item ids"), (domains, "domain flags")):
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
      raise DataError(f"{what}: shape {arr.shape}, dtype {arr.dtype}; expected a 1-D integer array")
  if items.shape != domains.shape:
    raise DataError(
      f"{items.shape[0]} item ids but {domains.shape[0]} domain flags; expected equal lengths"
    )
  if items.shape[0] == 0:
    raise DataError(f"user {uid} has no interactions; expected >= 1")
  domains = domains.astype(np.int64)
  if np.any((domains != 0) & (domains != 1)):
    j = int(np.argmax((domains != 0) & (domains != 1)))
    raise DataError(f"position {j}: domain flag {domains[j]}; expected 0 or 1")
  items = items.astype(np.int64)
  upper = np.where(domains == 0, counts[0], counts[1])
  bad = (items < 1) | (items > upper)
  if np.any(bad):
    j = int(np.argmax(bad))
    raise DataError(
      f"position {j}: local id {items[j]} in domain {domains[j]}; expected 1..{upper[j]}"
    )
  return np.where(domains == 0, items, items + counts[0])


def read_handled(
  pickle_path: str | os.PathLike[str],
  id_map_path: str | os.PathLike[str],
  bad: BadLines | None = None,
) -> dataset_lib.CDSRDataset:
  """Reads an LLM4CDSR handled pickle and its id_map.json.

  Args:
    pickle_path: the `(inter_seq, domain_seq)` pickle.
    id_map_path: the id_map.json beside it.
    bad: policy for malformed users (a pickle has no lines: the error names
      the user instead); None = raise on the first.

  Returns:
    A `CDSRDataset` named after the pickle, users in ascending user id, with
    `user_ids` (names from user_dict.id2str, else the pickle's ids) and
    `item_keys` (from item_dict id2str; None if it names none). No timestamps:
    sequences are time-ordered but the format keeps no times.

  Raises:
    DataError: naming the file, for a refused global, a corrupt pickle or
      id map (always) or a malformed user (under the 'error' policy), or if no
      user is left.
  """
  bad = BadLines() if bad is None else bad
  pickle_path = pathlib.Path(pickle_path)
  id_map = _IdMap(pathlib.Path(id_map_path), bad)
  obj = safe_load_pickle(pickle_path)
  if not (
    isinstance(obj, (tuple, list)) and len(obj) == 2 and all(isinstance(x, dict) for x in obj)
  ):
    raise DataError(
      f"holds a {type(obj).__name__}; expected a pair (inter_seq, domain_seq) of dicts",
      path=pickle_path,
    )
  inter_seq, domain_seq = obj

  found = []
  # Dict order, not a set: skipped users are then reported in file order.
  uids = list(inter_seq) + [u for u in domain_seq if u not in inter_seq]
  for uid in uids:
    is_uid = isinstance(uid, (int, np.integer)) and not isinstance(uid, bool)
    key = f"user {int(uid)}" if is_uid else f"user {repr(uid)[:40]}"
    try:
      if not is_uid:
        raise DataError(f"user id of type {type(uid).__name__}; expected an integer")
      if uid not in inter_seq or uid not in domain_seq:
        where = "domain_seq" if uid in inter_seq else "inter_seq"
        raise DataError(
          f"missing from {where}; expected the same users in inter_seq and domain_seq"
        )
      if id_map.user_names is not None and int(uid) not in id_map.user_names:
        raise DataError("not in id_map.json user_dict.id2str")
      seq = _user_sequence(uid, inter_seq[uid], domain_seq[uid], id_map.counts)
    except DataError as e:
      bad.handle(DataError(e.detail, path=pickle_path, key=key))
      continue
    found.append((int(uid), seq))
  if not found:
    raise DataError(
      "no valid users; expected (inter_seq, domain_seq) with >= 1 user", path=pickle_path
    )
  found.sort(key=lambda pair: pair[0])
  uids = [uid for uid, _ in found]
  if id_map.user_names is not None:
    user_ids = np.array([id_map.user_names[u] for u in uids])
  else:
    user_ids = np.array(uids, np.int64)
  num_a, num_b = id_map.counts
  return dataset_lib.CDSRDataset.from_sequences(
    pickle_path.stem,
    num_a,
    num_b,
    [seq for _, seq in found],
    user_ids=user_ids,
    item_keys=(None if id_map.item_keys is None else id_map.item_keys.astype(str)),
  )


def write_handled(
  ds: dataset_lib.CDSRDataset,
  pickle_path: str | os.PathLike[str],
  id_map_path: str | os.PathLike[str],
) -> None:
  """Writes `ds` in LLM4CDSR's handled format.

  User u becomes user id u + 1; its name is `str(ds.user_ids[u])` (or the id
  itself when `user_ids` is None). Item names are `ds.item_keys` (the global
  id as text where a key is missing). Timestamps, text embeddings, titles and
  a user-level split are not part of the format and are dropped.

  Args:
    ds: the dataset.
    pickle_path: where to write the `(inter_seq, domain_seq)` pickle.
    id_map_path: where to write id_map.json.
  """
  num_a = ds.num_items_a
  local, domain = ds.to_local(ds.items)
  inter_seq, domain_seq = {}, {}
  for u in range(ds.num_users):
    lo, hi = ds.offsets[u], ds.offsets[u + 1]
    inter_seq[u + 1] = local[lo:hi].astype(np.int64)
    domain_seq[u + 1] = domain[lo:hi].astype(np.int64)

  names = [str(u + 1) if ds.user_ids is None else str(ds.user_ids[u]) for u in range(ds.num_users)]
  user_dict = {
    "str2id": {name: u + 1 for u, name in enumerate(names)},
    "id2str": {str(u + 1): name for u, name in enumerate(names)},
  }
  item_dict: dict[str, Any] = {}
  for d, (first, last) in enumerate(((1, num_a), (num_a + 1, ds.num_items))):
    str2id, id2str = {}, {}
    for g in range(first, last + 1):
      key = str(g)
      if ds.item_keys is not None and ds.item_keys[g]:
        key = str(ds.item_keys[g])
      str2id[key] = g - first + 1
      id2str[str(g - first + 1)] = key
    item_dict[str(d)] = {"str2id": str2id, "id2str": id2str}
  item_dict["item_count"] = {"0": num_a, "1": ds.num_items_b}

  with open(pickle_path, "wb") as f:
    pickle.dump((inter_seq, domain_seq), f, protocol=PICKLE_PROTOCOL)
  with open(id_map_path, "w", encoding="utf-8") as f:
    json.dump({"user_dict": user_dict, "item_dict": item_dict}, f, ensure_ascii=False)


# Other pickles the authors' handled folders hold beside the interaction pickle: embedding tables
# (readers/llm4cdsr_tables.py), their caches, titles, graphs and the cold-start split.
_HANDLED_AUX_PREFIXES = ("itm_emb", "item_emb", "usr_", "user_", "title_", "adj")


def find_files(path: str, inter_file: str = "") -> tuple[str, str]:
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
        "one with --config.data.reader_options=\"{'inter_file': '<name without .pkl>'}\" "
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


def _read_folder(path: str, bad: BadLines, inter_file: str = "") -> dataset_lib.CDSRDataset:
  return read_handled(*find_files(path, inter_file), bad)


FORMAT = format_lib.Format(
  name="handled",
  summary="LLM4CDSR's handled pickle + id_map.json (an upstream data/<ds>/handled/ folder)",
  read=_read_folder,
  options={"inter_file": ""},
  sources=lambda path, **options: list(find_files(path, **options)),
)
