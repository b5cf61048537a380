"""Frozen, seeded evaluation candidates (cached beside their dataset) and per-user history
matrices.

Sampled-metric protocol: each evaluation case ranks its target against N
negatives drawn uniformly, without replacement, from the TARGET's domain,
excluding every item anywhere in the user's sequence (history, valid and test
targets). The candidates are a pure function of (dataset, split, N, seed), so
every model and every run is scored against the same lists.
"""

import operator
import os
import zlib

import numpy as np

from orthoalign.datasets import load
from orthoalign.datasets.checks import check_no_leakage
from orthoalign.datasets.dataset import CDSRDataset
from orthoalign.datasets.splits import SPLITS
from orthoalign.datasets.splits import EvalSplit
from orthoalign.datasets.splits import eval_split
from orthoalign.errors import DataError
from orthoalign.fileio import atomic_write_binary

# Per-chunk working-set limits for the vectorised sampler: cells of the
# [rows, n_domain+1] scratch tables and random draws held at once. Small enough
# to stay cache-friendly, large enough that Python overhead is negligible.
_TABLE_CELLS = 1 << 20
_DRAW_CELLS = 1 << 21
# Oversampling margin, in standard deviations of the number of draws needed.
_SIGMAS = 5.0
_SPLIT_CODES = {"valid": 1, "test": 2}


def _split_rng(split: EvalSplit, seed: int) -> np.random.Generator:
  """One independent stream per (seed, split name)."""
  code = _SPLIT_CODES.get(split.name)
  if code is None:
    code = zlib.crc32(split.name.encode()) + len(_SPLIT_CODES) + 1
  return np.random.default_rng([seed, code])


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
  """np.unique of 1-D ints via a sort; np.unique is far slower in numpy 2.4."""
  keys = np.sort(keys)
  if keys.size:
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]
  return keys


def _domain_histories(ds: CDSRDataset, domain: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Distinct local item ids per user within one domain, in CSR layout.

  Returns:
    (start int64 [U], count int64 [U], local int32 [K]): user u's distinct
    domain items are local[start[u]:start[u]+count[u]], sorted.
  """
  n_d = ds.num_items_b if domain else ds.num_items_a
  user_of = np.repeat(np.arange(ds.num_users, dtype=np.int64), ds.lengths)
  mask = ds.domains == domain
  local = ds.items[mask].astype(np.int64) - (ds.num_items_a if domain else 0)
  # Distinct (user, item) pairs, sorted by user then item.
  keys = _sorted_unique(user_of[mask] * (n_d + 1) + local)
  count = np.bincount(keys // (n_d + 1), minlength=ds.num_users)
  start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
  return start, count, (keys % (n_d + 1)).astype(np.int32)


def _gather_segments(
  start: np.ndarray, count: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
  """Concatenates values[start[i]:start[i]+count[i]]; returns (row, value)."""
  row = np.repeat(np.arange(start.shape[0]), count)
  first = np.cumsum(count) - count
  index = start[row] + (np.arange(row.shape[0]) - first[row])
  return row, values[index]


def _draws_needed(eligible: np.ndarray, n_d: int, n: int) -> np.ndarray:
  """Draws with replacement that get n distinct eligible items, w.h.p.

  Collecting the (i+1)-th new eligible item takes a geometric number of draws
  with success probability (eligible - i) / n_d; sum the means and variances.
  """
  j = np.arange(1, n_d + 1, dtype=np.float64)
  h1 = np.concatenate([[0.0], np.cumsum(1.0 / j)])
  h2 = np.concatenate([[0.0], np.cumsum(1.0 / j**2)])
  mean = n_d * (h1[eligible] - h1[eligible - n])
  var = n_d**2 * (h2[eligible] - h2[eligible - n]) - mean
  return np.ceil(mean + _SIGMAS * np.sqrt(np.maximum(var, 0.0)) + 8).astype(np.int64)


class TooFewItems(DataError):
  """A user's target domain has fewer eligible items than the negatives asked for."""


def sample_candidates(
  ds: CDSRDataset, split: EvalSplit, num_negatives: int, seed: int
) -> np.ndarray:
  """Samples the frozen candidate lists of an evaluation split.

  Vectorised rejection sampling: per chunk of cases, draw with replacement
  enough ids for nearly every case, drop the user's own items and repeats, and
  keep the first N survivors. The result is exactly uniform over N-subsets of
  the eligible items, in uniformly random order; the rare case that runs out
  of draws is redone exactly with `Generator.choice`.

  Args:
    ds: the dataset `split` was made from.
    split: the cases (from `eval_split`); its `name` selects the random stream.
    num_negatives: N, negatives per case.
    seed: base seed; the same (ds, split, N, seed) always gives the same array.

  Returns:
    int32 [E, 1+N] global ids; column 0 is the target, columns 1..N are
    distinct negatives from the target's domain, none in the user's sequence.

  Raises:
    TooFewItems: if some user's target domain has fewer than N eligible items.
  """
  if num_negatives < 0:
    raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
  num_cases = split.users.shape[0]
  out = np.zeros((num_cases, 1 + num_negatives), np.int32)
  out[:, 0] = split.targets
  if num_negatives == 0 or num_cases == 0:
    return out
  rng = _split_rng(split, seed)
  for domain in (0, 1):
    cases = np.flatnonzero(split.target_domain == domain)
    if cases.size == 0:
      continue
    _sample_domain(ds, split.users[cases], cases, domain, num_negatives, rng, out)
  return out


def _sample_domain(
  ds: CDSRDataset,
  users: np.ndarray,
  cases: np.ndarray,
  domain: int,
  n: int,
  rng: np.random.Generator,
  out: np.ndarray,
) -> None:
  """Fills out[cases, 1:] with negatives from `domain` (sample_candidates)."""
  n_d = ds.num_items_b if domain else ds.num_items_a
  base = ds.num_items_a if domain else 0
  name = "B" if domain else "A"
  start, count, local = _domain_histories(ds, domain)
  h_start, h_count = start[users], count[users]
  eligible = n_d - h_count
  short = eligible < n
  if np.any(short):
    i = int(np.argmax(short))
    user = f"user {users[i]}"
    if ds.user_ids is not None:
      user += f" (id {str(ds.user_ids[users[i]])!r})"
    raise TooFewItems(
      f"target domain {name} has {n_d} items, {h_count[i]} of them in the "
      f"user's sequence, leaving {eligible[i]} eligible items, fewer than the {n} "
      "negatives asked for",
      key=user,
    )

  needed = _draws_needed(eligible, n_d, n)
  # Group cases of similar need so that one heavy user does not inflate the
  # draw count of a whole chunk.
  order = np.argsort(needed, kind="stable")
  max_rows = max(1, _TABLE_CELLS // (n_d + 1))
  excluded = np.zeros(max_rows * (n_d + 1), bool)
  # Never cleared: every cell read in a chunk was first written in that chunk.
  first_pos = np.empty(max_rows * (n_d + 1), np.int32)
  lo = 0
  while lo < order.shape[0]:
    rows = min(max_rows, order.shape[0] - lo)
    draws_per_row = int(needed[order[lo + rows - 1]])
    if rows * draws_per_row > _DRAW_CELLS:
      rows = max(1, _DRAW_CELLS // draws_per_row)
      draws_per_row = int(needed[order[lo + rows - 1]])
    chunk = order[lo : lo + rows]
    lo += rows

    hist_row, hist_item = _gather_segments(h_start[chunk], h_count[chunk], local)
    hist_cells = hist_row * (n_d + 1) + hist_item
    excluded[hist_cells] = True
    draws = rng.integers(1, n_d + 1, size=(rows, draws_per_row), dtype=np.int32)
    cells = np.arange(rows, dtype=np.int64)[:, None] * (n_d + 1) + draws
    cols = np.broadcast_to(np.arange(draws_per_row, dtype=np.int32), draws.shape)
    # Whichever duplicate's column the scatter leaves behind, exactly one
    # occurrence of each (row, item) survives; which one depends only on the
    # positions, never on the item, so the kept set stays uniform.
    first_pos[cells] = cols
    keep = (first_pos[cells] == cols) & ~excluded[cells]
    excluded[hist_cells] = False
    rank = np.cumsum(keep, axis=1)
    done = rank[:, -1] >= n
    take = keep & (rank <= n) & done[:, None]
    out[cases[chunk[done]], 1:] = draws[take].reshape(-1, n) + base
    for r in np.flatnonzero(~done):  # Rare: ran out of draws.
      i = chunk[r]
      hist = local[h_start[i] : h_start[i] + h_count[i]]
      pool = np.setdiff1d(np.arange(1, n_d + 1, dtype=np.int32), hist)
      out[cases[i], 1:] = rng.choice(pool, n, replace=False) + base


def history_matrix(ds: CDSRDataset, max_len: int | None = None) -> np.ndarray:
  """Each user's whole item set as a right-padded matrix.

  Used on device to exclude a user's own items from full ranking and from
  negative sampling; it covers the whole sequence, targets included.

  Args:
    ds: the dataset.
    max_len: width H; default the largest number of distinct items of a user.

  Returns:
    int32 [U, H]: row u holds user u's distinct global ids, ascending, then 0s.

  Raises:
    DataError: if a user has more than `max_len` distinct items (truncating
      would silently let them back in as negatives).
  """
  n = ds.num_items
  user_of = np.repeat(np.arange(ds.num_users, dtype=np.int64), ds.lengths)
  keys = _sorted_unique(user_of * (n + 1) + ds.items)
  user = keys // (n + 1)
  count = np.bincount(user, minlength=ds.num_users)
  widest = int(count.max()) if count.size else 0
  width = widest if max_len is None else max_len
  if widest > width:
    u = int(np.argmax(count))
    raise DataError(
      f"{widest} distinct items but max_len = {max_len}; expected max_len >= {widest}",
      key=f"dataset {ds.name!r}, user {u}",
    )
  first = np.cumsum(count) - count
  col = np.arange(keys.shape[0]) - first[user]
  matrix = np.zeros((ds.num_users, width), np.int32)
  matrix[user, col] = keys % (n + 1)
  return matrix


def frozen(ds: CDSRDataset, split: str, num_negatives: int, seed: int) -> np.ndarray:
  """Frozen evaluation candidates [E, 1+N] (target first): cached beside the dataset when it was
  loaded through the store (`cached`), else sampled (deterministically) in memory.
  """
  out_dir = load.store_dir(ds)
  if out_dir is not None:
    return cached(out_dir, ds, split, num_negatives, seed)
  return sample_candidates(ds, eval_split(ds, split), num_negatives, seed)


def candidates_path(
  out_dir: str | os.PathLike[str], split: str, num_negatives: int, seed: int
) -> str:
  """`out_dir/candidates_<split>_n<N>_s<seed>.npy`."""
  return os.path.join(os.fspath(out_dir), f"candidates_{split}_n{num_negatives}_s{seed}.npy")


def cached(
  out_dir: str | os.PathLike[str],
  ds: CDSRDataset,
  split: str,
  num_negatives: int,
  seed: int,
) -> np.ndarray:
  """Frozen evaluation candidates, cached beside the dataset.

  The first call computes `sample_candidates(ds, eval_split(ds, split), N, seed)` and stores it
  atomically; later calls load the file and check it still fits `ds` (shape, targets, negatives in
  the target's domain and outside the user's sequence). ABXI ranks against 999 negatives,
  LLM4CDSR against 100.

  Args:
    out_dir: the store folder of `ds`.
    ds: the dataset (normally `load_dataset(out_dir)[0]`).
    split: 'valid' or 'test'.
    num_negatives: N.
    seed: the sampling seed.

  Returns:
    Read-only int32 [E, 1+N]; column 0 is the target.

  Raises:
    DataError: if a stored file is corrupt or no longer fits `ds` (delete it to resample), or
      a new one cannot be written.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  seed, num_negatives = operator.index(seed), operator.index(num_negatives)
  if num_negatives < 0:
    raise ValueError(f"num_negatives must be >= 0, got {num_negatives}")
  path = candidates_path(out_dir, split, num_negatives, seed)
  if os.path.exists(path):
    try:
      cands = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
      raise DataError(f"corrupt candidate file ({e}); delete it to resample", path=path) from None
    if cands.dtype != np.int32 or cands.ndim != 2 or cands.shape[1] != 1 + num_negatives:
      raise DataError(
        f"{cands.dtype} {cands.shape}; expected int32 [E, {1 + num_negatives}] "
        "(delete it to resample)",
        path=path,
      )
    try:
      check_no_leakage(ds, {split: cands})
    except DataError as e:
      raise DataError(
        f"{e.detail}; the file does not fit this dataset (delete it to resample)",
        path=path,
        key=e.key,
      ) from None
  else:
    cands = sample_candidates(ds, eval_split(ds, split), num_negatives, seed)
    check_no_leakage(ds, {split: cands})
    try:
      atomic_write_binary(path, lambda f: np.save(f, cands, allow_pickle=False))
    except OSError as e:
      raise DataError(f"cannot write the frozen candidates: {e.strerror or e}", path=path) from None
  cands.flags.writeable = False
  return cands
