"""Shared test setup: four fake CPU devices for the data-parallel tests."""

import glob
import os
import pathlib
import struct
import tempfile

import jax
import pytest

# Datasets read from files are cached; keep the tests' cache out of the user's ~/.cache.
os.environ["ORTHOALIGN_CACHE"] = tempfile.mkdtemp(prefix="orthoalign-test-cache-")

# Must happen before any device is touched; single-device tests select devices[:1] themselves.
jax.config.update("jax_num_cpu_devices", 4)

# The same tests on a GPU or TPU: float32 matmuls in full float32 (not TF32 or bfloat16 passes), so
# comparisons with numpy references hold, and reductions without atomics (e.g. the scatter-add of
# an embedding gradient), so a resumed run equals an uninterrupted one bit for bit. No effect on a
# CPU. Appended to any XLA_FLAGS given (e.g. --xla_cpu_max_isa=AVX2), and inherited by the
# subprocesses the tests start.
jax.config.update("jax_default_matmul_precision", "highest")
os.environ["XLA_FLAGS"] = " ".join(
  filter(None, [os.environ.get("XLA_FLAGS"), "--xla_gpu_deterministic_ops=true"])
)

SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"


def require_data(name: str) -> pathlib.Path:
  """Returns ../shared/data/<name>; skips (or fails under ORTHOALIGN_REQUIRE_DATA=1) if absent."""
  path = SHARED_DATA / name
  if not path.is_dir():
    msg = f"real data {path} is absent (CI provides ../shared/data beside the checkout)"
    if os.environ.get("ORTHOALIGN_REQUIRE_DATA") == "1":
      pytest.fail(msg + "; ORTHOALIGN_REQUIRE_DATA=1 forbids skipping")
    pytest.skip(msg)
  return path


# Many tests compile the same programs (same shapes, fresh closures): a persistent compilation cache
# turns those recompilations into cache hits. It lives under the system temp folder, per user, and
# is shared by the test processes (pytest -n) and by the runs the tests start as subprocesses
# (through the environment). No size bound: with one, JAX rescans the whole folder at every write,
# which made the suite's thousands of small entries twice as slow. An entry another process is
# still writing reads as a miss (JAX warns and compiles).
TEST_JAX_CACHE = os.path.join(os.environ.get("TMPDIR", "/tmp"), "orthoalign-test-jax-cache")
for name, value in (
  ("jax_compilation_cache_dir", TEST_JAX_CACHE),
  ("jax_persistent_cache_min_compile_time_secs", 0.0),
  ("jax_persistent_cache_min_entry_size_bytes", 0),
):
  jax.config.update(name, value)
  os.environ[name.upper()] = str(value)
# Several test processes on one GPU: each takes the memory it needs, not 75 % of it up front.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def tiny_config(**overrides):
  """configs/tiny.py with GCA_early on one device, a checkpoint per epoch, overrides."""
  from configs import tiny

  cfg = tiny.get_config()
  cfg.gca.positions = (0,)
  cfg.train.checkpoint_every = 1  # the resumption tests count on one checkpoint per epoch
  cfg.train.num_devices = 1
  cfg.update_from_flattened_dict(overrides)
  return cfg


def tiny_run(workdir, **overrides):
  """Trains `tiny_config(**overrides)` in `workdir`; returns the result rows."""
  from orthoalign.train import loop

  return loop.train_and_evaluate(tiny_config(**overrides), str(workdir))


def tb_points(logdir):
  """(tag, step) of every scalar TensorBoard shows: event files in order, a SessionLog START at
  step s hides the earlier points with step >= s (TensorBoard's purge).
  """
  from tensorboardX.proto import event_pb2

  points = []
  for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
    with open(path, "rb") as f:
      data = f.read()
    pos = 0
    while pos + 12 <= len(data):
      (length,) = struct.unpack("<Q", data[pos : pos + 8])
      event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
      pos += 12 + length + 4
      if event.HasField("session_log") and event.session_log.status == event.session_log.START:
        points = [p for p in points if p[1] < event.step]
      for value in event.summary.value:
        points.append((value.tag, event.step))
  return points
