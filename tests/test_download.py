"""Tests for the downloader, against a local HTTP server (never a real host)."""

import hashlib
import http.server
import json
import os
import re
import threading
import time

from conftest import SHARED_DATA
import pytest

from orthoalign.datasets import download
from orthoalign.datasets import remote
from orthoalign.datasets.remote import RemoteDataset
from orthoalign.datasets.remote import RemoteFile
from orthoalign.errors import DataError

BIG = bytes(range(256)) * 1000  # 256,000 bytes: several read chunks.
SMALL = b"user\titems\n1\t1,2,3\n"


def sha(data: bytes) -> str:
  return hashlib.sha256(data).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
  """Serves `server.files` with Range support; misbehaves on request (see `Server`)."""

  def do_GET(self):
    server = self.server
    server.requests.append((self.path, self.headers.get("Range")))
    data = server.files.get(self.path)
    if data is None:
      self.send_error(404)
      return
    if server.delay:
      time.sleep(server.delay)
    start = 0
    match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
    if match and server.ranges:
      start = int(match.group(1))
      if start >= len(data):
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{len(data)}")
        self.send_header("Content-Length", "0")
        self.end_headers()
        return
      self.send_response(206)
      self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
    else:
      self.send_response(200)
    body = data[start:]
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    if server.truncate > 0:
      # Promise the whole body, send a third of it, hang up.
      server.truncate -= 1
      self.wfile.write(body[: len(body) // 3])
      self.wfile.flush()
      self.close_connection = True
      return
    self.wfile.write(body)

  def log_message(self, *args):
    pass


class Server(http.server.ThreadingHTTPServer):
  daemon_threads = True
  block_on_close = False  # A handler still sleeping for the timeout test must not hold teardown.

  def handle_error(self, request, client_address):
    pass  # Clients that hang up early (timeout, failing tests) are expected here.


@pytest.fixture
def server():
  srv = Server(("127.0.0.1", 0), Handler)
  srv.files = {"/d/big.bin": BIG, "/d/sub/small.txt": SMALL}
  srv.requests = []
  srv.truncate = 0  # Number of responses to cut short.
  srv.ranges = True  # False: ignore Range, always answer 200 with the whole file.
  srv.delay = 0.0  # Seconds to wait before answering.
  thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
  thread.start()
  srv.base = f"http://127.0.0.1:{srv.server_address[1]}/d/"
  yield srv
  srv.shutdown()
  srv.server_close()


def spec(known_sha: bool = True) -> RemoteDataset:
  return RemoteDataset(
    "fixture",
    "http://unused.invalid/",
    (
      RemoteFile("big.bin", len(BIG), sha(BIG) if known_sha else None),
      RemoteFile("sub/small.txt", len(SMALL), sha(SMALL) if known_sha else None),
    ),
  )


def get(out, srv, **kwargs):
  kwargs = {"base_url": srv.base, "progress": False, "retries": 0, "timeout": 5, **kwargs}
  return download.download(kwargs.pop("dataset", spec()), out, **kwargs)


def listing(folder) -> set[str]:
  return set(os.listdir(folder))


def test_full_download(tmp_path, server):
  paths = get(tmp_path, server)
  assert [os.path.basename(p) for p in paths] == ["big.bin", "small.txt"]
  assert (tmp_path / "big.bin").read_bytes() == BIG
  assert (tmp_path / "small.txt").read_bytes() == SMALL
  assert listing(tmp_path) == {"big.bin", "small.txt"}  # No .part, no pins for known sums.
  assert server.requests == [("/d/big.bin", None), ("/d/sub/small.txt", None)]
  # Present and verified: no new request.
  get(tmp_path, server)
  assert len(server.requests) == 2


def test_resume_from_partial(tmp_path, server):
  (tmp_path / "big.bin.part").write_bytes(BIG[:100_000])
  get(tmp_path, server)
  assert (tmp_path / "big.bin").read_bytes() == BIG
  assert server.requests[0] == ("/d/big.bin", "bytes=100000-")
  assert not (tmp_path / "big.bin.part").exists()


def test_complete_part_is_not_downloaded_again(tmp_path, server):
  (tmp_path / "big.bin.part").write_bytes(BIG)
  get(tmp_path, server)
  assert (tmp_path / "big.bin").read_bytes() == BIG
  assert server.requests[0] == ("/d/big.bin", f"bytes={len(BIG)}-")  # Answered 416.


def test_server_ignoring_range_restarts(tmp_path, server):
  server.ranges = False
  (tmp_path / "big.bin.part").write_bytes(BIG[:5000])
  get(tmp_path, server)
  assert (tmp_path / "big.bin").read_bytes() == BIG


def test_truncated_body_fails_cleanly_then_resumes(tmp_path, server):
  server.truncate = 1
  with pytest.raises(
    DataError,
    match=r"connection closed after \d+ of 256000 bytes.*rerun to "
    "resume",
  ):
    get(tmp_path, server)
  assert listing(tmp_path) == {"big.bin.part"}  # No final file.
  kept = (tmp_path / "big.bin.part").stat().st_size
  assert 0 < kept < len(BIG)
  get(tmp_path, server)
  assert server.requests[-2] == ("/d/big.bin", f"bytes={kept}-")
  assert (tmp_path / "big.bin").read_bytes() == BIG


def test_truncated_body_retried_automatically(tmp_path, server):
  server.truncate = 2
  get(tmp_path, server, retries=2, retry_wait=0.0)
  assert (tmp_path / "big.bin").read_bytes() == BIG
  ranges = [r for p, r in server.requests if p == "/d/big.bin"]
  assert ranges[0] is None and all(r.startswith("bytes=") for r in ranges[1:])


def test_checksum_mismatch_deletes_download(tmp_path, server):
  server.files["/d/big.bin"] = BIG[:-1] + b"X"  # Same size, different content.
  with pytest.raises(DataError, match="sha256 .* does not match .* from the registry"):
    get(tmp_path, server)
  assert listing(tmp_path) == set()  # Neither final nor part file.


def test_size_mismatch_deletes_download(tmp_path, server):
  server.files["/d/big.bin"] = BIG + b"extra"
  with pytest.raises(DataError, match="256005 bytes; expected 256000"):
    get(tmp_path, server)
  assert listing(tmp_path) == set()


def test_trust_on_first_use(tmp_path, server):
  get(tmp_path, server, dataset=spec(known_sha=False))
  pins = json.loads((tmp_path / "pins.json").read_text())
  assert pins["big.bin"]["sha256"] == sha(BIG)
  assert pins["small.txt"]["url"] == server.base + "sub/small.txt"
  # The server's copy changes: a fresh download must match the pin.
  (tmp_path / "big.bin").unlink()
  server.files["/d/big.bin"] = b"Y" * len(BIG)
  with pytest.raises(DataError, match="does not match .* the pin in pins.json"):
    get(tmp_path, server, dataset=spec(known_sha=False))
  assert not (tmp_path / "big.bin").exists() and not (tmp_path / "big.bin.part").exists()


def test_existing_file_is_verified(tmp_path, server):
  get(tmp_path, server)
  (tmp_path / "small.txt").write_bytes(SMALL.upper())
  with pytest.raises(DataError, match="small.txt: sha256 .* delete it to download again"):
    get(tmp_path, server)


def test_http_error(tmp_path, server):
  dataset = RemoteDataset("x", "", (RemoteFile("missing.bin"),))
  with pytest.raises(DataError, match="missing.bin: HTTP 404"):
    get(tmp_path, server, dataset=dataset)
  assert listing(tmp_path) == set()


def test_timeout_is_bounded(tmp_path, server):
  server.delay = 2.0
  # Without the timeout the answer would come after 2 s and the download succeed.
  with pytest.raises(DataError, match="interrupted"):
    get(tmp_path, server, timeout=0.3)
  assert not (tmp_path / "big.bin").exists()


def test_connection_refused(tmp_path):
  with pytest.raises(DataError, match="cannot connect"):
    download.download(
      spec(), tmp_path, base_url="http://127.0.0.1:9/", progress=False, retries=0, timeout=2
    )


def test_unknown_name_lists_valid_names(tmp_path, capsys):
  with pytest.raises(DataError, match="unknown data set 'nope'; valid names: .*abxi-afk"):
    download.download("nope", tmp_path)
  assert download.main(["nope", f"--out={tmp_path}"]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: name: unknown data set 'nope'") and "llmcdsr-food-kitchen" in err


def test_cli(tmp_path, server, monkeypatch, capsys):
  monkeypatch.setitem(remote.REGISTRY, "fixture", spec())
  out = tmp_path / "out"
  assert (
    download.main(["fixture", f"--out={out}", f"--base-url={server.base}", "--no-progress"]) == 0
  )
  assert (out / "big.bin").read_bytes() == BIG
  assert download.main(["fixture"]) == 1
  assert "error: --out: give --out=DIR" in capsys.readouterr().err
  assert download.main(["--list"]) == 0
  assert "abxi-afk" in capsys.readouterr().out


def test_registry_is_well_formed():
  assert {
    "abxi-afk",
    "abxi-abe",
    "abxi-amb",
    "llmcdsr-food-kitchen",
    "amazon2014-ratings-Grocery_and_Gourmet_Food",
  } <= set(remote.REGISTRY)
  for name, dataset in remote.REGISTRY.items():
    assert dataset.name == name and dataset.files
    assert dataset.base_url.startswith(("http://", "https://")) and dataset.base_url.endswith("/")
    assert len({f.name for f in dataset.files}) == len(dataset.files)
    for file in dataset.files:
      assert file.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", file.sha256)


@pytest.mark.parametrize(
  "name, folder", [("abxi-afk", "abxi-afk"), ("llmcdsr-food-kitchen", "llmcdsr-food-kitchen")]
)
def test_registry_matches_shared_copies(name, folder):
  """Where ../shared/data holds byte-exact copies, the registry's sizes and sums agree."""
  root = SHARED_DATA / folder
  if not root.is_dir():
    pytest.skip(f"{root} is absent")
  checked = 0
  for file in remote.REGISTRY[name].files:
    local = root / file.name
    if file.sha256 is None or not local.exists():
      continue
    data = local.read_bytes()
    assert (len(data), sha(data)) == (file.bytes, file.sha256), file.name
    checked += 1
  assert checked >= 3


def test_pin_is_recorded_before_the_rename(tmp_path, server, monkeypatch):
  """A crash between pinning and renaming leaves a .part that the pin verifies next time."""
  real_replace = os.replace

  def crash(src, dst):
    if str(dst).endswith("big.bin"):
      raise KeyboardInterrupt
    real_replace(src, dst)

  monkeypatch.setattr(download.os, "replace", crash)
  with pytest.raises(KeyboardInterrupt):
    get(tmp_path, server, dataset=spec(known_sha=False))
  monkeypatch.setattr(download.os, "replace", real_replace)
  assert json.loads((tmp_path / "pins.json").read_text())["big.bin"]["sha256"] == sha(BIG)
  assert (tmp_path / "big.bin.part").read_bytes() == BIG and not (tmp_path / "big.bin").exists()
  get(tmp_path, server, dataset=spec(known_sha=False))
  assert (tmp_path / "big.bin").read_bytes() == BIG


def test_unverifiable_existing_file_is_refused(tmp_path, server):
  (tmp_path / "big.bin").write_bytes(BIG)  # Not downloaded here: no pin.
  with pytest.raises(DataError, match="big.bin: exists but has no published checksum and no pin"):
    get(tmp_path, server, dataset=spec(known_sha=False))
