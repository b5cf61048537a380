"""Parameter counts without training, GCA unit size, parameter matching and the scaling grid."""

import pytest

from configs import tiny
from orthoalign import errors
from orthoalign.experiments import scaling
from orthoalign.models import gca
from orthoalign.models import param_count


def _config(**updates):
  return param_count.with_values(tiny.get_config(), {"gca.positions": (), **updates})


@pytest.mark.parametrize("ffn,layernorm", [(0, "none"), (2, "post")])
def test_gca_unit_params_matches_the_model(ffn, layernorm):
  plain = param_count.count(_config())
  with_gca = param_count.count(
    _config(**{"gca.positions": (0,), "gca.ffn": ffn, "gca.layernorm": layernorm})
  )
  d = tiny.get_config().model.width
  assert with_gca[0] - plain[0] == gca.unit_params(d, ffn, layernorm=layernorm)
  assert with_gca[1] - plain[1] == with_gca[0] - plain[0]  # the cells are trainable
  assert plain[0] > plain[1] > 0  # frozen text tables count in total


def test_count_equals_initialised_parameters(tmp_path):
  from orthoalign.train import loop

  # With a GCA cell, as the training tests' tiny runs have it: their compiled programs serve here.
  config = _config(**{"gca.positions": (0,), "train.max_epochs": 1, "train.num_devices": 1})
  row = loop.train_and_evaluate(config, str(tmp_path))[0]
  assert param_count.count(config) == (row["params/total"], row["params/trainable"])


def test_match_within_one_percent_and_records_counts():
  target = param_count.count(_config(**{"gca.positions": (0,), "gca.ffn": 2}))[0]
  m = param_count.match(_config(), target)
  assert m.key == "model.ffn" and abs(m.rel_error) <= 0.01
  assert (m.total, m.trainable) == param_count.count(_config(**{"model.ffn": m.value}))
  # The nearest achievable: neighbouring widths are no closer.
  for v in (m.value - 1, m.value + 1):
    assert abs(param_count.count(_config(**{"model.ffn": v}))[0] - target) >= abs(m.total - target)
  assert m.to_dict()["target"] == target


def test_match_needs_an_int_key():
  with pytest.raises(errors.ConfigError, match="model.dropout, which must be an int"):
    param_count.match(_config(), 10**5, key="model.dropout")


def test_scaling_grid_matches_every_gca_point():
  grid = scaling.scaling_grid(
    _config(), variants={"early": (0,), "stack": (0, 1)}, gca_sizes=2, larger=2, seeds=(0, 1)
  )
  meta = grid.meta["scaling"]
  assert meta["grown_key"] == "model.ffn"
  d = tiny.get_config().model.width
  assert meta["unit_params"] == gca.unit_params(d)
  labels = [m["matched_to"] for m in meta["matches"]]
  assert labels[:2] == ["early@model.ffn=16", "stack@model.ffn=16"]
  assert labels[-2:] == ["larger+1", "larger+2"]
  assert all(abs(m["rel_error"]) <= 0.01 for m in meta["matches"])
  plain, early, stack = grid.blocks
  assert plain["gca.positions"] == {"plain": ()} and early["gca.positions"] == {"early": (0,)}
  sizes = sorted(plain["model.ffn"].values())
  assert len(sizes) >= 5 and sizes[0] == d
  assert len(early["model.ffn"]) == 2 and early["model.ffn"] == stack["model.ffn"]
  # Every matched value is a baseline size of the grid.
  assert {m["value"] for m in meta["matches"]} <= set(sizes)


def test_scaling_grid_refuses_unreachable_tolerance():
  # A post-LayerNorm unit (2,242 parameters at d = 16) is no multiple of the FFN step (198).
  with pytest.raises(errors.ConfigError, match="within 0% of early@model.ffn=16"):
    scaling.scaling_grid(_config(**{"gca.layernorm": "post"}), tolerance=0.0, gca_sizes=1, larger=0)
