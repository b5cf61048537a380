"""Multi-process runs on this CPU: 2 processes x 2 CPU devices against 1 process x 4 devices.

Each process is `python -m orthoalign.main ... --distributed=explicit` on localhost (CPU collectives
over gloo, JAX's default); see orthoalign/train/distributed.py and docs/scaling.md.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.test_resume_faults import TIMING_KEYS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Results of 2 x 2 devices vs 1 x 4: the same program over the same global mesh; cross-process
# all-reduces may add in another order, so sums can differ in the last bits.
RTOL, ATOL = 1e-4, 1e-5


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _env(devices: int) -> dict:
  flags = [os.environ.get("XLA_FLAGS", ""), f"--xla_force_host_platform_device_count={devices}"]
  env = dict(os.environ, XLA_FLAGS=" ".join(filter(None, flags)), JAX_PLATFORMS="cpu")
  env.pop("ORTHOALIGN_COORDINATOR_ADDRESS", None)
  return env


def _main(workdir, *extra, epochs=3) -> list[str]:
  return [
    sys.executable,
    "-m",
    "orthoalign.main",
    "--config=configs/tiny.py",
    f"--workdir={workdir}",
    f"--config.train.max_epochs={epochs}",
    "--config.train.num_devices=0",
    "--config.train.checkpoint_every=1",
    *extra,
  ]


def _start_pair(workdir, *extra, heartbeat=10, epochs=3):
  port = _free_port()
  return [
    subprocess.Popen(
      _main(
        workdir,
        "--distributed=explicit",
        f"--coordinator_address=localhost:{port}",
        "--num_processes=2",
        f"--process_id={i}",
        f"--heartbeat_timeout_s={heartbeat}",
        *extra,
        epochs=epochs,
      ),
      cwd=ROOT,
      env=_env(2),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]


def _rows(workdir):
  with open(os.path.join(workdir, "results.jsonl")) as f:
    return [json.loads(line) for line in f]


def _compare(a: dict, b: dict, path="", skip=()):
  skip = set(TIMING_KEYS) | {"run", "num_processes", "train.num_devices", *skip}
  assert set(a) == set(b), path
  for k in a:
    if k in skip:
      continue
    if isinstance(a[k], dict):
      _compare(a[k], b[k], f"{path}{k}.", skip)
    elif isinstance(a[k], float):
      assert a[k] == pytest.approx(b[k], rel=RTOL, abs=ATOL), f"{path}{k}"
    else:
      assert a[k] == b[k], f"{path}{k}"


def _single(workdir, devices, *extra):
  one = subprocess.run(
    _main(workdir, *extra), cwd=ROOT, env=_env(devices), capture_output=True, text=True, timeout=600
  )
  assert one.returncode == 0, one.stdout[-2000:] + one.stderr[-2000:]
  return _rows(workdir)


@pytest.mark.slow  # ~5 min on 2 cores: six processes compile and train
def test_two_processes_equal_one_process_over_the_same_devices(tmp_path):
  rows_one = _single(tmp_path / "one", 4)
  # The data-parallel program over 4 devices is the 1-device program (same global batch).
  rows_dev1 = _single(tmp_path / "dev1", 1)
  for a, b in zip(rows_one, rows_dev1):
    _compare(a, b, skip=("num_devices",))
  # 2 epochs as 2 processes, then the same command with 3 epochs resumes from the multi-process
  # checkpoint: every process restores, agrees on the epoch, and ends where 1 x 4 devices ends.
  for epochs in (2, 3):
    procs = _start_pair(tmp_path / "two", epochs=epochs)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
  assert "4 x cpu over 2 processes" in outs[0] and "Resumed from" in outs[0]
  assert "epoch 3/3" in outs[0] and "epoch" not in outs[1]  # process 0 alone prints and writes
  rows_two = _rows(tmp_path / "two")
  assert rows_two[0]["num_processes"] == 2 and rows_one[0]["num_processes"] == 1
  assert rows_two[0]["num_devices"] == rows_one[0]["num_devices"] == 4
  for a, b in zip(rows_one, rows_two):
    _compare(a, b)


def test_mesh_step_equals_pmap_step():
  """The trainer's data-parallel form (jit over a ("data",) mesh with NamedSharding) computes what
  jax.pmap's classic form does (per-device gradients, psum): docs/scaling.md, "Why jax.jit".
  """
  script = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
x = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
y = np.random.default_rng(1).normal(size=(32,)).astype(np.float32)
w = np.random.default_rng(2).normal(size=(8,)).astype(np.float32)
loss = lambda w, x, y: jnp.sum((jnp.tanh(x @ w) - y) ** 2)
mesh = Mesh(np.asarray(jax.devices()), ("data",))
g_mesh = jax.jit(jax.grad(loss))(jax.device_put(w, NamedSharding(mesh, P())),
                                 jax.device_put(x, NamedSharding(mesh, P("data"))),
                                 jax.device_put(y, NamedSharding(mesh, P("data"))))
assert len(g_mesh.sharding.device_set) == 4 and g_mesh.sharding.is_fully_replicated
g_pmap = jax.pmap(lambda w, x, y: jax.lax.psum(jax.grad(loss)(w, x, y), "d"), axis_name="d")(
    np.broadcast_to(w, (4, 8)), x.reshape(4, 8, 8), y.reshape(4, 8))
np.testing.assert_allclose(np.asarray(g_mesh), np.asarray(g_pmap[0]), rtol=1e-5, atol=1e-6)
print("equal", float(np.abs(np.asarray(g_mesh) - np.asarray(g_pmap[0])).max()))
"""
  out = subprocess.run(
    [sys.executable, "-c", script], env=_env(4), capture_output=True, text=True, timeout=300
  )
  assert out.returncode == 0 and "equal" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


@pytest.mark.slow  # ~1.5 min: two processes compile, then one is killed
def test_a_lost_process_stops_the_others_with_a_message(tmp_path):
  procs = _start_pair(tmp_path / "run", heartbeat=5, epochs=100000)
  # Wait until both train (the first checkpoint), then kill process 1.
  deadline = time.time() + 300
  ckpts = tmp_path / "run" / "checkpoints"
  while (
    time.time() < deadline
    and all(p.poll() is None for p in procs)
    and not (ckpts.is_dir() and any(f.name.isdigit() for f in ckpts.iterdir()))
  ):
    time.sleep(0.5)
  assert all(p.poll() is None for p in procs), procs[0].communicate()[0][-3000:]
  time.sleep(2.0)
  procs[1].send_signal(signal.SIGKILL)
  try:
    out = procs[0].communicate(timeout=120)[0]
  finally:
    for p in procs:
      p.kill()
  # JAX's coordination service aborts the survivor (SIGABRT, not a Python exception) once the lost
  # process has missed its heartbeats, naming it: nothing hangs, the message says what happened.
  assert procs[0].returncode != 0
  assert "stopped sending heartbeats" in out and "unhealthy" in out, out[-3000:]


def test_processes_with_different_configs_stop_with_one_line(tmp_path):
  port = _free_port()
  procs = [
    subprocess.Popen(
      _main(
        tmp_path / "run",
        "--distributed=explicit",
        f"--coordinator_address=localhost:{port}",
        "--num_processes=2",
        f"--process_id={i}",
        "--heartbeat_timeout_s=5",
        epochs=2 + i,
      ),
      cwd=ROOT,
      env=_env(2),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
    )
    for i in range(2)
  ]
  outs = [p.communicate(timeout=300)[0] for p in procs]
  for i, (p, out) in enumerate(zip(procs, outs)):
    assert p.returncode == 1, out[-2000:]
    assert (
      f"error: the processes disagree on the orthoalign version and config: process(es) [1] "
      f"differ from process 0 (this is process {i})"
    ) in out
  assert not (tmp_path / "run" / "config.json").exists()  # nothing was written


def test_auto_mode_joins_only_detected_clusters(monkeypatch):
  from orthoalign.train import distributed

  calls = []
  monkeypatch.setattr(distributed.jax.distributed, "initialize", lambda **kw: calls.append(kw))
  for var in ("SLURM_STEP_NUM_TASKS", "TPU_WORKER_HOSTNAMES", *distributed._ENV.values()):
    monkeypatch.delenv(var, raising=False)
  distributed.initialize("auto")
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "1")  # one task (e.g. a grid's submitit job)
  distributed.initialize("auto")
  assert calls == []
  monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "4")  # an srun step of 4 tasks: JAX detects it
  distributed.initialize("auto", heartbeat_timeout_s=7)
  distributed.initialize("off")
  assert calls == [{"heartbeat_timeout_seconds": 7}]


def test_explicit_mode_names_what_is_missing(monkeypatch):
  from orthoalign import errors
  from orthoalign.train import distributed

  monkeypatch.setattr(
    distributed.jax.distributed,
    "initialize",
    lambda **kw: (_ for _ in ()).throw(RuntimeError("unreachable\nmore")),
  )
  for var in distributed._ENV.values():
    monkeypatch.delenv(var, raising=False)
  with pytest.raises(
    errors.ConfigError, match="--distributed=explicit needs --coordinator_address, --num_processes"
  ):
    distributed.initialize("explicit", process_id=0)
  with pytest.raises(errors.ConfigError, match=r"--process_id=2 must be in 0..1"):
    distributed.initialize("explicit", "localhost:1", 2, 2)
  monkeypatch.setenv("ORTHOALIGN_COORDINATOR_ADDRESS", "localhost:1")
  monkeypatch.setenv("ORTHOALIGN_NUM_PROCESSES", "2")
  monkeypatch.setenv("ORTHOALIGN_PROCESS_ID", "1")
  with pytest.raises(
    errors.RunError,
    match=r"jax.distributed.initialize\(coordinator_address="
    r"'localhost:1', num_processes=2, process_id=1\) failed: unreachable$",
  ):
    distributed.initialize("auto")  # the environment alone makes it explicit
  with pytest.raises(errors.ConfigError, match="--distributed='pod'"):
    distributed.initialize("pod")
