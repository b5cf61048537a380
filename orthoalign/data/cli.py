"""Shared pieces of the data command-line tools (prepare, stats, download)."""

from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
  """Reports usage errors as `error: <message>` with exit status 1, like data errors."""

  def error(self, message: str):
    self.print_usage(sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)
