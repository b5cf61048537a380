"""Every Flax parameter path of the baselines is kept: renaming a module or a parameter changes
its initial weights (Flax derives them from the path) and breaks every saved checkpoint.

tests/fixtures/param_paths.json holds, for each baseline's tiny config without and with GCA cells
at positions 0 and 1, every trainable parameter's and frozen table's path and shape, written at
c9662ce (before the baselines' settings got shared names and the shared encoder stack). A change
that renames a path fails here; one that means to (and migrates old checkpoints) rewrites the file.
The tiny LLM4CDSR checkpoint of tests/fixtures/run_f34b26e_tiny is restored by test_old_runs.py.
"""

import json
import os

import jax
import pytest

from configs import tiny
from configs import tiny_abxi
from configs import tiny_cdsrnp
from configs import tiny_sasrec
from orthoalign import models
from orthoalign.data import load as data_load

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "param_paths.json")
CONFIGS = {"llm4cdsr": tiny, "abxi": tiny_abxi, "cdsrnp": tiny_cdsrnp, "sasrec": tiny_sasrec}


def _paths(name, positions):
  config = CONFIGS[name].get_config()
  config.gca.positions = positions
  model = models.baseline_class(name)(data_load.load(config.data), config)
  shapes = jax.eval_shape(model.init, jax.random.key(0))
  out = {
    jax.tree_util.keystr(k): list(v.shape) for k, v in jax.tree_util.tree_leaves_with_path(shapes)
  }
  for k, v in jax.tree_util.tree_leaves_with_path(model.frozen):
    out["frozen" + jax.tree_util.keystr(k)] = list(v.shape)
  return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("positions", [(), (0, 1)])
def test_every_parameter_path_and_shape_is_kept(name, positions):
  with open(FIXTURE, encoding="utf-8") as f:
    expected = json.load(f)[f"{name}/gca{''.join(map(str, positions))}"]
  assert _paths(name, positions) == expected
