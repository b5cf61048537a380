"""In-memory cross-domain sequential dataset and the leave-one-out split.

Every reader (synthetic, ABXI files, LLMCDSR files, raw Amazon dumps) produces a
`CDSRDataset`: all users' time-ordered interactions concatenated in one flat
array (CSR layout), with items identified by GLOBAL ids:

  0                    padding, never stored
  1 .. nA              domain A items
  nA+1 .. nA+nB        domain B items

so a single id says both which item and which domain. See docs/data.md.
"""

from collections.abc import Callable
import dataclasses
from typing import Any

import numpy as np

from orthoalign.errors import DataError

# Users with fewer interactions cannot give a training prefix, a valid target
# and a test target; they are dropped from both training and evaluation.
# Codes of CDSRDataset.user_split (user-level splits, e.g. LLMCDSR's files).
USER_TRAIN, USER_VALID, USER_TEST = 0, 1, 2
PAD_DOMAIN = -1  # `to_local` domain of the padding id 0.

_INT32 = np.iinfo(np.int32)


def _int_array(value: Any, field: str, dtype: type[np.integer]) -> np.ndarray:
  """Returns a read-only 1-D view of `value` cast to `dtype`, checking range."""
  arr = np.asarray(value)
  if arr.ndim != 1:
    raise DataError(f"expected a 1-D array, got shape {arr.shape}", key=field)
  if arr.size == 0:
    arr = arr.astype(dtype)
  elif not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
    raise DataError(f"expected integers, got dtype {arr.dtype}", key=field)
  else:
    info = np.iinfo(dtype)
    lo, hi = arr.min(), arr.max()
    # Range-check before the cast: a silent wrap-around could turn an invalid
    # id into a valid-looking one.
    if lo < info.min or hi > info.max:
      raise DataError(f"values {lo}..{hi} do not fit {np.dtype(dtype).name}", key=field)
    arr = arr.astype(dtype, copy=False)
  view = arr.view()
  view.flags.writeable = False
  return view


def _bool_array(value: Any, field: str) -> np.ndarray:
  """Returns a read-only 1-D bool view of `value` (bools, or integers 0/1)."""
  arr = np.asarray(value)
  if arr.ndim != 1:
    raise DataError(f"expected a 1-D array, got shape {arr.shape}", key=field)
  if arr.size and arr.dtype != np.bool_:
    if not np.issubdtype(arr.dtype, np.integer):
      raise DataError(f"expected bools, got dtype {arr.dtype}", key=field)
    if not np.all((arr == 0) | (arr == 1)):
      raise DataError("expected bools (or integers 0/1)", key=field)
  view = arr.astype(np.bool_).view()
  view.flags.writeable = False
  return view


@dataclasses.dataclass(frozen=True, eq=False)
class CDSRDataset:
  """All users' interaction sequences over two item domains, in CSR layout.

  Attributes:
    name: a label for messages and logs.
    num_items_a: nA, the number of domain-A items (global ids 1..nA).
    num_items_b: nB, the number of domain-B items (global ids nA+1..nA+nB).
    offsets: int64 [U+1]; user u's interactions are
      items[offsets[u]:offsets[u+1]].
    items: int32 [T] global item ids in time order within each user.
    domains: int8 [T], 0 = A, 1 = B; must agree with the id ranges.
    timestamps: optional int64 [T], non-decreasing within each user.
    item_text_emb: optional float32 [nA+nB+1, D] indexed by global id; row 0
      (padding) is all zeros.
    user_ids: optional [U] original user names/ids, any dtype.
    user_split: optional int8 [U] for datasets split by USER rather than by
      leave-one-out (LLMCDSR's files): USER_TRAIN users train on their whole
      sequence and are not evaluated; USER_VALID / USER_TEST users are held
      out and evaluated on their last item. None = leave-one-out for everyone.
    item_keys: optional [nA+nB+1] original item ids (e.g. ASINs) by global
      id, as Python strings (object array); row 0 = ''.
    item_titles: optional [nA+nB+1] item titles by global id, as Python
      strings (object array); '' = no title (row 0 = '').
    merged_timeline: True (default) when each user's sequence is one
      time-ordered timeline across both domains. False when the source has
      only separate per-domain lists that cannot be interleaved (the IM-VAE /
      AMID CSVs): the sequence is then a concatenation of per-domain lists,
      the order ACROSS domains carries no meaning, and models that read the
      cross-domain order (ABXI, LLM4CDSR) must not use the dataset.
    user_in_train: optional bool [U], only with a `user_split`: True for a
      held-out (USER_VALID / USER_TEST) user whose original user id also owns
      USER_TRAIN rows, i.e. the model trains on the same person; always False
      for USER_TRAIN users. Lets results be reported separately for seen and
      unseen held-out users. None = not recorded.
    domain_names: the domains' names, in domain order: what metric keys and
      messages call them ("A", "B" by default, so that every key, result and
      figure of two-domain data reads as before).

  Arrays are converted to the dtypes above and made read-only on construction;
  `validate()` runs in `__post_init__`, so an instance is always consistent.
  """

  name: str
  num_items_a: int
  num_items_b: int
  offsets: np.ndarray
  items: np.ndarray
  domains: np.ndarray
  timestamps: np.ndarray | None = None
  item_text_emb: np.ndarray | None = None
  user_ids: np.ndarray | None = None
  user_split: np.ndarray | None = None
  item_keys: np.ndarray | None = None
  item_titles: np.ndarray | None = None
  merged_timeline: bool = True
  user_in_train: np.ndarray | None = None
  domain_names: tuple[str, ...] = ("A", "B")
  # What models derive from the dataset (see `cached`); never copied by dataclasses.replace.
  _derived: dict[Any, Any] = dataclasses.field(init=False, repr=False, default_factory=dict)

  @property
  def num_domains(self) -> int:
    """How many item domains the dataset has (2: A and B)."""
    return len(self.domain_names)

  def cached(self, key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, once per dataset object and hashable `key`.

    Holds what a model derives from the dataset (e.g. LLM4CDSR's PCA item tables), kept with the
    dataset as the frozen candidates are, so that building the same model again (parameter
    matching builds one model at many widths) derives it once. A dataset changed with
    `dataclasses.replace` starts empty.
    """
    if key not in self._derived:
      self._derived[key] = compute()
    return self._derived[key]

  def __post_init__(self):
    set_ = lambda field, value: object.__setattr__(self, field, value)
    names = self.domain_names
    if (
      not isinstance(names, (tuple, list))
      or len(names) != 2
      or len(set(names)) != 2
      or not all(isinstance(n, str) and n.strip() and "/" not in n for n in names)
    ):
      raise self._error(
        f"expected two distinct non-empty names without '/', got {names!r}", "domain_names"
      )
    set_("domain_names", tuple(names))
    for field in ("num_items_a", "num_items_b"):
      value = getattr(self, field)
      if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise self._error(f"expected an int, got {value!r}", field)
      if value < 1:
        raise self._error(f"expected >= 1 items, got {value}", field)
      set_(field, int(value))
    if not isinstance(self.merged_timeline, (bool, np.bool_)):
      raise self._error(f"expected a bool, got {self.merged_timeline!r}", "merged_timeline")
    set_("merged_timeline", bool(self.merged_timeline))
    if self.num_items_a + self.num_items_b > _INT32.max:
      raise self._error("nA + nB does not fit int32 ids", "num_items")
    try:
      set_("offsets", _int_array(self.offsets, "offsets", np.int64))
      set_("items", _int_array(self.items, "items", np.int32))
      set_("domains", _int_array(self.domains, "domains", np.int8))
      if self.timestamps is not None:
        set_("timestamps", _int_array(self.timestamps, "timestamps", np.int64))
      if self.user_split is not None:
        set_("user_split", _int_array(self.user_split, "user_split", np.int8))
      if self.user_in_train is not None:
        set_("user_in_train", _bool_array(self.user_in_train, "user_in_train"))
    except DataError as e:
      raise self._error(e.detail, e.key) from None
    if self.item_text_emb is not None:
      emb = np.asarray(self.item_text_emb)
      if not (np.issubdtype(emb.dtype, np.floating) or np.issubdtype(emb.dtype, np.integer)):
        raise self._error(f"expected floats, got dtype {emb.dtype}", "item_text_emb")
      emb = emb.astype(np.float32, copy=False).view()
      emb.flags.writeable = False
      set_("item_text_emb", emb)
    for field in ("item_keys", "item_titles"):
      value = getattr(self, field)
      if value is not None:
        # Python str objects: a fixed-width unicode array would pad every title
        # to the longest (125 MB for LLMCDSR's 36k titles). The store writes
        # them as UTF-8 bytes + offsets, so .npz files still need no pickle.
        arr = np.empty(len(value), dtype=object)
        arr[:] = [str(v) for v in value]
        arr = arr.view()
        arr.flags.writeable = False
        set_(field, arr)
    if self.user_ids is not None:
      ids = np.asarray(self.user_ids).view()
      ids.flags.writeable = False
      set_("user_ids", ids)
    self.validate()

  def _error(self, detail: str, key: str | None = None) -> DataError:
    where = f"dataset {self.name!r}" + (f", {key}" if key else "")
    return DataError(detail, key=where)

  def _locate(self, position: int) -> str:
    """Describes flat position `position` as 'items[i] (user u, position j)'."""
    u = int(np.searchsorted(self.offsets, position, side="right")) - 1
    j = position - self.offsets[u]
    return f"items[{position}] (user {u}, position {j})"

  def validate(self) -> None:
    """Checks every structural invariant.

    Raises:
      DataError: naming the first offending field / user / position and what
        was expected.
    """
    n_a, n = self.num_items_a, self.num_items
    offsets, items, domains = self.offsets, self.items, self.domains
    num_t = items.shape[0]

    # Offsets first: every later message locates positions through them.
    if offsets.shape[0] < 1 or offsets[0] != 0:
      raise self._error("expected offsets[0] == 0 (CSR layout, length U+1)", "offsets")
    if offsets[-1] != num_t:
      raise self._error(
        f"offsets[-1] = {offsets[-1]} but len(items) = {num_t}; expected them equal", "offsets"
      )
    steps = np.diff(offsets)
    if np.any(steps < 0):
      u = int(np.argmax(steps < 0))
      raise self._error(
        f"offsets not monotone: offsets[{u}] = {offsets[u]} > offsets[{u + 1}] = {offsets[u + 1]}",
        "offsets",
      )
    if np.any(steps == 0):
      u = int(np.argmax(steps == 0))
      raise self._error("empty sequence; every user needs >= 1 interaction", f"user {u}")

    bad = (items < 1) | (items > n)
    if np.any(bad):
      i = int(np.argmax(bad))
      raise self._error(
        f"item id {items[i]} out of range; expected 1..{n} "
        f"(A = 1..{n_a}, B = {n_a + 1}..{n}; 0 is padding and is never "
        "stored)",
        self._locate(i),
      )

    if domains.shape[0] != num_t:
      raise self._error(f"len(domains) = {domains.shape[0]} but len(items) = {num_t}", "domains")
    expected = (items > n_a).astype(np.int8)
    bad = domains != expected
    if np.any(bad):
      i = int(np.argmax(bad))
      raise self._error(
        f"domain {domains[i]} disagrees with item id {items[i]}; expected "
        f"{expected[i]} (A = 1..{n_a} -> 0, B = {n_a + 1}..{n} -> 1)",
        self._locate(i),
      )

    if self.timestamps is not None:
      ts = self.timestamps
      if ts.shape[0] != num_t:
        raise self._error(f"len(timestamps) = {ts.shape[0]} but len(items) = {num_t}", "timestamps")
      is_start = np.zeros(num_t, bool)
      is_start[offsets[:-1]] = True
      # A drop across a user boundary is fine; within a user it is not.
      bad = (np.diff(ts) < 0) & ~is_start[1:]
      if np.any(bad):
        i = int(np.argmax(bad)) + 1
        raise self._error(
          f"timestamp {ts[i]} < previous {ts[i - 1]}; expected "
          "non-decreasing timestamps within a user",
          self._locate(i),
        )

    if self.item_text_emb is not None:
      emb = self.item_text_emb
      if emb.ndim != 2 or emb.shape[0] != n + 1:
        raise self._error(
          f"shape {emb.shape}; expected [nA+nB+1, D] = [{n + 1}, D] (row 0 = padding)",
          "item_text_emb",
        )
      if not np.all(np.isfinite(emb)):
        row = int(np.argmax(~np.all(np.isfinite(emb), axis=1)))
        raise self._error(f"non-finite value in row {row}", "item_text_emb")
      if np.any(emb[0] != 0):
        raise self._error("row 0 (padding) must be all zeros", "item_text_emb")

    if self.user_ids is not None and (
      self.user_ids.ndim != 1 or self.user_ids.shape[0] != self.num_users
    ):
      raise self._error(
        f"shape {self.user_ids.shape}; expected [{self.num_users}] (one per user)", "user_ids"
      )

    for field in ("item_keys", "item_titles"):
      value = getattr(self, field)
      if value is not None and (value.ndim != 1 or value.shape[0] != n + 1):
        raise self._error(
          f"shape {value.shape}; expected [nA+nB+1] = [{n + 1}] (row 0 = padding)", field
        )

    if self.user_split is not None:
      if self.user_split.shape[0] != self.num_users:
        raise self._error(
          f"shape {self.user_split.shape}; expected [{self.num_users}]", "user_split"
        )
      bad = ~np.isin(self.user_split, (USER_TRAIN, USER_VALID, USER_TEST))
      if np.any(bad):
        u = int(np.argmax(bad))
        raise self._error(
          f"value {self.user_split[u]} for user {u}; expected "
          f"{USER_TRAIN} (train), {USER_VALID} (valid) or {USER_TEST} (test)",
          "user_split",
        )

    if self.user_in_train is not None:
      if self.user_split is None:
        raise self._error(
          "set without a user_split; expected it only for user-level splits", "user_in_train"
        )
      if self.user_in_train.shape[0] != self.num_users:
        raise self._error(
          f"shape {self.user_in_train.shape}; expected [{self.num_users}]", "user_in_train"
        )
      bad = self.user_in_train & (self.user_split == USER_TRAIN)
      if np.any(bad):
        u = int(np.argmax(bad))
        raise self._error(
          f"True for training user {u}; expected True only for held-out (valid / test) users",
          "user_in_train",
        )

  @property
  def num_users(self) -> int:
    return self.offsets.shape[0] - 1

  @property
  def num_items(self) -> int:
    """nA + nB, the number of real (non-padding) items."""
    return self.num_items_a + self.num_items_b

  @property
  def num_interactions(self) -> int:
    return self.items.shape[0]

  @property
  def lengths(self) -> np.ndarray:
    """int64 [U] sequence length of each user."""
    return np.diff(self.offsets)

  def sequence(self, u: int) -> np.ndarray:
    """Returns user `u`'s global item ids in time order (a read-only view)."""
    if not 0 <= u < self.num_users:
      raise IndexError(f"user {u} out of range [0, {self.num_users})")
    return self.items[self.offsets[u] : self.offsets[u + 1]]

  def to_local(self, global_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    """Splits global ids into per-domain local ids and a domain flag.

    Args:
      global_ids: int array of any shape with values in 0..nA+nB.

    Returns:
      (local_ids int32, domain int8), same shape. A: local = global, domain 0;
      B: local = global - nA, domain 1; padding 0: local 0, domain -1.

    Raises:
      DataError: if an id is outside 0..nA+nB.
    """
    ids = np.asarray(global_ids)
    if ids.size and (ids.min() < 0 or ids.max() > self.num_items):
      raise self._error(
        f"ids {ids.min()}..{ids.max()} out of range; expected 0..{self.num_items}", "to_local"
      )
    is_b = ids > self.num_items_a
    local = np.where(is_b, ids - self.num_items_a, ids).astype(np.int32)
    domain = np.where(ids == 0, PAD_DOMAIN, is_b).astype(np.int8)
    return local, domain

  def summary(self) -> dict[str, Any]:
    """Returns headline statistics (plain Python numbers).

    Keys: users, overlapped_users (items in both domains), a_only_users,
    b_only_users, items_a, items_b (catalogue sizes), interactions,
    interactions_a, interactions_b, mean_length, domain_switch_rate (share of
    consecutive same-user pairs whose domains differ).
    """
    lengths = self.lengths
    if self.num_users:
      num_b = np.add.reduceat(self.domains.astype(np.int64), self.offsets[:-1])
    else:
      num_b = np.zeros(0, np.int64)
    num_a = lengths - num_b
    change = np.diff(self.domains) != 0
    is_start = np.zeros(self.num_interactions, bool)
    is_start[self.offsets[:-1]] = True
    within = ~is_start[1:]  # Pairs (i-1, i) that belong to the same user.
    pairs = int(within.sum())
    return {
      "name": self.name,
      "users": self.num_users,
      "overlapped_users": int(np.sum((num_a > 0) & (num_b > 0))),
      "a_only_users": int(np.sum(num_b == 0)),
      "b_only_users": int(np.sum(num_a == 0)),
      "items_a": self.num_items_a,
      "items_b": self.num_items_b,
      "interactions": self.num_interactions,
      "interactions_a": int(num_a.sum()),
      "interactions_b": int(num_b.sum()),
      "mean_length": float(lengths.mean()) if self.num_users else 0.0,
      "domain_switch_rate": (float((change & within).sum() / pairs) if pairs else 0.0),
    }

  @classmethod
  def from_sequences(
    cls,
    name: str,
    num_items_a: int,
    num_items_b: int,
    sequences: list[np.ndarray],
    timestamps: list[np.ndarray] | None = None,
    item_text_emb: np.ndarray | None = None,
    user_ids: Any = None,
    user_split: Any = None,
    item_keys: Any = None,
    item_titles: Any = None,
    merged_timeline: bool = True,
    user_in_train: Any = None,
  ) -> "CDSRDataset":
    """Builds a dataset from per-user global-id sequences.

    Args:
      name: dataset label.
      num_items_a: nA.
      num_items_b: nB.
      sequences: one int array of global ids per user, in time order.
      timestamps: optional, one int array per user, same lengths.
      item_text_emb: optional float [nA+nB+1, D].
      user_ids: optional [U] original user ids.
      user_split: optional [U] USER_TRAIN / USER_VALID / USER_TEST codes.
      item_keys: optional [nA+nB+1] original item ids by global id.
      item_titles: optional [nA+nB+1] titles by global id ('' = none).
      merged_timeline: False when the sequences are concatenated per-domain
        lists rather than one cross-domain timeline.
      user_in_train: optional bool [U] (needs `user_split`): held-out users
        whose original id also owns training rows.

    Returns:
      A validated `CDSRDataset`; `domains` is derived from the id ranges.

    Raises:
      DataError: on any inconsistency (see `validate`).
    """
    seqs = [np.asarray(s).reshape(-1) for s in sequences]
    lengths = np.array([s.shape[0] for s in seqs], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate(seqs) if seqs else np.zeros(0, np.int64)
    if items.size and not np.issubdtype(items.dtype, np.integer):
      raise DataError(
        f"expected integer ids, got dtype {items.dtype}", key=f"dataset {name!r}, sequences"
      )
    ts = None
    if timestamps is not None:
      if len(timestamps) != len(seqs):
        raise DataError(
          f"{len(timestamps)} timestamp arrays for {len(seqs)} sequences",
          key=f"dataset {name!r}, timestamps",
        )
      ts_list = [np.asarray(t).reshape(-1) for t in timestamps]
      for u, (s, t) in enumerate(zip(seqs, ts_list)):
        if s.shape != t.shape:
          raise DataError(
            f"{t.shape[0]} timestamps for {s.shape[0]} items", key=f"dataset {name!r}, user {u}"
          )
      ts = np.concatenate(ts_list) if ts_list else np.zeros(0, np.int64)
    # Out-of-range ids get a domain here too; validate() then reports the id.
    domains = (items > num_items_a).astype(np.int8)
    return cls(
      name=name,
      num_items_a=num_items_a,
      num_items_b=num_items_b,
      offsets=offsets,
      items=items,
      domains=domains,
      timestamps=ts,
      item_text_emb=item_text_emb,
      user_ids=None if user_ids is None else np.asarray(user_ids),
      user_split=None if user_split is None else np.asarray(user_split),
      item_keys=item_keys,
      item_titles=item_titles,
      merged_timeline=merged_timeline,
      user_in_train=(None if user_in_train is None else np.asarray(user_in_train)),
    )
