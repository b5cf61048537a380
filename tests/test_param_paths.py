"""Every Flax parameter path of the baselines is kept: renaming a module or a parameter changes
its initial weights (Flax derives them from the path) and breaks every saved checkpoint.

tests/fixtures/param_paths.json holds, for each baseline's tiny config (tests/contract.py TINY)
without and with GCA cells at positions 0 and 1, every trainable parameter's and frozen table's
path and shape. The four first baselines were written at c9662ce (before their settings got shared
names and the shared encoder stack). A new baseline adds its own entries, leaving the others as
they are:

  python tests/test_param_paths.py --add <name>

A change that renames a path fails here; one that means to (and migrates old checkpoints)
rewrites the file. The tiny LLM4CDSR checkpoint of tests/fixtures/run_f34b26e_tiny is restored by
test_old_runs.py.
"""

import argparse
import json
import os
import sys

import contract
import jax
import pytest

from orthoalign import fileio
from orthoalign import models
from orthoalign.datasets import load as data_load

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "param_paths.json")
POSITIONS = ((), (0, 1))


def _entry(name, positions):
  return f"{name}/gca{''.join(map(str, positions))}"


def _paths(name, positions):
  config = contract.tiny_config(name)
  config.gca.positions = positions
  model = models.baseline_class(name)(data_load.load(config.data), config)
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  leaves = jax.tree_util.tree_leaves_with_path
  out = {jax.tree_util.keystr(k): list(v.shape) for k, v in leaves(shapes)}
  out.update({"frozen" + jax.tree_util.keystr(k): list(v.shape) for k, v in leaves(model.frozen)})
  return out


def _recorded():
  with open(FIXTURE, encoding="utf-8") as f:
    return json.load(f)


def test_every_registered_model_is_recorded():
  missing = [n for n in models.names() if _entry(n, POSITIONS[0]) not in _recorded()]
  assert not missing, f"add them: python tests/test_param_paths.py --add {' '.join(missing)}"


@pytest.mark.parametrize("name", sorted(contract.TINY))
@pytest.mark.parametrize("positions", POSITIONS)
def test_every_parameter_path_and_shape_is_kept(name, positions):
  assert _paths(name, positions) == _recorded()[_entry(name, positions)]


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description="Record the parameter paths of new baselines.")
  parser.add_argument("--add", nargs="+", required=True, help="registered model names")
  names = parser.parse_args().add
  recorded = _recorded()
  for name in names:
    for positions in POSITIONS:
      if _entry(name, positions) in recorded:
        sys.exit(f"error: {_entry(name, positions)} is recorded already; it is not rewritten")
      recorded[_entry(name, positions)] = _paths(name, positions)
  fileio.atomic_write_text(FIXTURE, json.dumps(recorded, indent=1, sort_keys=True))
  print(f"recorded {', '.join(names)} in {FIXTURE}")
