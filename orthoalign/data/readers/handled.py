"""Reader and writer for LLM4CDSR's "handled" format (data/<ds>/handled/).

Two files:

  <pair>.pkl    pickle of (inter_seq, domain_seq): {user id: np.array of LOCAL
                item ids}, {user id: np.array of domain flags 0/1}; user ids
                and local item ids are 1-based, per domain.
  id_map.json   {"user_dict": {"str2id": {name: uid}, "id2str": {"uid": name}},
                 "item_dict": {"0": {"str2id", "id2str"}, "1": {...},
                               "item_count": {"0": nA, "1": nB}}}

Global id = local id for A and nA + local id for B. The pickle is never
unpickled with the stock loader: `safe_load_pickle` admits only the few
builtins and numpy names that plain containers of numeric arrays need, and
rebuilds the arrays itself from checked parts, so a malicious or corrupt file
fails with a DataError instead of running code or crashing the interpreter.
See docs/data.md ("Baseline data formats").
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import pathlib
import pickle
import pickletools
from typing import Any

import numpy as np

from orthoalign.data import dataset as dataset_lib
from orthoalign.data.badlines import BadLines
from orthoalign.data.readers import abxi
from orthoalign.errors import DataError

# Protocol 4 pickles numpy arrays without out-of-band buffers and is read by
# every Python LLM4CDSR supports (>= 3.4).
PICKLE_PROTOCOL = 4


# Plain numeric dtypes, as numpy pickles them: np.dtype(code, align, copy).
_NUMERIC_CODES = frozenset(
  ["b1"] + [f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)] + ["f2", "f4", "f8"]
)
# The state numpy gives every plain numeric dtype, after the byte order.
_NUMERIC_DTYPE_STATE = (None, None, None, -1, -1, 0)
_MAX_NDIM = 32


def _refuse(detail: str) -> pickle.UnpicklingError:
  return pickle.UnpicklingError(detail)


class _DtypeProxy:
  """Stands for a numpy dtype until its pickled state has been checked.

  numpy's own `dtype.__setstate__` trusts its input: a corrupt state (e.g. an
  item size of -1) crashes the interpreter. So the state is checked here and
  the real dtype is built from the checked code alone.
  """

  __slots__ = ("code", "dtype")
  __hash__ = None  # Never a dict key or set member: keeps resolving simple.

  def __init__(self, code: str):
    self.code = code
    self.dtype: np.dtype | None = None

  def __setstate__(self, state: Any) -> None:
    if not (
      isinstance(state, tuple)
      and len(state) == 8
      and abxi.is_int(state[0])
      and state[0] == 3
      and state[1] in ("<", ">", "|", "=")
      and state[2:] == _NUMERIC_DTYPE_STATE
    ):
      raise _refuse(f"dtype state {repr(state)[:80]}; expected that of a plain numeric dtype")
    dtype = np.dtype(self.code)
    self.dtype = dtype.newbyteorder(state[1]) if state[1] in "<>" else dtype


class _ArrayProxy:
  """Stands for an ndarray until its pickled state has been checked."""

  __slots__ = ("array",)
  __hash__ = None

  def __init__(self):
    self.array: np.ndarray | None = None

  def __setstate__(self, state: Any) -> None:
    if not (
      isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and isinstance(state[3], bool)
    ):
      raise _refuse(f"array state {repr(state)[:80]}; expected (1, shape, dtype, is_fortran, data)")
    _, shape, dtype, fortran, data = state
    self.array = _make_array(data, dtype, shape, "F" if fortran else "C")


def _checked_dtype(dtype: Any) -> np.dtype:
  if not isinstance(dtype, _DtypeProxy) or dtype.dtype is None:
    raise _refuse(f"dtype {repr(dtype)[:40]}; expected a pickled numeric dtype")
  return dtype.dtype


def _make_array(data: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
  """Builds an array from checked parts; the bytes are copied, never shared."""
  dtype = _checked_dtype(dtype)
  if not (
    isinstance(shape, tuple)
    and len(shape) <= _MAX_NDIM
    and all(abxi.is_int(n) and 0 <= n < 2**40 for n in shape)
  ):
    raise _refuse(f"shape {repr(shape)[:40]}; expected a tuple of sizes")
  if not isinstance(data, (bytes, bytearray)) or order not in ("C", "F"):
    raise _refuse("array data must be bytes in C or F order")
  if len(data) != math.prod(shape) * dtype.itemsize:
    raise _refuse(f"{len(data)} data bytes for shape {shape} of {dtype}")
  flat = np.frombuffer(bytes(data), dtype)
  return flat.reshape(shape, order=order).copy(order=order)


class _SafeCallable:
  """An allowed global: an immutable object (no attributes a BUILD can set)."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    raise _refuse(f"{type(self).__name__} is not callable")


class _Ndarray(_SafeCallable):
  """`numpy.ndarray`: only ever an argument of `_reconstruct`."""

  __slots__ = ()


class _Dtype(_SafeCallable):
  """`numpy.dtype(code, align, copy)` for plain numeric codes."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if not (1 <= len(args) <= 3 and isinstance(args[0], str) and args[0] in _NUMERIC_CODES):
      raise _refuse(f"dtype{repr(args)[:40]}; only plain numeric dtypes are allowed")
    return _DtypeProxy(args[0])


class _Reconstruct(_SafeCallable):
  """`numpy.core.multiarray._reconstruct(ndarray, shape, code)`."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if not args or not isinstance(args[0], _Ndarray):
      raise _refuse("_reconstruct of anything but numpy.ndarray")
    return _ArrayProxy()


class _FromBuffer(_SafeCallable):
  """`numpy.core.numeric._frombuffer(buf, dtype, shape, order)` (protocol 5)."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if len(args) != 4:
      raise _refuse("_frombuffer expects (buffer, dtype, shape, order)")
    return _make_array(*args)


class _Scalar(_SafeCallable):
  """`numpy.core.multiarray.scalar(dtype, bytes)`: e.g. an np.int64 key."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if len(args) != 2:
      raise _refuse("scalar expects (dtype, bytes)")
    return _make_array(args[1], args[0], (1,), "C")[0]


class _Latin1Encode(_SafeCallable):
  """`_codecs.encode(text, 'latin1')`: how protocol <= 2 pickles bytes."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if not (len(args) == 2 and isinstance(args[0], str) and args[1] in ("latin1", "latin-1")):
      raise _refuse(f"_codecs.encode{repr(args)[:40]}; expected latin1 text")
    return codecs.encode(args[0], "latin1")


class _EmptyBytes(_SafeCallable):
  """`bytes()`: how protocol <= 2 pickles b''. `bytes(n)` would allocate n."""

  __slots__ = ()

  def __call__(self, *args: Any) -> Any:
    if args:
      raise _refuse("bytes(...) with arguments; expected bytes()")
    return b""


def _allowed_globals() -> dict[tuple[str, str], Any]:
  """The globals a pickle of builtins and numpy arrays may name."""
  allowed: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _Ndarray(),
    ("numpy", "dtype"): _Dtype(),
    ("_codecs", "encode"): _Latin1Encode(),
  }
  # numpy 1 pickles name numpy.core.*, numpy 2 numpy._core.*.
  for core in ("numpy.core", "numpy._core"):
    allowed[(f"{core}.multiarray", "_reconstruct")] = _Reconstruct()
    allowed[(f"{core}.multiarray", "scalar")] = _Scalar()
    allowed[(f"{core}.numeric", "_frombuffer")] = _FromBuffer()
  builtins = {
    t.__name__: t for t in (dict, list, tuple, set, frozenset, int, float, complex, bool, str)
  }
  builtins["bytes"] = _EmptyBytes()
  for name, obj in builtins.items():
    # Protocol <= 2 pickles spell the module the Python 2 way.
    for module in ("builtins", "__builtin__"):
      allowed[(module, name)] = obj
  return allowed


_ALLOWED = _allowed_globals()


class _RestrictedUnpickler(pickle.Unpickler):
  """Unpickles builtins and numpy arrays only; refuses any other global.

  No numpy code ever sees the pickle's data: dtypes and arrays come back as
  proxies whose states are checked, then `_resolve` swaps in real arrays.
  """

  def __init__(self, data: bytes, path: pathlib.Path):
    super().__init__(io.BytesIO(data))
    self._path = path

  def find_class(self, module: str, name: str) -> Any:
    obj = _ALLOWED.get((module, name))
    if obj is None:
      # Raised before anything is imported: the refused name never runs.
      raise DataError(
        f"refusing to load {module}.{name}: only builtins and numpy arrays "
        "are allowed (a pickle naming other globals can run code)",
        path=self._path,
      )
    return obj

  def persistent_load(self, pid: Any) -> Any:
    raise DataError(
      "refusing a persistent id: only builtins and numpy arrays are allowed", path=self._path
    )


def _resolve(obj: Any, seen: set[int]) -> Any:
  """Replaces proxies by real arrays / dtypes, in place where mutable."""
  if isinstance(obj, (_ArrayProxy, _DtypeProxy)):
    value = obj.array if isinstance(obj, _ArrayProxy) else obj.dtype
    if value is None:
      raise _refuse(f"{type(obj).__name__} without its state")
    return value
  if isinstance(obj, tuple):
    return tuple(_resolve(x, seen) for x in obj)
  if isinstance(obj, (list, dict)) and id(obj) not in seen:
    seen.add(id(obj))  # Memo references can make cycles.
    if isinstance(obj, list):
      obj[:] = [_resolve(x, seen) for x in obj]
    else:
      for key, value in obj.items():
        obj[key] = _resolve(value, seen)
  return obj


_OPCODES = {op.name: op.code for op in pickletools.opcodes}
_PUT_CODES = frozenset(_OPCODES[name] for name in ("PUT", "BINPUT", "LONG_BINPUT"))
_MEMOIZE_CODE, _FRAME_CODE = _OPCODES["MEMOIZE"], _OPCODES["FRAME"]


def _prescan(data: bytes) -> None:
  """Walks the opcodes without running them; raises on unsafe sizes.

  The C unpickler trusts two kinds of numbers before it checks them against
  the data: a memo index (PUT with index i allocates a memo of ~2i slots,
  gigabytes for a corrupt index) and the length of counted bytes (allocated
  before reading). `pickletools.genops` checks every length against the
  bytes that remain; the memo indices are checked here.

  Args:
    data: the pickle.

  Raises:
    pickle.UnpicklingError, ValueError: if the data is not a sound pickle.
  """
  memo_size = 0
  for op, arg, pos in pickletools.genops(data):
    code = op.code  # Cheaper to test than op.name: this loop is hot.
    if code in _PUT_CODES:
      # A pickler numbers memo entries 0, 1, 2, ...
      if arg > memo_size:
        raise _refuse(f"memo index {arg} at byte {pos} with {memo_size} entries so far")
      memo_size = max(memo_size, arg + 1)
    elif code == _MEMOIZE_CODE:
      memo_size += 1
    elif code == _FRAME_CODE and arg > len(data) - pos:
      raise _refuse(f"frame of {arg} bytes at byte {pos}; only {len(data) - pos} remain")


def _unpickle(
  data: bytes, path: pathlib.Path, expected: str = "(inter_seq, domain_seq) of numpy arrays"
) -> Any:
  """`safe_load_pickle` on bytes; `path` and `expected` only word errors."""
  try:
    _prescan(data)
    return _resolve(_RestrictedUnpickler(data, path).load(), set())
  except DataError:
    raise
  except Exception as e:  # noqa: BLE001  # pylint: disable=broad-except
    # Corrupt bytes surface as almost any exception type from pickle; all of
    # them mean the same thing to the caller.
    raise DataError(
      f"not a valid pickle ({type(e).__name__}: {e}); expected {expected}", path=path
    ) from None


def safe_load_pickle(
  path: str | os.PathLike[str], expected: str = "(inter_seq, domain_seq) of numpy arrays"
) -> Any:
  """Loads a pickle that may hold only builtins and numpy arrays.

  Arrays must have plain numeric dtypes (bool, int, uint, float); they are
  rebuilt from checked shape, dtype and bytes, never by numpy's unpickling
  code (which trusts its input).

  Args:
    path: the pickle file.
    expected: what the file should hold, for the message of a corrupt one.

  Returns:
    The unpickled object.

  Raises:
    DataError: naming the file, if it names any other global (nothing it
      names is ever imported or called) or is not a valid pickle.
  """
  path = pathlib.Path(path)
  try:
    data = path.read_bytes()
  except OSError as e:
    raise DataError(f"cannot open ({e.strerror})", path=path) from None
  return _unpickle(data, path, expected)


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
