"""Grid expansion, the override flags' round trip through ml_collections, and the dry run."""

from __future__ import annotations

import json
import os
import textwrap

from absl import flags
from ml_collections import config_flags
import pytest

from orthoalign import errors
from orthoalign import grid as grid_cli
from orthoalign.experiments import commands
from orthoalign.experiments import expand

EXAMPLE = "tests/grids/example.py"


def write_grid(tmp_path, body: str, name: str = "g.py") -> str:
  path = tmp_path / name
  path.write_text(
    "from configs import tiny\n"
    "from orthoalign.experiments.expand import Grid\n\n"
    "def get_config():\n  return tiny.get_config()\n\n" + textwrap.dedent(body)
  )
  return str(path)


def test_example_product_union_and_replica_folding():
  points = expand.expand(EXAMPLE)
  assert [p.name for p in points] == [
    "gca=plain_hidden=16",
    "gca=plain_hidden=32",
    "gca=early_hidden=16",
    "gca=early_hidden=32",
    "gca=stack_hidden=16",
    "gca=stack_hidden=32",
    "gca=early_act=tanh",
  ]
  first = points[0]
  assert first.overrides == {"gca.positions": (), "model.width": 16}
  # Seeds and learning rates are replicas of one program, not separate runs.
  assert first.replicas == {"sweep.seeds": (0, 1, 2), "sweep.learning_rates": (1e-3, 1e-4)}
  assert first.axes == {"gca": "plain", "hidden": "16"}
  assert first.config.model.width == 16 and first.config.sweep.seeds == (0, 1, 2)
  last = points[-1]
  # A scalar is a fixed setting: applied, but not part of the name.
  assert last.overrides == {"gca.positions": (0,), "gca.act": "tanh", "train.max_epochs": 2}
  assert last.config.train.max_epochs == 2 and last.config.gca.act == "tanh"
  assert [p.name for p in expand.expand(EXAMPLE)] == [p.name for p in points]  # stable


def test_labels_and_sanitising():
  assert expand.label(64) == "64"
  assert expand.label(1e-4) == "0.0001" and expand.label(1e-5) == "1e-05"
  assert expand.label((0, 1, 2)) == "0-1-2" and expand.label(()) == "none"
  assert expand.label(True) == "true" and expand.label("a b/c") == "a_b_c"
  assert expand.sanitise("x=1+2,y/z") == "x=1+2_y_z"


def test_default_short_names_plain_dict_and_main(tmp_path):
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return {"model.width": [16, 32], "gca.act": {"Tanh fn": "tanh"}}
      """,
  )
  assert [p.name for p in expand.expand(path)] == [
    "width=16_act=Tanh_fn",
    "width=32_act=Tanh_fn",
  ]
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return [{"seed": [0, 1]}]
      """,
  )
  (point,) = expand.expand(path)
  assert point.name == "main" and point.replicas == {"sweep.seeds": (0, 1)} and not point.overrides


def test_single_value_replica_axis_sets_the_plain_key(tmp_path):
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return {"train.learning_rate": [0.01], "seed": [3]}
      """,
  )
  (point,) = expand.expand(path)
  assert point.overrides == {"train.learning_rate": 0.01}
  assert point.replicas == {"sweep.seeds": (3,)}  # seed has no plain key
  assert point.config.train.learning_rate == 0.01


def test_identical_duplicates_merge_and_conflicts_raise(tmp_path):
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return [{"model.width": [16, 32]}, {"model.width": [32]}]
      """,
  )
  assert [p.name for p in expand.expand(path)] == ["width=16", "width=32"]
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return [{"gca.positions": {"x": (0,)}}, {"gca.positions": {"x": (1,)}}]
      """,
  )
  with pytest.raises(errors.ConfigError, match=r"two different runs are named 'positions=x'"):
    expand.expand(path)


@pytest.mark.parametrize(
  "body, match",
  [
    ('{"model.widht": [16]}', r"g\.py: unknown config key 'model\.widht'.*width"),
    (
      '{"model.width": ["big"]}',
      r"g\.py: config key model\.width='big': expected a value of type int",
    ),
    (
      '{"model.width": [True]}',
      r"config key model\.width=True: expected a value of type int",
    ),
    ('{"gca": [1]}', r"config key 'gca' is a ConfigDict"),
    ('{"gca.act": ["bogus"]}', r"run act=bogus: config key gca\.act='bogus' is invalid"),
    ('{"model.width": []}', r"axis 'model\.width' has no values"),
    ('[{"model.dropout": [0.1]}, {"gca.dropout": [0.1]}]', r"both have the short name 'dropout'"),
    ("42", r"get_grid\(\) returned a int"),
    ('{"x": 1/0}', r"g\.py, line 8: get_grid\(\) raised ZeroDivisionError"),
  ],
)
def test_grid_errors_name_the_file_and_key(tmp_path, body, match):
  path = write_grid(tmp_path, f"def get_grid():\n  return {body}\n")
  with pytest.raises(errors.ConfigError, match=match):
    expand.expand(path)


def test_missing_file_and_functions(tmp_path):
  with pytest.raises(errors.ConfigError, match="does not exist"):
    expand.expand(str(tmp_path / "nope.py"))
  (tmp_path / "h.py").write_text("def get_config():\n  return None\n")
  with pytest.raises(errors.ConfigError, match=r"h\.py has no get_grid\(\)"):
    expand.expand(str(tmp_path / "h.py"))


def _parse(config_path: str, args: list[str]):
  """Parses --config flags as orthoalign.main does (a fresh FlagValues)."""
  argv = ["prog", f"--config={config_path}", *args]
  values = flags.FlagValues()
  config_flags.DEFINE_config_file(
    "config", None, "", flag_values=values, lock_config=True, sys_argv=argv
  )
  values(argv)
  return values.config


@pytest.mark.parametrize(
  "key, value",
  [
    ("tup", (0, 1, 2)),
    ("tup", ()),
    ("tup", (5,)),
    ("ftup", (1e-4, 0.5, 3e-10)),
    ("ftup", ()),
    ("s", "tanh"),
    ("s", "a b,c=(1)"),
    ("b", True),
    ("b", False),
    ("f", 1e-4),
    ("f", 0.1),
    ("f", 2.5e-7),
    ("i", -3),
    ("stup", ("x", "y z")),
  ],
)
def test_override_round_trip_through_ml_collections(tmp_path, key, value):
  config_path = tmp_path / "c.py"
  config_path.write_text(
    "import ml_collections\n\ndef get_config():\n  return ml_collections."
    "ConfigDict(dict(tup=(9,), ftup=(), s='', b=False, f=1.0, i=0, stup=()))\n"
  )
  parsed = _parse(str(config_path), [f"--config.{key}={commands.format_value(value)}"])
  assert parsed[key] == value and type(parsed[key]) is type(value)


def test_point_flags_reproduce_the_expanded_config():
  for point in expand.expand(EXAMPLE):
    parsed = _parse(EXAMPLE, commands.config_flags(point))
    assert parsed.to_dict() == point.config.to_dict(), point.name


@pytest.mark.smoke
def test_dry_run_writes_grid_json_and_prints_commands(tmp_path, capsys):
  root = str(tmp_path / "runs")
  assert grid_cli.run([f"--grid={EXAMPLE}", f"--root={root}", "--dry-run", "--only=early"]) == 0
  out = capsys.readouterr().out.splitlines()
  assert out[0].startswith(f"[grid] {EXAMPLE}: 7 programs (42 runs as replicas), 3 selected")
  assert len(out) == 4 and all(
    "-m orthoalign.main --config=tests/grids/example.py" in l for l in out[1:]
  )
  assert f"--workdir={root}/gca=early_hidden=16 '--config.gca.positions=(0,)'" in out[1]
  with open(os.path.join(root, "grid.json")) as f:
    written = json.load(f)
  assert written["name"] == "example" and written["grid"] == EXAMPLE
  assert len(written["runs"]) == 7 and not os.path.exists(os.path.join(root, "gca=plain_hidden=16"))
  run = written["runs"][6]
  assert run["name"] == run["workdir"] == "gca=early_act=tanh"
  assert run["axes"] == {"gca": "early", "act": "tanh"}
  assert run["replicas"] == {"sweep.seeds": [0, 1, 2], "sweep.learning_rates": [1e-3, 1e-4]}
  assert run["command"] == out[3] and run["command"].startswith(f"cd {os.getcwd()} && ")


def test_cli_errors_print_error_without_traceback(tmp_path, capsys, monkeypatch):
  path = write_grid(tmp_path, 'def get_grid():\n  return {"model.nope": [1]}\n')
  monkeypatch.setattr("sys.argv", ["grid", f"--grid={path}", f"--root={tmp_path}/r"])
  with pytest.raises(SystemExit) as e:
    grid_cli.main()
  assert e.value.code == 1
  err = capsys.readouterr().err
  assert err.startswith("error: grid file ") and "unknown config key 'model.nope'" in err
  assert "Traceback" not in err
  monkeypatch.setattr(
    "sys.argv", ["grid", f"--grid={EXAMPLE}", f"--root={tmp_path}/r", "--only=zzz"]
  )
  with pytest.raises(SystemExit):
    grid_cli.main()
  assert "--only='zzz' matches none of the runs" in capsys.readouterr().err


def test_set_applies_to_every_run_without_renaming(tmp_path):
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return {"gca.positions": {"plain": (), "early": (0,)}, "seed": (0, 1, 2)}
      """,
  )
  points, meta = expand.expand_with_meta(
    path, ["train.max_epochs=2", "sweep.seeds=(5,6)", "gca.act=tanh", "eval.track_test=true"]
  )
  assert [p.name for p in points] == ["positions=plain", "positions=early"] and meta == {}
  for p in points:
    assert p.config.train.max_epochs == 2 and p.config.gca.act == "tanh"
    assert p.config.eval.track_test is True
    assert p.config.sweep.seeds == (5, 6)  # --set wins over the grid's replica axis
    assert p.flags()["train.max_epochs"] == 2


def test_set_refuses_a_run_axis(tmp_path):
  path = write_grid(
    tmp_path, "def get_grid():\n  return {'gca.positions': {'plain': (), 'early': (0,)}}\n"
  )
  with pytest.raises(errors.ConfigError, match=r"--set gca.positions: .* is an axis .* --only"):
    expand.expand_with_meta(path, ["gca.positions=(0,)"])


@pytest.mark.parametrize(
  "item,match",
  [
    ("train.max_epochs", "expected KEY=VALUE"),
    ("train.max_epoch=2", "unknown config key 'train.max_epoch'"),
    ("train.max_epochs=two", r"train.max_epochs=.two. \(in --set.*expected a value of type int"),
    ("eval.track_test=maybe", "expected a value of type bool"),
  ],
)
def test_set_errors_name_the_key(tmp_path, item, match):
  path = write_grid(tmp_path, "def get_grid():\n  return {'seed': (0,)}\n")
  with pytest.raises(errors.ConfigError, match=match):
    expand.expand_with_meta(path, [item])


def test_grid_meta_reaches_grid_json(tmp_path):
  path = write_grid(
    tmp_path,
    """
      def get_grid():
        return Grid(blocks=[{"seed": (0,)}], meta={"note": {"unit": 3}})
      """,
  )
  root = tmp_path / "root"
  assert grid_cli.run([f"--grid={path}", f"--root={root}", "--dry-run"]) == 0
  with open(root / "grid.json") as f:
    assert json.load(f)["meta"] == {"note": {"unit": 3}}


# The project's own grid files: each expands (its configs validate) into the programs its docstring
# names. Real-data grids read ../shared/data; scaling grids count parameters model by model.
GRIDS = {
  "synthetic_table1_llm4cdsr": 6,
  "synthetic_correlation_llm4cdsr": 16,
  "table1_abxi_afk": 3,
  "table1_llm4cdsr_fk": 3,
  "table1_llm4cdsr_afk": 3,
  "correlation_abxi_afk": 48,
  "table1_merit_afk": 5,
  "table1_c2dsr_afk": 4,
  "correlation_c2dsr_afk": 48,
  "correlation_merit_afk": 48,
  "correlation_llm4cdsr_fk": 48,
  "orthogonality_sasrec_afk": 6,
  "synthetic_orthogonality_sasrec": 12,
  "mixed_sasrec_afk": 1,
}


@pytest.mark.parametrize("name,programs", sorted(GRIDS.items()))
def test_project_grids_expand(name, programs):
  from tests.conftest import require_data

  if not name.startswith("synthetic"):
    require_data("abxi-afk" if "afk" in name else "llmcdsr-food-kitchen")
  points = expand.expand(f"configs/grids/{name}.py")
  assert len(points) == programs
  runs = sum(len(p.config.sweep.seeds) * max(len(p.config.sweep.gate_inits), 1) for p in points)
  assert runs >= (
    48
    if "correlation" in name
    else 15
    if "table1" in name
    else 30
    if "orthogonality" in name
    else 5
    if "mixed" in name
    else 1
  )


@pytest.mark.parametrize("name", ["orthogonality_sasrec_afk", "synthetic_orthogonality_sasrec"])
def test_orthogonality_grids_hold_the_six_variants(name):
  from tests.conftest import require_data

  if not name.startswith("synthetic"):
    require_data("abxi-afk")
  points = expand.expand(f"configs/grids/{name}.py")
  variants = {(tuple(p.config.gca.positions), p.config.gca.intervention) for p in points}
  assert variants == {
    ((), "none"),
    ((0,), "none"),
    ((0, 1, 2), "none"),
    ((0,), "orthogonal"),
    ((0,), "parallel"),
    ((0,), "shuffled"),
  }
  assert {p.config.model.streams for p in points} == {"dual"}
  assert all(p.config.sweep.seeds == (0, 1, 2, 3, 4) for p in points)


def test_synthetic_scaling_grid_expands_with_matched_sizes():
  points, meta = expand.expand_with_meta("configs/grids/synthetic_scaling_llm4cdsr.py")
  plain = [p for p in points if p.axes["gca"] == "plain"]
  assert len(plain) >= 4 + 2 and len(points) - len(plain) == 4
  assert all(abs(m["rel_error"]) <= 0.01 for m in meta["scaling"]["matches"])


@pytest.mark.slow
@pytest.mark.parametrize(
  "name", ["scaling_abxi_afk", "scaling_c2dsr_afk", "scaling_llm4cdsr_fk", "scaling_merit_afk"]
)
def test_real_data_scaling_grids_expand(name):
  from tests.conftest import require_data

  require_data("abxi-afk" if "afk" in name else "llmcdsr-food-kitchen")
  points, meta = expand.expand_with_meta(f"configs/grids/{name}.py")
  # 4 GCA points and the baseline sizes: 6 where GCA_stack has two positions (its match at the
  # smallest size coincides with GCA_early's at the second), 7 for C2DSR's three-position stack.
  assert len(points) == (11 if name == "scaling_c2dsr_afk" else 10)
  assert all(abs(m["rel_error"]) <= 0.01 for m in meta["scaling"]["matches"])


def test_output_into_a_closed_pipe_stops_quietly(tmp_path):
  """`python -m orthoalign.grid ... | head`: the reader leaves; no BrokenPipeError traceback."""
  import subprocess
  import sys

  proc = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "orthoalign.grid",
      f"--grid={EXAMPLE}",
      f"--root={tmp_path}",
      "--dry-run",
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
  )
  proc.stdout.close()  # the reader is gone before the grid prints
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 1 and err == b"", err.decode()


def test_status_reads_a_hand_written_grid_json(tmp_path, capsys):
  (tmp_path / "grid.json").write_text('{"runs": [{"name": "a"}, {"workdir": "b"}]}')
  assert grid_cli.run([f"--root={tmp_path}", "--status"]) == 0
  out = capsys.readouterr().out
  assert "a    pending" in out and "b    pending" in out
  (tmp_path / "grid.json").write_text('{"runs": [3]}')
  with pytest.raises(Exception, match=r"runs\[0\]: expected an object with a 'name'"):
    grid_cli.run([f"--root={tmp_path}", "--status"])


def test_get_grid_with_a_parameter_sees_the_set_values(tmp_path):
  """A grid that reads the base config in get_grid (parameter matching reads the data) gets it
  with the runner's --set values: `--set data.path=...` used to be ignored there.
  """
  path = tmp_path / "reads_config.py"
  path.write_text(
    "from configs import tiny\n\n\n"
    "def get_config():\n  return tiny.get_config()\n\n\n"
    "def get_grid(config):\n"
    "  return [{'train.learning_rate': (config.train.max_epochs * 1e-3,)}]\n"
  )
  points, _ = expand.expand_with_meta(str(path), ["train.max_epochs=7"])
  assert [p.config.train.learning_rate for p in points] == [pytest.approx(7e-3)]
