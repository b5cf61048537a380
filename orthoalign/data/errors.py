"""The library's single error type for malformed or inconsistent data."""

import os


class DataError(ValueError):
  """Bad data: a malformed file, an inconsistent array, an unknown config key.

  The message is prefixed with where the problem is, so that a user can go
  straight to it: `path:line: key: what was expected`, each part omitted when
  it does not apply. The parts are also kept as attributes for programmatic
  use (e.g. tests that check which line was blamed).

  Attributes:
    path: the offending file, or None for in-memory data.
    line: 1-based line number within `path`, or None.
    key: the field / user / config key at fault, or None.
    detail: the bare description of the problem, without the location prefix.
  """

  def __init__(
    self,
    detail: str,
    *,
    path: str | os.PathLike[str] | None = None,
    line: int | None = None,
    key: str | None = None,
  ):
    self.path = None if path is None else os.fspath(path)
    self.line = line
    self.key = key
    self.detail = detail
    location = ""
    if self.path is not None:
      location = self.path if line is None else f"{self.path}:{line}"
    elif line is not None:
      location = f"line {line}"
    prefix = ": ".join(p for p in (location, key) if p)
    super().__init__(f"{prefix}: {detail}" if prefix else detail)
