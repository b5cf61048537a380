"""JAX's persistent compilation cache, on by default for every entry point.

A grid's programs of equal shapes (seeds folded into replicas, the same model at another learning
rate, a resumed run) then compile once per machine: later processes load the compiled executable
from disk. The cache lives beside the dataset cache (`$ORTHOALIGN_CACHE` or ~/.cache/orthoalign),
in `jax-compile/`, bounded to MAX_SIZE_BYTES with least-recently-used eviction (JAX's own LRU
cache). Deleting the folder is always safe: the next run compiles again.

  ORTHOALIGN_COMPILE_CACHE=/path/to/folder   another folder
  ORTHOALIGN_COMPILE_CACHE=off               no persistent cache
"""

from __future__ import annotations

import os

import jax

from orthoalign import errors
from orthoalign import fileio

ENV = "ORTHOALIGN_COMPILE_CACHE"
MAX_SIZE_BYTES = 4 * 2**30


def default_dir() -> str | None:
  """The cache folder this process uses; None when disabled with ORTHOALIGN_COMPILE_CACHE=off."""
  value = os.environ.get(ENV, "")
  if value.lower() in ("off", "none", "0", "false"):
    return None
  return value or os.path.join(fileio.cache_root(), "jax-compile")


def enable(path: str | None = None) -> str | None:
  """Turns the persistent cache on (before the first compilation); returns its folder or None.

  A folder already set through JAX's own `jax_compilation_cache_dir` (flag or environment, e.g. by
  the tests) is kept. Every program is cached, however short its compilation: CPU runs compile many
  sub-second programs (evaluation, initialisation) whose sum still matters.

  Raises:
    ConfigError: the folder cannot be written (its path and the variable that sets it named).
  """
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  path = path or default_dir()
  if path is None:
    return None
  try:
    fileio.writable_dir(path, "the JAX compilation cache", errors.RunError)
  except errors.RunError as e:
    raise errors.RunError(
      f"{e} (set another folder with {ENV}=<folder>, or {ENV}=off; the "
      "folder defaults to $ORTHOALIGN_CACHE/jax-compile)"
    ) from None
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
  return path
