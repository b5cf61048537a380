"""Each model's tiny config through the real entry point, as a user runs it.

Marked `smoke` (see setup.cfg): with the other `smoke` tests this is what `.ci/run` runs on the
newest jax/flax/optax/orbax-checkpoint the package index serves, in a second virtualenv. It is
`slow` too, since the default suite already trains every model in-process: run it with
`python -m pytest -q -m smoke` (or `-m slow`).
"""

import json
import os
import subprocess
import sys

import contract
import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(name, workdir, env):
  cmd = [
    sys.executable,
    "-m",
    "orthoalign.main",
    f"--config={contract.TINY[name]}",
    f"--workdir={workdir}",
    "--config.train.max_epochs=2",
    "--config.train.num_devices=1",
  ]
  return subprocess.run(
    cmd,
    cwd=ROOT,
    env=env,
    stdout=subprocess.PIPE,
    stderr=subprocess.STDOUT,
    text=True,
    timeout=600,
    check=False,
  )


@pytest.mark.slow
@pytest.mark.smoke
@pytest.mark.parametrize("name", sorted(contract.TINY))
def test_entry_point_trains_evaluates_and_reruns_each_model(name, tmp_path):
  # The suite's persistent compilation cache (conftest.py), shared with the subprocesses.
  env = {
    **os.environ,
    "ORTHOALIGN_COMPILE_CACHE": jax.config.jax_compilation_cache_dir,
    "ORTHOALIGN_CACHE": str(tmp_path / "cache"),
  }
  first = _main(name, tmp_path / "run", env)
  assert first.returncode == 0, first.stdout[-3000:]
  assert "Traceback" not in first.stdout
  with open(tmp_path / "run" / "results.jsonl") as f:
    rows = [json.loads(line) for line in f]
  assert rows and all(row["epochs_trained"] == 2 for row in rows)
  for key in ("test/sampled/all/ndcg@10", "test/full/all/mrr", "params/total"):
    assert all(row[key] == row[key] for row in rows), key  # present and not NaN
  # The same command again: resumed from the last checkpoint, the same results.
  again = _main(name, tmp_path / "run", env)
  assert again.returncode == 0, again.stdout[-3000:]
  with open(tmp_path / "run" / "results.jsonl") as f:
    rows_again = [json.loads(line) for line in f]
  metric = lambda rs: [r["test/sampled/all/ndcg@10"] for r in rs]
  assert metric(rows_again) == metric(rows)
