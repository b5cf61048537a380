"""`Format`: how one on-disk format that `data.format` names is read. Each reader module defines
its record (`FORMAT`); datasets/formats.py registers them, once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
import glob
import os
from typing import Any

from orthoalign.datasets import dataset as dataset_lib


def folder_files(path: str) -> list[str]:
  """Every file of the folder `path`, sorted, but hidden files and READMEs."""
  return sorted(
    f
    for f in glob.glob(os.path.join(path, "*"))
    if os.path.isfile(f) and not os.path.basename(f).startswith((".", "README"))
  )


@dataclasses.dataclass(frozen=True)
class Format:
  """One file-based dataset format.

  Attributes:
    name: the value of `data.format`.
    summary: what the folder holds, one line (docs and `python -m orthoalign.datasets.stats`).
    read: read(path, bad, **options) -> CDSRDataset; `bad` is the run's badlines.BadLines.
    options: reader option (`data.reader_options.<name>`) -> default; {} for none.
    sources: sources(path, **options) -> the files whose change rebuilds the cache; None: every
      file of the folder (`folder_files`).
    check: check(**options) raises DataError (naming `data.reader_options.<key>`) for a value
      the reader refuses, so that a config is refused before any file is read; None: no check.
    file_or_folder: `data.path` may name one file as well as a folder.
    reports: `read` takes `report=`, a dict it fills with what the manifest records beside the
      bad lines (e.g. the filters' passes).
  """

  name: str
  summary: str
  read: Callable[..., dataset_lib.CDSRDataset]
  options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  sources: Callable[..., list[str]] | None = None
  check: Callable[..., Any] | None = None
  file_or_folder: bool = False
  reports: bool = False

  def source_files(self, path: str, options: Mapping[str, Any]) -> list[str]:
    return folder_files(path) if self.sources is None else self.sources(path, **options)
