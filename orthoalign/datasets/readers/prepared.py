"""The `prepared` format: a folder written by `python -m orthoalign.datasets.prepare` (or
`store.save_dataset`): dataset.npz + manifest.json.
"""

from __future__ import annotations

import os

from orthoalign.datasets import dataset as dataset_lib
from orthoalign.datasets import store
from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import format as format_lib


def _read(path: str, bad: BadLines) -> dataset_lib.CDSRDataset:
  del bad  # a prepared dataset was checked when it was written
  return store.load_dataset(path)[0]


FORMAT = format_lib.Format(
  name="prepared",
  summary="a folder written by python -m orthoalign.datasets.prepare (dataset.npz, manifest.json)",
  read=_read,
  sources=lambda path: [
    os.path.join(path, store.MANIFEST_FILE),
    os.path.join(path, store.DATASET_FILE),
  ],
)
