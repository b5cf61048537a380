"""Resumable, checksum-verified downloads of public CDSR data sets.

  python -m orthoalign.datasets.download abxi-afk --out=data/raw/abxi-afk
  python -m orthoalign.datasets.download --list
  python -m orthoalign.datasets.download abxi-afk --out=DIR --base-url=http://mirror.example/abxi/

Each file is fetched into `<out>/<file>.part`, resumed with an HTTP Range request after an
interruption, verified (size, sha256) and only then renamed to `<out>/<file>`, so a final file is
always complete and correct. Where the registry knows no sha256 (ABXI's amb, raw Amazon dumps), the
first download's hash is recorded in `<out>/pins.json` (trust on first use) and every later
download into that folder must match it. Only `urllib.request` is used; every request has a
timeout. The data sets, their sources and checksums: remote.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import http.client
import json
import os
import posixpath
import re
import sys
import time
from typing import Any
import urllib.error
import urllib.request

import tqdm

import orthoalign
from orthoalign import errors
from orthoalign.datasets import remote
from orthoalign.datasets import store
from orthoalign.errors import DataError
from orthoalign.fileio import write_json

PINS_FILE = "pins.json"
PART_SUFFIX = ".part"
DEFAULT_TIMEOUT = 60.0  # Seconds per connect and per socket read.
DEFAULT_RETRIES = 3
_CHUNK = 1 << 16
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class _Interrupted(Exception):
  """A transfer stopped early; the .part file keeps what arrived and can be resumed."""


def _read_pins(out: str) -> dict[str, Any]:
  path = os.path.join(out, PINS_FILE)
  if not os.path.exists(path):
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      pins = json.load(f)
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
    raise DataError(f"unreadable pin file: {e}", path=path) from None
  if not isinstance(pins, dict):
    raise DataError("expected a JSON object {file: {sha256, bytes, url}}", path=path)
  return pins


def _join(base: str, path: str) -> str:
  return base.rstrip("/") + "/" + path.lstrip("/")


def _transfer(
  url: str, part: str, expected_bytes: int | None, timeout: float, progress: bool
) -> None:
  """Appends the rest of `url` to `part` (Range from its current size).

  Raises:
    _Interrupted: on a network failure, a timeout, a 5xx or a short body (resumable).
    DataError: on a client error (4xx) or an inconsistent server answer.
  """
  offset = os.path.getsize(part) if os.path.exists(part) else 0
  if expected_bytes is not None and offset > expected_bytes:
    os.unlink(part)  # Longer than the file can be: garbage, not a prefix.
    offset = 0
  headers = {"User-Agent": f"orthoalign/{orthoalign.__version__}"}
  if offset:
    headers["Range"] = f"bytes={offset}-"
  request = urllib.request.Request(url, headers=headers)
  try:
    response = urllib.request.urlopen(request, timeout=timeout)
  except urllib.error.HTTPError as e:
    e.close()
    if e.code == 416 and offset:
      # Nothing left past `offset`: the part is complete (verification decides) or garbage.
      if expected_bytes is None or offset == expected_bytes:
        return
      os.unlink(part)
      raise _Interrupted(f"server refused range {offset}-; restarting from 0") from None
    if e.code >= 500 or e.code == 429:
      raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
    raise DataError(f"HTTP {e.code} {e.reason}", key=url) from None
  except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
    raise _Interrupted(f"cannot connect: {getattr(e, 'reason', e)}") from None

  with response:
    if offset and response.status == 206:
      match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
      if not match or int(match.group(1)) != offset:
        raise DataError(
          f"asked for bytes {offset}- but got Content-Range "
          f"{response.headers.get('Content-Range')!r}",
          key=url,
        )
    elif offset:
      offset = 0  # A 200 ignores Range: the body is the whole file.
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    total = expected_bytes or (offset + length if length is not None else None)
    received = 0
    with (
      open(part, "r+b" if offset else "wb") as f,
      tqdm.tqdm(
        total=total,
        initial=offset,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=posixpath.basename(part[: -len(PART_SUFFIX)]),
        disable=not progress,
        leave=False,
      ) as bar,
    ):
      f.seek(offset)
      f.truncate()
      try:
        while True:
          chunk = response.read(_CHUNK)
          if not chunk:
            break
          f.write(chunk)
          received += len(chunk)
          bar.update(len(chunk))
      except (OSError, http.client.HTTPException) as e:
        raise _Interrupted(f"transfer failed after {offset + received} bytes: {e}") from None
      finally:
        # What arrived stays on disk for the next attempt.
        f.flush()
        os.fsync(f.fileno())
    if length is not None and received < length:
      raise _Interrupted(f"connection closed after {offset + received} of {offset + length} bytes")


def fetch(
  url: str,
  dest: str,
  *,
  expected_bytes: int | None = None,
  expected_sha256: str | None = None,
  pinned: dict[str, Any] | None = None,
  timeout: float = DEFAULT_TIMEOUT,
  retries: int = DEFAULT_RETRIES,
  retry_wait: float = 1.0,
  progress: bool = True,
  on_verified: Callable[[str], None] | None = None,
) -> str:
  """Downloads `url` to `dest` via `dest.part`, resuming and verifying.

  Args:
    url: http(s) URL.
    dest: final path; it appears only once the content is verified.
    expected_bytes: size to check, if known.
    expected_sha256: hex sha256 to check, if known (from the registry).
    pinned: the pin of this file ({'sha256', ...}) from an earlier download, if any.
    timeout: seconds per connect and per socket read.
    retries: automatic resumes after an interruption before giving up.
    retry_wait: seconds before the first retry; doubled each time.
    progress: show a tqdm progress bar.
    on_verified: called with the sha256 after verification, before the rename (to record a pin
      first: a crash in between then leaves a .part file that the pin verifies on the next run).

  Returns:
    The hex sha256 of the verified file.

  Raises:
    DataError: on a client error, after `retries` failed resumes (the .part file is kept: rerun to
      resume), or on a size / checksum mismatch (the .part file is deleted).
  """
  if not url.startswith(("http://", "https://")):
    raise DataError(f"expected an http(s) URL, got {url!r}", key="url")
  part = dest + PART_SUFFIX
  for attempt in range(retries + 1):
    try:
      _transfer(url, part, expected_bytes, timeout, progress)
      size = os.path.getsize(part)
      if expected_bytes is None or size >= expected_bytes:
        break
      raise _Interrupted(f"got {size} of {expected_bytes} bytes")
    except _Interrupted as e:
      if attempt == retries:
        kept = os.path.getsize(part) if os.path.exists(part) else 0
        raise DataError(
          f"download interrupted ({e}); {kept} bytes kept in {part}: rerun to resume", key=url
        ) from None
      time.sleep(retry_wait * 2**attempt)

  size = os.path.getsize(part)
  if expected_bytes is not None and size != expected_bytes:
    os.unlink(part)
    raise DataError(
      f"{size} bytes; expected {expected_bytes}; the partial file was deleted", key=url
    )
  sha = store.sha256_file(part)
  for want, source in (
    (expected_sha256, "the registry"),
    ((pinned or {}).get("sha256"), f"the pin in {PINS_FILE}"),
  ):
    if want is not None and sha != want:
      os.unlink(part)
      raise DataError(
        f"sha256 {sha} does not match {want} from {source}; the download was deleted", key=url
      )
  if on_verified is not None:
    on_verified(sha)
  os.replace(part, dest)
  return sha


def download(
  name_or_dataset: str | remote.RemoteDataset,
  out: str | os.PathLike[str],
  *,
  base_url: str | None = None,
  timeout: float = DEFAULT_TIMEOUT,
  retries: int = DEFAULT_RETRIES,
  retry_wait: float = 1.0,
  progress: bool = True,
) -> list[str]:
  """Downloads every file of a registered data set into `out`.

  Files already present are verified instead of fetched again. Files without a registry sha256
  are pinned in `<out>/pins.json` on first download; later downloads must match the pin.

  Args:
    name_or_dataset: a remote.REGISTRY name or a `remote.RemoteDataset`.
    out: destination folder (created if needed).
    base_url: replaces the data set's base URL (mirrors, tests).
    timeout: seconds per connect and per socket read.
    retries: automatic resumes per file after an interruption.
    retry_wait: seconds before the first retry; doubled each time.
    progress: show tqdm progress bars.

  Returns:
    The paths of the files, in registry order.

  Raises:
    DataError: on an unknown name (listing the valid ones), a failed download or a checksum
      mismatch.
  """
  if isinstance(name_or_dataset, remote.RemoteDataset):
    spec = name_or_dataset
  else:
    spec = remote.REGISTRY.get(name_or_dataset)
    if spec is None:
      raise DataError(
        f"unknown data set {name_or_dataset!r}; valid names: {', '.join(sorted(remote.REGISTRY))}",
        key="name",
      )
  out = os.fspath(out)
  os.makedirs(out, exist_ok=True)
  pins = _read_pins(out)
  base = base_url or spec.base_url
  paths = []
  for file in spec.files:
    url = _join(base, file.path)
    dest = os.path.join(out, file.name)
    pin = pins.get(file.name)
    if os.path.exists(dest):
      _verify_existing(dest, file, pin)
      print(f"{file.name}: present, verified", file=sys.stderr)
      paths.append(dest)
      continue

    def record_pin(sha: str, file=file, url=url, dest=dest) -> None:
      if file.sha256 is not None or file.name in pins:
        return
      pins[file.name] = {
        "sha256": sha,
        "bytes": file.bytes or os.path.getsize(dest + PART_SUFFIX),
        "url": url,
        "dataset": spec.name,
        "pinned": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      }
      write_json(os.path.join(out, PINS_FILE), pins)
      print(
        f"{file.name}: no published checksum; pinned sha256 {sha} in "
        f"{os.path.join(out, PINS_FILE)} (trust on first use)",
        file=sys.stderr,
      )

    sha = fetch(
      url,
      dest,
      expected_bytes=file.bytes,
      expected_sha256=file.sha256,
      pinned=pin,
      timeout=timeout,
      retries=retries,
      retry_wait=retry_wait,
      progress=progress,
      on_verified=record_pin,
    )
    print(
      f"{file.name}: downloaded, {os.path.getsize(dest):,} bytes, sha256 {sha}", file=sys.stderr
    )
    paths.append(dest)
  return paths


def _verify_existing(dest: str, file: remote.RemoteFile, pin: dict[str, Any] | None) -> str:
  """Checks a final file against the registry and the pin; returns its sha256."""
  size = os.path.getsize(dest)
  if file.bytes is not None and size != file.bytes:
    raise DataError(f"{size} bytes; expected {file.bytes}; delete it to download again", path=dest)
  want = file.sha256 or (pin or {}).get("sha256")
  if want is None:
    # Downloads are pinned before their rename, so this file did not come from here (perhaps
    # another data set's file of the same name): nothing vouches for it.
    raise DataError(
      f"exists but has no published checksum and no pin in {PINS_FILE}, so it "
      "cannot be verified; delete it to download again",
      path=dest,
    )
  sha = store.sha256_file(dest)
  if sha != want:
    raise DataError(f"sha256 {sha} does not match {want}; delete it to download again", path=dest)
  return sha


@errors.cli_main(also=(OSError,))
def main(argv: Sequence[str] | None = None) -> int:
  """Runs the CLI; returns the exit status."""
  parser = errors.ArgumentParser(
    prog="python -m orthoalign.datasets.download",
    description="Download a public CDSR data set (resumable, sha256-verified).",
  )
  parser.add_argument("name", nargs="?", help="data set name (see --list)")
  parser.add_argument("--out", help="destination folder")
  parser.add_argument("--base-url", default=None, help="replace the registry base URL (mirror)")
  parser.add_argument(
    "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per connect / socket read"
  )
  parser.add_argument(
    "--retries", type=int, default=DEFAULT_RETRIES, help="automatic resumes per file"
  )
  parser.add_argument("--list", action="store_true", help="list the registered data sets")
  parser.add_argument("--no-progress", action="store_true", help="no progress bars")
  args = parser.parse_args(argv)
  if args.list:
    for spec in remote.REGISTRY.values():
      print(f"{spec.name:<48} {spec.description}")
    return 0
  if not args.name:
    raise DataError(
      f"give a data set name; valid names: {', '.join(sorted(remote.REGISTRY))}", key="name"
    )
  if not args.out:
    raise DataError("give --out=DIR", key="--out")
  download(
    args.name,
    args.out,
    base_url=args.base_url,
    timeout=args.timeout,
    retries=args.retries,
    progress=not args.no_progress,
  )
  return 0


if __name__ == "__main__":
  sys.exit(main())
