"""GCA variants and experimental conditions of a runs frame (`results.load_runs`).

A *variant* is the GCA placement: "plain" (no GCA), "early" (GCA[0]), "stack" (GCA[0, i_1, ...])
or e.g. "gca[1]" (paper.md §1.1). A *condition* is (model, dataset, variant) plus every setting
that varies between the runs (`setting_columns`); the analyses group runs by condition and list
rows in the paper's order (`sorted_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import json
import math
import re
from typing import Any

import numpy as np
import pandas as pd

from orthoalign.config import replica_axes
from orthoalign.errors import DataError

VARIANT_ORDER = ("plain", "early", "stack")
# The width column, shared by every baseline (old runs' hidden_size / d_embed are upgraded to it).
WIDTH_COLUMN = "config.model.width"
# Columns that are bookkeeping, not experimental settings (they never split conditions).
_IGNORED_CONFIG_PREFIXES = (
  "config.sweep.",
  "config.gca.positions",
  "config.data.path",
  "config.data.cache_dir",
  "config.data.titles",
  "config.data.on_bad_line",
  "config.train.num_devices",
  "config.eval.batch_size",
  "config.train.checkpoint_every",
  "config.model.name",
  "config.data.format",
  "config.eval.track_test",
)
# Per-replica settings of a program (the sweep axes of orthoalign.sweep) at the top level of a
# results row -> the config key they replace (its value is only their fallback).
_REPLICA_SETTINGS = {
  a.field: f"config.{a.key}" for a in replica_axes.COMMON if "." in a.key and "." not in a.field
}
# Config sections: a top-level results column named "<section>.<key>" is a per-replica setting
# (e.g. `model.alpha` from --config.sweep.model.alpha, `gca.orth_penalty`), replacing
# config.<section>.<key>.
_CONFIG_SECTIONS = ("model", "gca", "train", "data", "eval")
# Marks a blank cell in condition keys and labels.
_BLANK = "—"


def _positions(value: Any) -> list[int] | None:
  """gca_positions cell (list, tuple, array, JSON string, None/NaN) -> list of ints or None."""
  if value is None:
    return None
  if isinstance(value, str):
    try:
      value = json.loads(value.replace("(", "[").replace(")", "]"))
    except json.JSONDecodeError:
      return None
  if isinstance(value, float) and math.isnan(value):
    return None
  if np.isscalar(value):
    return [int(value)]
  return [int(p) for p in value]


def variant_of(positions: Sequence[int] | str | None) -> str:
  """GCA positions -> the paper's variant name (Table 1 caption, paper.md §1.1).

  [] -> "plain", [0] -> "early", [0, i, ...] -> "stack", anything else -> "gca[i,j]" (e.g. [1] ->
  "gca[1]"). Accepts a list/tuple/array or its JSON text; None/NaN -> "plain" is *not* assumed:
  it returns "unknown".
  """
  pos = _positions(positions)
  if pos is None:
    return "unknown"
  pos = sorted(set(pos))
  if not pos:
    return "plain"
  if pos == [0]:
    return "early"
  if pos[0] == 0:
    return "stack"
  return "gca[" + ",".join(str(p) for p in pos) + "]"


def add_variant(df: pd.DataFrame) -> pd.DataFrame:
  """A copy of df with a `variant` column from `gca_positions` (or `config.gca.positions`).

  Raises:
    DataError: if neither column exists.
  """
  for col in ("gca_positions", "config.gca.positions"):
    if col in df.columns:
      out = df.copy()
      out["variant"] = [variant_of(v) for v in df[col]]
      return out
  raise DataError("expected a gca_positions or config.gca.positions column", key="gca_positions")


def label_datasets(df: pd.DataFrame) -> pd.DataFrame:
  """A copy whose `dataset` names the data settings that vary between rows of the same dataset.

  The synthetic generator's runs are all named "synthetic"; a grid over its cross-domain strength
  holds two datasets: "synthetic (cross_strength=0.0)" and "synthetic (cross_strength=1.0)". Every
  analysis that groups by dataset (Table 1, correlation, scaling, Figure 8) then keeps them apart.
  """
  out = df.copy()
  keys = [
    c
    for c in out.columns
    if c.startswith("config.data.")
    and not c.startswith(_IGNORED_CONFIG_PREFIXES)
    and out[c].astype(str).nunique(dropna=False) > 1
  ]
  if keys:
    suffix = (
      out[keys]
      .astype(str)
      .apply(lambda r: ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in r.items()), axis=1)
    )
    out["dataset"] = out["dataset"].astype(str) + " (" + suffix + ")"
  return out


def with_variant(df: pd.DataFrame) -> pd.DataFrame:
  """df itself if it has a `variant` column, else `add_variant(df)`."""
  return df if "variant" in df.columns else add_variant(df)


def variant_sort_key(variant: str) -> tuple[int, str]:
  """Sort key: plain, early, stack, then the other variants by name."""
  if variant in VARIANT_ORDER:
    return (VARIANT_ORDER.index(variant), variant)
  return (len(VARIANT_ORDER), variant)


def as_key(value: Any) -> str:
  """A hashable, readable group key for any cell (lists -> JSON, NaN/None -> "—", floats -> %g)."""
  if isinstance(value, (list, tuple, np.ndarray)):
    return json.dumps([_jsonish(v) for v in value])
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return _BLANK
  if isinstance(value, (float, np.floating)):
    return f"{float(value):g}"
  return str(value)


def _jsonish(v: Any) -> Any:
  return v.item() if isinstance(v, np.generic) else v


def _is_gca_only(col: str) -> bool:
  """Settings that mean nothing for a plain baseline (so they are blanked for its rows)."""
  return col.startswith(("config.gca.", "gca.")) or col == "gate_init"


def replica_setting_columns(df: pd.DataFrame) -> dict[str, str]:
  """Per-replica hyperparameter columns of a runs frame -> the config column each replaces.

  Results rows carry each replica's hyperparameters at the top level (train.loop): learning_rate,
  weight_decay, gate_init, and `<section>.<key>` for every other replica axis (the model's
  `sweep.model.<k>` as `model.<k>`, `gca.orth_penalty`). The config column holds only the value
  used when the sweep lists none.
  """
  out = {c: f for c, f in _REPLICA_SETTINGS.items() if c in df.columns}
  for c in df.columns:
    if "/" not in c and c.split(".", 1)[0] in _CONFIG_SECTIONS and "." in c:
      out[c] = f"config.{c}"
  return out


def _variant_axes(df: pd.DataFrame) -> list[str]:
  """axis.* columns that merely name the variant (one-to-one with it): not extra settings."""
  out = []
  for c in (c for c in df.columns if c.startswith("axis.")):
    keys = df[c].map(as_key)
    pair = pd.DataFrame({"a": keys, "v": df["variant"]})
    if pair.groupby("a")["v"].nunique().max() == 1 and pair.groupby("v")["a"].nunique().max() == 1:
      out.append(c)
  return out


def setting_columns(df: pd.DataFrame) -> list[str]:
  """Columns (besides model, dataset, variant, seed) that split the runs into conditions.

  Every setting that varies between runs separates conditions; seed, replica and run names never
  do. In order:
  - with grid `axis.*` columns, those that vary (except the axis that only names the variant);
    otherwise the varying `config.*` keys minus bookkeeping ones (`_IGNORED_CONFIG_PREFIXES`);
  - per-replica hyperparameters (`replica_setting_columns`: learning_rate, weight_decay,
    gate_init, `model.<k>` of a `sweep.model.<k>` sweep, `gca.orth_penalty`), then the config
    keys they fall back on;
  - with axes, the other varying `config.*` keys (e.g. a `--set` given to some runs only).
  A column of the last two kinds is added only where it splits runs that the columns before it
  (and model, dataset, variant) leave together, so that a value an axis already names is not
  listed twice. Settings that only apply to GCA (config.gca.*, gca.*, gate_init) are ignored for
  plain rows.
  """
  df = with_variant(df)
  replica = replica_setting_columns(df)
  configs = [
    c for c in df.columns if c.startswith("config.") and not c.startswith(_IGNORED_CONFIG_PREFIXES)
  ]
  # A replica column's config fallback only counts where the replica column does not tell the
  # runs apart already (rows from before the column existed).
  fallbacks = [c for c in configs if c in set(replica.values())]
  configs = [c for c in configs if c not in fallbacks]
  axes = [c for c in df.columns if c.startswith("axis.")]
  if axes:
    skip = set(_variant_axes(df))
    primary = [c for c in axes if c not in skip]
    extra = list(replica) + fallbacks + configs
  else:
    primary, extra = configs, list(replica) + fallbacks
  out = [c for c in primary if _varies(df, c)]
  for c in extra:
    if _splits(df, out, c):
      out.append(c)
  return out


def _setting_keys(df: pd.DataFrame, col: str) -> pd.Series:
  """`as_key` of a setting column; on plain rows "—" for GCA-only settings."""
  keys = df[col].map(as_key)
  return keys.where(df["variant"] != "plain", _BLANK) if _is_gca_only(col) else keys


def _varies(df: pd.DataFrame, col: str) -> bool:
  """Whether `col` takes several values (on GCA rows only, for a GCA-only setting)."""
  keys = df[col].map(as_key)
  if _is_gca_only(col):
    keys = keys[df["variant"] != "plain"]
  return keys.nunique() > 1


def _splits(df: pd.DataFrame, settings: Sequence[str], col: str) -> bool:
  """Whether `col` takes several values within one (model, dataset, variant, settings) group."""
  if not _varies(df, col):
    return False
  keys = _setting_keys(df, col)
  groups = [df[c].map(as_key) for c in ("model", "dataset", "variant") if c in df.columns]
  groups += [_setting_keys(df, c) for c in settings]
  if not groups:
    return True
  frame = pd.DataFrame({f"g{i}": g.to_numpy() for i, g in enumerate(groups)})
  frame["_v"] = keys.to_numpy()
  return bool(frame.groupby(list(frame.columns[:-1]), dropna=False)["_v"].nunique().max() > 1)


def width_of(df: pd.DataFrame) -> pd.Series:
  """The model width per row (config.model.width; NaN where the rows have no such column)."""
  if WIDTH_COLUMN in df.columns:
    return df[WIDTH_COLUMN].astype(object)
  return pd.Series(np.nan, index=df.index, dtype=object)


def short_name(col: str) -> str:
  """A setting column without its "axis." or "config." prefix."""
  for prefix in ("axis.", "config."):
    if col.startswith(prefix):
      return col[len(prefix) :]
  return col


def add_conditions(df: pd.DataFrame, settings: Sequence[str]) -> pd.DataFrame:
  """A copy of df with `setting` (a readable label of the condition) and `_k:<col>` key columns.

  GCA-only settings are blanked ("—") on plain rows and left out of their label.
  """
  df = df.copy()
  labels = []
  for c in settings:
    keys = df[c].map(as_key)
    if _is_gca_only(c):
      keys = keys.where(df["variant"] != "plain", _BLANK)
    df[f"_k:{c}"] = keys
  for i in range(len(df)):
    parts = [
      f"{short_name(c)}={df[f'_k:{c}'].iloc[i]}"
      for c in settings
      if df[f"_k:{c}"].iloc[i] != _BLANK
    ]
    labels.append(", ".join(parts))
  df["setting"] = labels
  return df


def condition_columns(settings: Sequence[str]) -> list[str]:
  """The group-by columns of an `add_conditions` frame: model, dataset, variant, `_k:<setting>`."""
  return ["model", "dataset", "variant"] + [f"_k:{c}" for c in settings]


def sorted_rows(frame: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
  """Stable sort by `cols`, variants in the paper's order (plain, early, stack, others).

  Other columns sort naturally ("hidden=64" before "hidden=128"); the index is reset.
  """
  if frame.empty:
    return frame
  return frame.sort_values(
    list(cols),
    kind="stable",
    key=lambda s: s.map(variant_sort_key) if s.name == "variant" else s.map(_natural_key),
  ).reset_index(drop=True)


def _natural_key(value: Any) -> tuple:
  """Sort key that orders "hidden=64" before "hidden=128" (digit runs compare as numbers)."""
  parts = re.split(r"(\d+(?:\.\d+)?)", as_key(value))
  return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


def require_columns(df: pd.DataFrame, cols: Iterable[str]) -> None:
  """Raises DataError (naming the first missing column as key) unless df has every column."""
  missing = [c for c in cols if c not in df.columns]
  if missing:
    raise DataError(f"expected column(s) {missing} in the runs frame", key=missing[0])
