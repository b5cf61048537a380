"""docs/metrics.md states what the code does: how candidate sets are drawn, cos of a zero X′."""

import os
import re

import numpy as np

from orthoalign.datasets import splits
from orthoalign.datasets import synthetic
from orthoalign.inputs import candidates
from orthoalign.metrics import alignment

DOC = os.path.join(
  os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "metrics.md"
)


def _doc() -> str:
  with open(DOC, encoding="utf-8") as f:
    return f.read()


def test_doc_states_how_valid_and_test_candidates_are_drawn():
  ds = synthetic.generate(
    synthetic.SyntheticConfig(num_users=60, num_items_a=40, num_items_b=40, max_length=20, seed=0)
  )
  valid = splits.eval_split(ds, "valid")
  test = splits.eval_split(ds, "test")
  seed = 7
  # One stream per split: numpy.random.default_rng([eval.candidate_seed, 1 (valid) | 2 (test)]).
  for split, code in ((valid, 1), (test, 2)):
    got = candidates._split_rng(split, seed).integers(0, 1 << 30, 8)
    assert (got == np.random.default_rng([seed, code]).integers(0, 1 << 30, 8)).all()
  # Not "seed + 1": the test stream is not the valid stream of the next seed.
  assert not (
    candidates.sample_candidates(ds, test, 5, seed)[:, 1:]
    == candidates.sample_candidates(ds, valid, 5, seed + 1)[:, 1:]
  ).all()
  doc = _doc()
  assert "`+1`" not in doc and not re.search(r"seed \+ 1(?!\d)", doc)
  assert "default_rng([eval.candidate_seed, 1])" in doc
  assert "[eval.candidate_seed, 2]" in doc


def test_doc_says_a_zero_vector_has_cosine_0_where_cos_is_defined():
  x = np.ones((3, 4), np.float32)
  assert np.allclose(np.asarray(alignment.cosine(x, np.zeros_like(x))), 0.0)
  section = _doc().split("Per token t:")[1].split("\n- `xy_*`")[0]
  assert "cosine of a zero vector is taken as 0" in section
  assert "perfectly orthogonal" in section


def test_report_out_mistakes_are_one_line_and_write_nothing(tmp_path, capsys):
  """A folder as the run-mode --out, or a file as the grid-mode one, raised IsADirectoryError /
  NotADirectoryError; a missing --grid left an empty --out folder behind.
  """
  from orthoalign.analysis import report

  assert report.main([str(tmp_path / "run"), f"--out={tmp_path}"]) == 1
  assert "--out is a folder" in capsys.readouterr().err
  assert report.main(["--grid", str(tmp_path / "nogrid"), f"--out={tmp_path / 'new'}"]) == 1
  assert capsys.readouterr().err.startswith("error: ") and not (tmp_path / "new").exists()
