"""`safe_load_pickle`: a pickle of builtins and numeric numpy arrays, loaded without running it.

The stock unpickler imports and calls whatever a file names. This loader admits only the few
builtins and numpy names that plain containers of numeric arrays need (`_allowed_globals`),
prescans the opcodes, and rebuilds every array itself from a checked shape, dtype and bytes, so a
malicious or corrupt file fails with a DataError naming it instead of running code or crashing
the interpreter. LLM4CDSR's handled pickles (handled.py) and embedding tables
(llm4cdsr_tables.py) are read through it.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pathlib
import pickle
import pickletools
from typing import Any

import numpy as np

from orthoalign.datasets.readers import abxi  # is_int: a JSON integer, never a bool
from orthoalign.errors import DataError

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
