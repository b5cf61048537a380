"""The click model's host arrays: one row per impression, every stream's window before it."""

from __future__ import annotations

import numpy as np

from orthoalign.datasets import impressions

# Impression groups every metric is also reported for (an impression's group, not its user's).
GROUPS = ("cold", "warm")  # no earlier click in the target domain / at least one


def arrays(
  data: impressions.ClickData, rows: np.ndarray, target_len: int, source_len: int
) -> dict[str, np.ndarray]:
  """The model's inputs and the evaluation's keys for impressions `rows`.

  Returns:
    {"ad" int32 [N], "label" float32 [N], "user" int64 [N], "group/cold" bool [N],
    "target/items", "target/time" [N, target_len], and per source "<s>/items", "<s>/value",
    "<s>/time" [N, source_len]}; times are int32 seconds before the impression (<= 0, 0 in the
    padding).
  """
  imp_s = data.ts_ms[rows] // 1000
  out = {
    "ad": data.item[rows].astype(np.int32),
    "label": data.label[rows].astype(np.float32),
    "user": data.user[rows],
    "group/cold": data.history_lengths(data.target)[rows] == 0,
  }
  for name, length in ((data.target, target_len), *((s, source_len) for s in data.sources)):
    items, value, ts = data.window(name, rows, length)
    key = "target" if name == data.target else name
    out[f"{key}/items"] = items
    out[f"{key}/time"] = np.where(items > 0, ts // 1000 - imp_s[:, None], 0).astype(np.int32)
    if name != data.target:
      out[f"{key}/value"] = value
  return out


def model_inputs(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """The arrays the model reads (not the label, user and groups)."""
  return {
    k: v for k, v in batch.items() if k not in ("label", "user") and not k.startswith("group/")
  }


def train_inputs(rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  """What a training step reads: the model's inputs and the label."""
  return {**model_inputs(rows), "label": rows["label"]}
