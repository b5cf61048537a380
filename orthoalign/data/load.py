"""`data.format` -> a CDSRDataset."""

from __future__ import annotations

import ml_collections

from orthoalign.data import dataset as dataset_lib
from orthoalign.data import synthetic


def load(data_cfg: ml_collections.ConfigDict) -> dataset_lib.CDSRDataset:
  """Loads (or generates) the dataset a config names."""
  if data_cfg.format == "synthetic":
    return synthetic.generate(synthetic.from_config_dict(data_cfg.synthetic))
  raise ValueError(f"data.format={data_cfg.format!r} is not supported yet; valid choices: ['synthetic']")
