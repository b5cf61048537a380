"""The paper's analyses (Table 1, Figure 2/3/8 numbers, histories), figures and the grid report."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from orthoalign.analysis import alignment
from orthoalign.analysis import correlations
from orthoalign.analysis import figures
from orthoalign.analysis import history
from orthoalign.analysis import report
from orthoalign.analysis import results
from orthoalign.analysis import scaling_curves
from orthoalign.analysis import tables
from orthoalign.analysis import variants
from orthoalign.errors import DataError

METRICS = ("ndcg@1", "ndcg@10", "auc", "hr@10", "mrr")


def _row(
  run, model, dataset, positions, seed, params, a, b, replica=0, hidden=64, cos=None, **extra
):
  """One results.jsonl row: every test metric of domain A = a, domain B = b (+ tiny offsets)."""
  row = {
    "run": run,
    "replica": replica,
    "model": model,
    "dataset": dataset,
    "seed": seed,
    "learning_rate": 1e-3,
    "weight_decay": 0.0,
    "gate_init": 0.0,
    "gca_positions": list(positions),
    "params/total": params,
    "params/trainable": params,
    "best_epoch": 3,
    "wall_time_s": 10.0,
    "steps_per_s": 4.0,
    "backend": "cpu",
    "num_devices": 1,
    "config": {
      "model.width": hidden,
      "eval.num_negatives": 100,
      "gca.positions": list(positions),
      "gca.act": "sigmoid",
    },
  }
  for split in ("test", "valid"):
    for proto, scale in (("sampled", 1.0), ("full", 0.5)):
      for d, v in (("A", a), ("B", b)):
        for i, m in enumerate(METRICS):
          row[f"{split}/{proto}/{d}/{m}"] = scale * v + 0.1 * i
  for p in positions:
    for d in ("A", "B"):
      c = cos if cos is not None else 0.1
      row[f"align/gca{p}_{d}/abs_mean_cos"] = c
      row[f"align/gca{p}_{d}/mean_abs_cos"] = c + 0.1
      row[f"align/gca{p}_{d}/xy_mean_abs_cos"] = 0.3 + 0.01 * seed
      row[f"align/gca{p}_{d}/alpha"] = 0.5
  row.update(extra)
  return row


def _frame(rows):
  """Rows -> the frame load_runs would give (config flattened, lists JSON-encoded)."""
  out = []
  for r in rows:
    r = dict(r)
    cfg = r.pop("config")
    r.update({f"config.{k}": json.dumps(v) if isinstance(v, list) else v for k, v in cfg.items()})
    out.append(r)
  return pd.DataFrame(out)


def test_variant_of():
  assert variants.variant_of([]) == "plain"
  assert variants.variant_of([0]) == "early"
  assert variants.variant_of((0, 2)) == "stack"
  assert variants.variant_of("[0, 1, 2]") == "stack"
  assert variants.variant_of([1]) == "gca[1]"
  assert variants.variant_of([2, 1]) == "gca[1,2]"
  df = variants.add_variant(pd.DataFrame({"gca_positions": [[], [0], [0, 1]]}))
  assert list(df["variant"]) == ["plain", "early", "stack"]
  with pytest.raises(DataError, match="gca_positions"):
    variants.add_variant(pd.DataFrame({"x": [1]}))


def _table1_frame():
  rows = []
  diffs = [0.001, 0.002, 0.003, 0.004, 0.005]
  for seed in range(5):
    base_a = 0.10 + 0.01 * seed
    rows.append(_row("plain", "abxi", "fk", [], seed, 100, base_a, 0.2, replica=seed))
    rows.append(
      _row(
        "early", "abxi", "fk", [0], seed, 120, base_a + diffs[seed], 0.2 - diffs[seed], replica=seed
      )
    )
    rows.append(_row("stack", "abxi", "fk", [0, 1], seed, 140, base_a + 0.01, 0.2, replica=seed))
  # A second dataset with no plain run: summarised but not compared.
  rows.append(_row("early_be", "abxi", "be", [0], 0, 120, 0.3, 0.3))
  return _frame(rows)


def test_table1_numbers_and_paired_comparison():
  t = tables.table1(_table1_frame())
  s = t.summary.set_index(["dataset", "variant", "protocol", "domain", "metric"])
  plain = s.loc[("fk", "plain", "sampled", "A", "ndcg@10")]
  vals = 0.10 + 0.01 * np.arange(5) + 0.1  # ndcg@10 is the 2nd metric: +0.1 offset
  assert plain["mean"] == pytest.approx(vals.mean())
  assert plain["std"] == pytest.approx(vals.std(ddof=1)) and plain["n"] == 5
  assert s.loc[("fk", "early", "full", "A", "ndcg@1"), "mean"] == pytest.approx(
    np.mean(0.5 * (0.10 + 0.01 * np.arange(5) + np.arange(1, 6) / 1000))
  )
  assert math.isnan(s.loc[("be", "early", "sampled", "A", "ndcg@10"), "std"])
  fk = t.summary[t.summary["dataset"] == "fk"]
  assert list(fk["variant"].drop_duplicates()) == ["plain", "early", "stack"]

  p = t.paired.set_index(["dataset", "variant", "protocol", "domain", "metric"])
  assert "be" not in set(t.paired["dataset"])
  e = p.loc[("fk", "early", "sampled", "A", "ndcg@10")]
  assert e["n"] == 5 and e["mean_diff"] == pytest.approx(0.003)
  assert e["wilcoxon_p"] == pytest.approx(0.0625) and e["wilcoxon_min_p"] == pytest.approx(0.0625)
  d = np.arange(1, 6) / 1000
  tt = d.mean() / (d.std(ddof=1) / math.sqrt(5))
  assert e["t_p"] == pytest.approx(2 * sps.t.sf(tt, 4))
  assert p.loc[("fk", "early", "sampled", "B", "ndcg@10"), "mean_diff"] == pytest.approx(-0.003)
  assert p.loc[("fk", "stack", "full", "A", "auc"), "mean_diff"] == pytest.approx(0.005)

  md = tables.table1_markdown(t)
  assert "| abxi | fk | +GCA_early | — | 5 |" in md and "0.0625" in md and "0.0625 for n = 5" in md
  half = sps.t.ppf(0.975, 4) * np.std(np.arange(1, 6) / 1000, ddof=1) / math.sqrt(5)
  assert (
    "NDCG@10 A" in md
    and f"[{0.003 - half:+.4f}, {0.003 + half:+.4f}] | 0.0132 | 0.0625 (0.0625)" in md
  )
  tex = tables.table1_latex(t, "sampled")
  assert "\\begin{tabular}" in tex and "+GCA\\_early" in tex and "$\\pm$" in tex
  assert "\\toprule" in tex and tex.count("\\end{tabular}") == 2


def test_table1_matches_on_settings_the_baselines_vary():
  rows = []
  for seed in range(3):
    for hidden, base in ((64, 0.1), (128, 0.2)):
      rows.append(
        _row(
          f"plain{hidden}", "m", "d", [], seed, hidden * 10, base + 0.01 * seed, 0.1, hidden=hidden
        )
      )
      rows.append(
        _row(
          f"early{hidden}",
          "m",
          "d",
          [0],
          seed,
          hidden * 10 + 5,
          base + 0.01 * seed + 0.02,
          0.1,
          hidden=hidden,
        )
      )
  t = tables.table1(_frame(rows), protocols=("sampled",), metrics=("ndcg@10",))
  pa = t.paired[t.paired["domain"] == "A"]
  assert len(pa) == 2
  assert list(pa["mean_diff"]) == [pytest.approx(0.02)] * 2  # each width vs. its own baseline
  assert set(pa["setting"]) == {"model.width=64", "model.width=128"}
  assert set(pa["control"]) == {"model.width=64", "model.width=128"}


def _intervention_rows():
  """plain / early / early+orthogonal / early+shuffled x 4 seeds, as the orthogonality grids."""
  rows = []
  for seed in range(4):
    base = 0.1 + 0.01 * seed
    for run, positions, x_prime, gain, cos in (
      ("plain", [], None, 0.0, None),
      ("early", [0], "none", 0.02, 0.3),
      ("orth", [0], "orthogonal", 0.02 - 0.001 * (seed + 1), 0.001),
      ("shuf", [0], "shuffled", -0.01, 0.2),
    ):
      row = _row(
        run, "sasrec", "afk", positions, seed, 100, base + gain, 0.2, replica=seed, cos=cos
      )
      if x_prime is not None:
        row["config"]["gca.intervention"] = x_prime
        for d in ("A", "B"):
          row[f"align/gca0_{d}/pre_abs_mean_cos"] = 0.3
      rows.append(row)
  return rows


def _intervention_frame():
  return _frame(_intervention_rows())


def test_interventions_pair_with_the_same_cell_without_them():
  pr = tables.interventions(_intervention_frame(), protocols=("sampled",), metrics=("ndcg@10",))
  pr = pr[pr["domain"] == "A"].set_index("setting")
  assert sorted(pr.index) == ["gca.intervention=orthogonal", "gca.intervention=shuffled"]
  orth = pr.loc["gca.intervention=orthogonal"]
  assert orth["control"] == "gca.intervention=none" and orth["n"] == 4
  assert orth["mean_diff"] == pytest.approx(-0.0025)  # mean of -(1..4)/1000
  assert orth["ci_high"] < 0
  assert pr.loc["gca.intervention=shuffled", "mean_diff"] == pytest.approx(-0.03)
  # Table 1 still compares every GCA condition with the plain baseline.
  t = tables.table1(_intervention_frame(), protocols=("sampled",), metrics=("ndcg@10",))
  assert len(t.paired[t.paired["domain"] == "A"]) == 3
  # No intervention anywhere: nothing to pair.
  assert tables.interventions(_table1_frame()).empty


def test_alignment_by_condition_keeps_interventions_apart():
  a = alignment.alignment_by_condition(_intervention_frame())
  got = a.set_index(["setting", "stat"])["mean"]
  assert got[("gca.intervention=orthogonal", "abs_mean_cos")] == pytest.approx(0.001)
  assert got[("gca.intervention=orthogonal", "pre_abs_mean_cos")] == pytest.approx(0.3)
  assert got[("gca.intervention=none", "abs_mean_cos")] == pytest.approx(0.3)
  assert "plain" not in set(a["variant"])
  md = alignment.alignment_by_condition_markdown(a)
  assert "before the intervention" in md and "0.0010 ± 0.0000" in md


def test_grid_report_has_an_intervention_section(tmp_path):
  root = tmp_path / "g"
  runs = []
  for run in ("plain", "early", "orth", "shuf"):
    _write_workdir(root / run, [r for r in _intervention_rows() if r["run"] == run])
    runs.append({"name": run, "workdir": run, "axes": {"gca": run}})
  (root / "grid.json").write_text(json.dumps({"name": "interventions", "runs": runs}))
  out = tmp_path / "out"
  assert report.main([f"--grid={root}", f"--out={out}"]) == 0
  text = (out / "README.md").read_text()
  section = text.split("## Interventions on the GCA cell")[1].split("\n## ")[0]
  # The grid axis "gca" names the condition, so it labels the rows.
  assert (
    "| sasrec | afk | +GCA_early | gca=orth | gca=early | A | NDCG@10 | 4 | -0.0025 |" in section
  )
  assert "before the intervention" in section
  assert "**sampled protocol**" in section and "**full protocol**" in section
  # The paper's analyses read the untouched cells only: 8 runs (early x 4 seeds x 2 domains).
  corr = text.split("## Orthogonality vs. accuracy")[1].split("\n## ")[0]
  assert "Runs with an intervention on the GCA cell (8) are left out" in corr
  assert "| sasrec | A | 4 |" in corr


def _corr_frame():
  rng = np.random.default_rng(0)
  rows = []
  for i in range(24):
    hidden = 64 if i % 2 else 128
    cos = rng.uniform(0.0, 0.4)
    a = 0.2 - 0.1 * cos + rng.normal(0, 0.003) + (0.02 if hidden == 128 else 0.0)
    b = 0.1 + 0.05 * cos + rng.normal(0, 0.003)
    rows.append(_row(f"r{i}", "abxi", "fk", [0], i, 100, a, b, hidden=hidden, cos=cos))
  rows.append(_row("plain", "abxi", "fk", [], 0, 90, 0.1, 0.1))  # no GCA cell: not a point
  return _frame(rows)


def test_correlation_per_domain_and_by_width():
  df = _corr_frame()
  c = correlations.correlation(df, n_boot=200)
  assert list(c["domain"]) == ["A", "B"] and list(c["n"]) == [24, 24]
  x = df["align/gca0_A/abs_mean_cos"].dropna()
  y = df.loc[x.index, "test/sampled/A/ndcg@10"]
  ca = c.iloc[0]
  assert ca["pearson_r"] == pytest.approx(sps.pearsonr(x, y).statistic)
  assert ca["spearman_rho"] == pytest.approx(sps.spearmanr(x, y).statistic)
  assert ca["pearson_ci_low"] <= ca["pearson_r"] <= ca["pearson_ci_high"]
  assert ca["slope"] == pytest.approx(np.polyfit(x, y, 1)[0])
  assert ca["controls_used"] == "width" and np.isfinite(ca["partial_r"])
  assert ca["selection"] == correlations.BEST_VALID_LABEL

  by = correlations.correlation(df, by=("config.model.width",), n_boot=0)
  assert len(by) == 4 and set(by["n"]) == {12}
  sub = df[(df["config.model.width"] == 64) & df["align/gca0_B/abs_mean_cos"].notna()]
  xs = sub["align/gca0_B/abs_mean_cos"]
  r64b = by[(by["config.model.width"] == 64) & (by["domain"] == "B")]["pearson_r"].item()
  assert r64b == pytest.approx(sps.pearsonr(xs, sub["test/sampled/B/ndcg@10"]).statistic)
  md = correlations.correlation_markdown(by)
  assert "model.width" in md and "| abxi | 64 | A | 12 |" in md
  assert correlations.correlation(df, position=1).empty


def test_best_test_selection_from_history():
  df = _frame(
    [
      _row("r1", "abxi", "fk", [0], 0, 100, 0.15, 0.1, replica=0, cos=0.3),
      _row("r1", "abxi", "fk", [0], 1, 100, 0.16, 0.1, replica=1, cos=0.3),
    ]
  )
  h = pd.DataFrame(
    [
      {
        "run": "r1",
        "replica": 0,
        "epoch": 1,
        "test/sampled/A/ndcg@10": 0.10,
        "align/gca0_A/abs_mean_cos": 0.50,
      },
      {
        "run": "r1",
        "replica": 0,
        "epoch": 2,
        "test/sampled/A/ndcg@10": 0.30,
        "align/gca0_A/abs_mean_cos": 0.20,
      },
      {
        "run": "r1",
        "replica": 0,
        "epoch": 3,
        "test/sampled/A/ndcg@10": 0.20,
        "align/gca0_A/abs_mean_cos": 0.10,
      },
      {"run": "r1", "replica": 0, "epoch": 4, "train/loss": 1.0},
      {
        "run": "r1",
        "replica": 1,
        "epoch": 1,
        "test/sampled/A/ndcg@10": 0.25,
        "align/gca0_A/abs_mean_cos": 0.40,
      },
      {
        "run": "r1",
        "replica": 1,
        "epoch": 2,
        "test/sampled/A/ndcg@10": 0.25,
        "align/gca0_A/abs_mean_cos": 0.35,
      },
    ]
  )
  pts = correlations.correlation_points(df, epoch="best_test", histories=h)
  pts = pts[pts["domain"] == "A"].sort_values("replica")
  assert list(pts["epoch"]) == [2, 1]  # ties: the earliest epoch
  assert list(pts["x"]) == [0.20, 0.40] and list(pts["y"]) == [0.30, 0.25]
  c = correlations.correlation(df, epoch="best_test", histories=h, n_boot=0)
  assert set(c["selection"]) == {correlations.BEST_TEST_LABEL}
  assert "test set" in correlations.BEST_TEST_LABEL
  with pytest.raises(DataError, match="track_test"):
    correlations.correlation(
      df, epoch="best_test", histories=h.drop(columns=["test/sampled/A/ndcg@10"])
    )
  with pytest.raises(DataError, match="best_valid"):
    correlations.correlation_points(df, epoch="last")


def _write_history(folder, rows):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _history_rows(epochs=4, replicas=2, track_test=False):
  rows = []
  for e in range(1, epochs + 1):
    for r in range(replicas):
      test = (
        {f"test/sampled/{d}/ndcg@10": 0.2 - 0.01 * (e - 2) ** 2 + 0.01 * r for d in ("A", "B")}
        if track_test
        else {}
      )
      rows.append({"epoch": e, "replica": r, "train/loss": 1.0 / e})
      rows.append(
        {
          "epoch": e,
          "replica": r,
          "train/loss": 1.0 / e,
          "valid/sampled/A/ndcg@10": 0.1 + 0.01 * e + 0.001 * r,
          "valid/sampled/all/ndcg@10": 0.1 + 0.01 * e,
          "align/gca0_A/abs_mean_cos": 0.4 / e,
          "align/gca0_A/alpha": 0.5 + 0.01 * e,
          "align/gca0_B/abs_mean_cos": 0.3 / e + 0.01 * r,
          **test,
        }
      )
      rows.pop(-2)  # one row per (epoch, replica): keep the one with validation
  return rows


def test_load_histories_and_trajectory(tmp_path):
  _write_history(tmp_path / "run1", _history_rows())
  h = results.load_histories([tmp_path / "run1"])
  assert (
    len(h) == 8 and set(h["run"]) == {"run1"} and list(h.columns[:3]) == ["run", "replica", "epoch"]
  )
  t = history.trajectory(tmp_path / "run1")
  mean = t[t["replica"] == "mean"].set_index("epoch")
  assert mean.loc[2, "cos/gca0_A"] == pytest.approx(0.2)
  assert mean.loc[3, "valid/A"] == pytest.approx(0.1 + 0.03 + 0.0005)
  assert {"alpha/gca0_A", "valid/all"} <= set(t.columns) and len(t) == 12

  with pytest.raises(DataError, match="history.jsonl: no history.jsonl"):
    results.load_histories([tmp_path / "nothing"])
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "history.jsonl").write_text('{"epoch": 1, "replica": 0}\n{oops\n')
  with pytest.raises(DataError, match=r"history.jsonl:2: expected one JSON object"):
    results.load_histories([tmp_path / "bad"])


def test_scaling_series_and_efficiency():
  rows = []
  base = [
    (0.964e7, 0.1541),
    (1.175e7, 0.1711),
    (1.388e7, 0.1721),
    (1.595e7, 0.1734),
    (1.806e7, 0.1789),
  ]
  for seed in range(2):
    for p, v in base:
      rows.append(
        _row(f"plain{p}", "abxi", "fk", [], seed, p, v - 0.1 + 0.001 * (2 * seed - 1), 0.1)
      )
    rows.append(_row("early", "abxi", "fk", [0], seed, 1.175e7, 0.1757 - 0.1, 0.1))
    rows.append(_row("stack", "abxi", "fk", [0, 1], seed, 1.386e7, 0.2, 0.05))
  s = scaling_curves.scaling(_frame(rows))
  a = s[s["domain"] == "A"].set_index("variant")
  assert len(s[(s["domain"] == "A") & (s["variant"] == "plain")]) == 5
  assert (
    a.loc["early", "ratio"] == pytest.approx(1.4325, abs=1e-3) and a.loc["early", "bound"] == "="
  )
  assert a.loc["stack", "bound"] == ">" and a.loc["stack", "ratio_str"].startswith("> ")
  b = s[s["domain"] == "B"].set_index("variant")
  assert b.loc["stack", "bound"] == "<"
  plain = s[(s["domain"] == "A") & (s["variant"] == "plain")]
  assert plain["std"].iloc[0] == pytest.approx(np.std([-0.001, 0.001], ddof=1))
  md = scaling_curves.scaling_markdown(s)
  assert "1.43×" in md and "+GCA_stack" in md


def test_alignment_summary():
  df = _table1_frame()
  a = alignment.alignment_summary(df)
  early = a[(a["dataset"] == "fk") & (a["variant"] == "early")].set_index("stat")
  # early: 5 seeds × 2 cells; xy = 0.3 + 0.01 seed.
  assert early.loc["xy_mean_abs_cos", "n"] == 10
  assert early.loc["xy_mean_abs_cos", "median"] == pytest.approx(0.32)
  assert early.loc["mean_abs_cos", "median"] == pytest.approx(0.2)
  stack = a[(a["dataset"] == "fk") & (a["variant"] == "stack")].set_index("stat")
  assert stack.loc["abs_mean_cos", "n"] == 20  # 2 positions × 2 domains × 5 seeds
  assert "plain" not in set(a["variant"])
  assert "mean \\|cos(X, Y)\\|" in alignment.alignment_markdown(a)  # pipes escaped in cells


def test_figures_have_the_papers_panels(tmp_path):
  df = _corr_frame()
  ((path, fig),) = figures.correlation_figure(df, tmp_path, return_fig=True)
  assert path.endswith("correlation_abxi.png")
  assert [ax.get_title() for ax in fig.axes] == ["Domain A", "Domain B"]
  assert fig.axes[0].get_xlabel() == "|cos(X, X′)|" and fig.axes[0].get_ylabel() == "test NDCG@10"
  assert any(t.get_text().startswith("r = ") for t in fig.axes[1].texts)
  assert len(fig.axes[0].lines) == 1  # the least-squares line
  figures.plt.close(fig)

  scal = _frame(
    [_row(f"p{p}", "abxi", "fk", [], s, p, 0.1 + p / 1e4, 0.1) for p in (100, 200) for s in (0, 1)]
    + [_row("e", "abxi", "fk", [0], s, 150, 0.13, 0.1) for s in (0, 1)]
    + [_row("s", "abxi", "fk", [0, 1], s, 180, 0.14, 0.1) for s in (0, 1)]
  )
  ((path, fig),) = figures.scaling_figure(scal, tmp_path, return_fig=True)
  assert path.endswith("scaling_abxi_fk.png")
  assert [ax.get_title() for ax in fig.axes] == ["Domain A", "Domain B"]
  assert fig.axes[1].get_xlabel() == "Parameters (total)" and fig.axes[0].get_ylabel() == "NDCG@10"
  labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert labels == ["Baseline", "Baseline+GCA_early", "Baseline+GCA_stack"]
  figures.plt.close(fig)

  ((path, fig),) = figures.alignment_boxplots(_table1_frame(), tmp_path, return_fig=True)
  assert [ax.get_title() for ax in fig.axes] == ["mean |cos(X, Y)|", "mean |cos(X, X′)|"]
  figures.plt.close(fig)

  _write_history(tmp_path / "run1", _history_rows())
  ((path, fig),) = figures.trajectory_figure(
    tmp_path / "run1", tmp_path / "traj.png", return_fig=True
  )
  assert len(fig.axes) == 3 and fig.axes[1].get_ylabel() == "α (gate)"
  figures.plt.close(fig)
  # A cell another program of the grid has (all NaN here) is neither drawn nor listed.
  t = pd.DataFrame(
    {
      "replica": [0, 0, "mean", "mean"],
      "epoch": [1, 2, 1, 2],
      "cos/gca0_A": [0.2, 0.1, 0.2, 0.1],
      "cos/gca1_A": [np.nan] * 4,
      "alpha/gca0_A": [0.5, 0.4, 0.5, 0.4],
      "valid/A": [0.1, 0.2, 0.1, 0.2],
    }
  )
  ((_, fig),) = figures.trajectory_figure(t, tmp_path / "traj2.png", return_fig=True)
  assert [x.get_text() for x in fig.axes[0].get_legend().get_texts()] == ["gca0_A"]
  figures.plt.close(fig)
  for name in ("correlation_abxi.png", "scaling_abxi_fk.png", "alignment_boxplots.png", "traj.png"):
    data = (tmp_path / name).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
  assert (
    figures.correlation_figure(_frame([_row("p", "m", "d", [], 0, 1, 0.1, 0.1)]), tmp_path) == []
  )


def _write_workdir(folder, rows):
  folder.mkdir(parents=True)
  (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _grid_root(tmp_path):
  root = tmp_path / "grid"
  runs = []
  rng = np.random.default_rng(0)
  for gca, positions in (("plain", []), ("early", [0]), ("stack", [0, 1])):
    for hidden in (64, 128):
      name = f"gca={gca}_hidden={hidden}"
      params = hidden * 1000 + 500 * len(positions)
      rows = [
        _row(
          name,
          "abxi",
          "synthetic",
          positions,
          seed,
          params,
          0.1 + hidden / 2000 + 0.01 * len(positions) + 0.002 * seed,
          0.1 + 0.005 * len(positions),
          replica=seed,
          hidden=hidden,
          cos=float(rng.uniform(0, 0.3)),
        )
        for seed in range(3)
      ]
      _write_workdir(root / name, rows)
      runs.append(
        {
          "name": name,
          "workdir": name,
          "axes": {"gca": gca, "hidden": str(hidden)},
          "overrides": {},
          "replicas": {"seeds": [0, 1, 2]},
        }
      )
  runs.append(
    {
      "name": "gca=stack_hidden=256",
      "workdir": "gca=stack_hidden=256",
      "axes": {"gca": "stack", "hidden": "256"},
    }
  )
  (root / "gca=early_hidden=32").mkdir()
  runs.append(
    {
      "name": "gca=early_hidden=32",
      "workdir": "gca=early_hidden=32",
      "axes": {"gca": "early", "hidden": "32"},
    }
  )
  (root / "grid.json").write_text(
    json.dumps({"name": "toy", "grid": "configs/grids/toy.py", "runs": runs, "extra": 1})
  )
  return root


@pytest.mark.smoke
def test_grid_report_end_to_end(tmp_path, capsys):
  root = _grid_root(tmp_path)
  _write_history(root / "gca=early_hidden=64", _history_rows(replicas=3, track_test=True))
  out = tmp_path / "report"
  assert report.main([f"--grid={root}", f"--out={out}", "--note=toy grid"]) == 0
  text = (out / "README.md").read_text()
  for section in (
    "# toy",
    "toy grid",
    "## Grid",
    "axis `hidden`: 64, 128, 256, 32",
    "## Table 1: baseline vs. GCA",
    "## Orthogonality vs. accuracy",
    "## Scaling and parameter efficiency",
    "## Alignment summary",
    "## Runs",
    "| gca=stack_hidden=256 | not started (no workdir) |",
    "| gca=early_hidden=32 | ",  # status from the grid runner's markers
    " (no results.jsonl) |",
    "6 finished",
    "Stratified by model width",
    "**Paper's selection**",
    "](best_test/correlation_abxi.png)",
  ):
    assert section in text, section
  assert "(skipped" not in text
  # Hidden size varies among the plain runs, so each width is compared with its own baseline.
  assert (
    "| abxi | synthetic | +GCA_early | hidden=64 | hidden=64 | A | NDCG@10 | 3 | +0.0100 |" in text
  )
  for png in ("correlation_abxi.png", "scaling_abxi_synthetic.png", "alignment_boxplots.png"):
    assert (out / png).stat().st_size > 5000 and f"]({png})" in text
  assert (out / "table1.tex").read_text().count("\\begin{tabular}") == 4
  assert "gca=early_hidden=64" in text and "| 3 |" in text
  # Alignment over training: the one GCA program with a history; mean over cells and 3 replicas
  # of 0.4/e (A) and 0.3/e + 0.01 r (B): 0.355 at epoch 1, 0.0925 at epoch 4.
  assert "## Alignment over training" in text
  assert "| gca=early_hidden=64 | 1–4 | 0.3550 → 0.0925 |" in text
  assert "fell in 1 of 1 programs" in text
  assert (out / "trajectory_gca=early_hidden=64.png").stat().st_size > 5000


def test_grid_report_skips_what_the_grid_lacks(tmp_path):
  root = tmp_path / "g"
  _write_workdir(root / "only", [_row("only", "abxi", "d", [], 0, 100, 0.1, 0.1)])
  (root / "grid.json").write_text(
    json.dumps(
      {"name": "tiny", "runs": [{"name": "only", "workdir": "only", "axes": {"gca": "plain"}}]}
    )
  )
  out = tmp_path / "out"
  assert report.main([f"--grid={root}", f"--out={out}"]) == 0
  text = (out / "README.md").read_text()
  assert "(skipped: needs plain and GCA variants)" in text
  assert "(skipped: needs ≥ 3 GCA runs" in text and "(skipped: needs ≥ 2 plain" in text
  assert not (out / "table1.tex").exists()


def test_grid_errors_name_the_file(tmp_path, capsys):
  assert report.main([f"--grid={tmp_path}", f"--out={tmp_path / 'o'}"]) == 1
  assert "grid.json: no grid.json" in capsys.readouterr().err
  (tmp_path / "grid.json").write_text(json.dumps({"name": "x"}))
  with pytest.raises(DataError, match="grid.json: runs: expected a list"):
    results.load_grid(tmp_path)
  (tmp_path / "grid.json").write_text('{"runs": [')
  with pytest.raises(DataError, match="grid.json:1: expected a JSON object"):
    results.load_grid(tmp_path)
  with pytest.raises(SystemExit):
    report.main([str(tmp_path), f"--grid={tmp_path}"])


def test_package_exports_load_lazily():
  code = (
    "import sys, orthoalign.analysis as a\n"
    "assert 'pandas' not in sys.modules and 'matplotlib' not in sys.modules\n"
    "assert a.correlation is sys.modules['orthoalign.analysis.correlations'].correlation\n"
    "assert 'matplotlib' not in sys.modules\n"
    "from orthoalign.analysis import correlations, trajectory_figure\n"
    "assert callable(a.correlation) and correlations.__name__.endswith('correlations')\n"
    "assert sorted(a.__all__) == sorted(n for n in a.__all__ if hasattr(a, n))\n"
    "try:\n  a.paper\nexcept AttributeError:\n  pass\nelse:\n  raise AssertionError\n"
  )
  subprocess.run(
    [sys.executable, "-c", code],
    check=True,
    cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
  )


def test_trajectory_summary_first_and_last_epoch(tmp_path):
  _write_history(tmp_path / "r", _history_rows(epochs=4, replicas=2))
  t = history.trajectory_summary(results.load_histories([tmp_path / "r"]))
  row = t.iloc[0]
  # Mean over cells (A: 0.4/e; B: 0.3/e + 0.01 r) and replicas r = 0, 1.
  assert row["cos_first"] == pytest.approx((0.4 + 0.305) / 2)
  assert row["cos_last"] == pytest.approx((0.1 + 0.08) / 2)
  assert row["alpha_first"] == pytest.approx((0.51, 0.51)) and row["alpha_last"] == pytest.approx(
    (0.54, 0.54)
  )
  assert row["cos_drop"] > 0 and (row["first_epoch"], row["last_epoch"]) == (1, 4)


def test_label_datasets_keeps_data_variants_apart():
  df = pd.DataFrame(
    {
      "dataset": ["synthetic"] * 3,
      "config.data.synthetic.cross_strength": [0.0, 1.0, 1.0],
      "config.data.path": ["a", "b", "c"],
      "config.data.format": ["synthetic"] * 3,
    }
  )
  out = variants.label_datasets(df)
  assert list(out["dataset"]) == [
    "synthetic (cross_strength=0.0)",
    "synthetic (cross_strength=1.0)",
    "synthetic (cross_strength=1.0)",
  ]
  same = variants.label_datasets(df.iloc[1:])
  assert list(same["dataset"]) == ["synthetic", "synthetic"]


def test_report_lists_the_scaling_grids_parameter_matching():
  meta = {
    "meta": {
      "scaling": {
        "unit_params": 8450,
        "grown_key": "model.ffn",
        "matches": [
          {
            "matched_to": "early@model.ffn=32",
            "target": 94242,
            "value": 54,
            "total": 94372,
            "trainable": 55844,
            "rel_error": 130 / 94242,
          }
        ],
      }
    }
  }
  text = "\n".join(report._matching(meta))
  assert "GCA unit: 8,450 parameters per GCA position" in text and "`model.ffn`" in text
  assert "| early@model.ffn=32 | 94,242 | 54 | 94,372 | 55,844 | +0.14 % |" in text
  assert report._matching({"meta": {}}) == []


def _alpha_sweep_rows(intervention=False):
  """Two LLM4CDSR programs (plain, early) run with --config.sweep.model.alpha='(0.0,0.1,0.5)' and
  seeds 0-2: rows carry each replica's alpha at top level (`model.alpha`); the flattened config
  holds the sweep list and the unswept default model.alpha=0.1.
  """
  rows = []
  programs = [("plain", [], "none"), ("early", [0], "none")]
  if intervention:
    programs.append(("orth", [0], "orthogonal"))
  for run, positions, x_prime in programs:
    replica = 0
    for seed in range(3):
      for alpha in (0.0, 0.1, 0.5):
        gain = 0.01 * len(positions) - (0.002 if x_prime != "none" else 0.0)
        row = _row(
          run,
          "llm4cdsr",
          "fk",
          positions,
          seed,
          100,
          0.1 + alpha / 10 + gain + 0.01 * (seed - 1),
          0.2,
          replica=replica,
          cos=0.1 + alpha,
          **{"model.alpha": alpha, "model.beta": 1.0, "model.tau": 1.0, "model.tau_reg": 1.0},
        )
        row["config"].update(
          {
            "sweep.model.alpha": [0.0, 0.1, 0.5],
            "sweep.seeds": [0, 1, 2],
            "model.alpha": 0.1,
            "model.beta": 1.0,
            "gca.intervention": x_prime,
          }
        )
        rows.append(row)
        replica += 1
  return rows


def test_a_swept_model_hyperparameter_separates_conditions(tmp_path):
  for run in ("plain", "early"):
    _write_workdir(tmp_path / run, [r for r in _alpha_sweep_rows() if r["run"] == run])
  df = results.load_runs([tmp_path / "plain", tmp_path / "early"])
  assert variants.setting_columns(df) == ["model.alpha"]
  t = tables.table1(df, protocols=("sampled",), metrics=("ndcg@10",))
  s = t.summary[t.summary["domain"] == "A"].set_index(["variant", "setting"])
  assert len(s) == 6 and set(s["n"]) == {3}
  early = s.loc[("early", "model.alpha=0.5")]
  assert early["mean"] == pytest.approx(0.1 + 0.05 + 0.01 + 0.1)  # + 0.1: ndcg@10's offset
  assert early["std"] == pytest.approx(0.01)
  # Each alpha is paired with the plain replicas of the same alpha and seeds.
  pa = t.paired[t.paired["domain"] == "A"]
  assert sorted(pa["setting"]) == ["model.alpha=0", "model.alpha=0.1", "model.alpha=0.5"]
  assert list(pa["setting"]) == list(pa["control"]) and set(pa["n"]) == {3}
  assert list(pa["mean_diff"]) == [pytest.approx(0.01)] * 3
  # The same in grid mode, where the axes name the variant only.
  root = tmp_path
  (root / "grid.json").write_text(
    json.dumps(
      {
        "name": "alpha",
        "runs": [{"name": r, "workdir": r, "axes": {"gca": r}} for r in ("plain", "early")],
      }
    )
  )
  g = results.load_grid(root).df
  assert variants.setting_columns(g) == ["model.alpha"]
  assert set(tables.table1(g, protocols=("sampled",), metrics=("ndcg@10",)).summary["n"]) == {3}


def test_a_swept_model_hyperparameter_in_interventions_and_alignment():
  df = _frame(_alpha_sweep_rows(intervention=True))
  pr = tables.interventions(df, protocols=("sampled",), metrics=("ndcg@10",))
  pr = pr[pr["domain"] == "A"]
  # Each orthogonal alpha against the untouched cell of the same alpha: 3 rows of 3 seeds.
  assert len(pr) == 3 and set(pr["n"]) == {3}
  assert list(pr["mean_diff"]) == [pytest.approx(-0.002)] * 3
  assert all(s.startswith("gca.intervention=orthogonal, model.alpha=") for s in pr["setting"])
  assert [c.split(", ")[1] for c in pr["control"]] == [s.split(", ")[1] for s in pr["setting"]]
  a = alignment.alignment_by_condition(df, ("abs_mean_cos",))
  got = a.set_index("setting")
  assert len(a) == 6 and set(a["n"]) == {3}
  assert got.loc["gca.intervention=none, model.alpha=0.5", "mean"] == pytest.approx(0.6)
  assert got.loc["gca.intervention=none, model.alpha=0.5", "std"] == pytest.approx(0.0)
  # A replica column that only repeats a varying config key adds no second label.
  same = _frame(
    [
      _row(
        "p",
        "m",
        "d",
        [],
        s,
        1,
        0.1,
        0.1,
        learning_rate=lr,
        config={"train.learning_rate": lr, "gca.positions": []},
      )
      for s in range(2)
      for lr in (1e-3, 2e-3)
    ]
  )
  assert variants.setting_columns(same) == ["learning_rate"]
  # Rows from before the replica column existed still split on the config value.
  old = _frame(
    [
      _row(
        "p",
        "m",
        "d",
        [],
        s,
        1,
        0.1,
        0.1,
        config={"model.alpha": a, "gca.positions": []},
        **{"model.alpha": np.nan},
      )
      for s in range(2)
      for a in (0.1, 0.5)
    ]
  )
  assert variants.setting_columns(old) == ["config.model.alpha"]


def _budget_grid(tmp_path, max_epochs=1, epochs=1, best=(1, 1), patience=20, history_epochs=1):
  """A plain and an early program of 2 replicas, trained `epochs` of `max_epochs` epochs."""
  root = tmp_path / "budget"
  runs = []
  for gca, positions in (("plain", []), ("early", [0])):
    rows = [
      _row(
        gca,
        "sasrec",
        "afk",
        positions,
        seed,
        100 + len(positions),
        0.1 + 0.01 * seed + 0.01 * len(positions),
        0.2,
        replica=seed,
        cos=0.1 + 0.02 * seed,
        epochs_trained=epochs,
        best_epoch=best[seed],
      )
      for seed in range(2)
    ]
    for r in rows:
      r["config"].update(
        {
          "train.max_epochs": max_epochs,
          "train.early_stop_patience": patience,
          "train.eval_every": 1,
          "train.warmup_epochs": 0,
        }
      )
    _write_workdir(root / f"gca={gca}", rows)
    _write_history(root / f"gca={gca}", _history_rows(epochs=history_epochs))
    runs.append({"name": f"gca={gca}", "workdir": f"gca={gca}", "axes": {"gca": gca}})
  (root / "grid.json").write_text(json.dumps({"name": "budget", "runs": runs}))
  return root


def test_report_says_where_it_wrote(tmp_path, capsys):
  root = _budget_grid(
    tmp_path, max_epochs=50, epochs=30, best=(20, 22), patience=8, history_epochs=4
  )
  out = tmp_path / "rep"
  assert report.main([f"--grid={root}", f"--out={out}"]) == 0
  last = capsys.readouterr().out.rstrip("\n").splitlines()[-1]
  assert last == f"report written: {out / 'README.md'} (figures and table1.tex in {out})"
  _write_workdir(tmp_path / "one", [_row("one", "m", "d", [], 0, 1, 0.1, 0.1)])
  assert report.main([str(tmp_path / "one"), f"--out={tmp_path / 'one.md'}"]) == 0
  assert capsys.readouterr().out.rstrip("\n").splitlines()[-1] == (
    f"report written: {tmp_path / 'one.md'}"
  )
  assert report.main([str(tmp_path / "one")]) == 0
  assert "report written" not in capsys.readouterr().out  # nothing written: nothing claimed


def test_report_flags_runs_cut_short_at_max_epochs(tmp_path, capsys):
  # --set train.max_epochs=1: no replica could early-stop (patience 20).
  root = _budget_grid(tmp_path, max_epochs=1, epochs=1, best=(1, 1), patience=20)
  out = tmp_path / "rep"
  assert report.main([f"--grid={root}", f"--out={out}"]) == 0
  stdout = capsys.readouterr().out
  text = (out / "README.md").read_text()
  warning = (
    "**Warning: 2 of 2 programs cut short at max_epochs=1 (no early stop)**: gca=early, gca=plain"
  )
  assert warning in text and text.index(warning) < text.index("## Table 1")
  tail = stdout.rstrip("\n").splitlines()[-2]
  assert tail.startswith("warning: 2 of 2 programs cut short at max_epochs=1 (no early stop): ")
  # Per program: which replicas had not early-stopped.
  cut = results.cut_short(results.load_grid(root).df)
  assert list(cut["program"]) == ["gca=early", "gca=plain"]
  assert list(cut["not_stopped"]) == [2, 2] and list(cut["replicas"]) == [2, 2]
  assert list(cut["max_epochs"]) == [1, 1]


def test_report_does_not_flag_runs_that_early_stopped(tmp_path, capsys):
  # Stopped before max_epochs; or at max_epochs = 30 with both replicas' last 8 evaluations
  # (best epochs 20, 22) not improving: early stopping ended them, not the cap.
  for kw in (
    dict(max_epochs=50, epochs=30, best=(20, 22), patience=8),
    dict(max_epochs=30, epochs=30, best=(20, 22), patience=8),
  ):
    root = _budget_grid(tmp_path / str(kw["max_epochs"]), history_epochs=4, **kw)
    assert results.cut_short(results.load_grid(root).df).empty
    assert report.main([f"--grid={root}", f"--out={tmp_path / 'rep'}"]) == 0
    assert "cut short" not in capsys.readouterr().out
  # One replica still improving 3 evaluations before the cap: flagged.
  root = _budget_grid(tmp_path / "x", max_epochs=30, epochs=30, best=(20, 27), patience=8)
  cut = results.cut_short(results.load_grid(root).df)
  assert list(cut["not_stopped"]) == [1, 1]
  # Rows without the bookkeeping columns (older results) are not judged.
  assert results.cut_short(_table1_frame()).empty


def test_report_skips_trajectories_of_single_epoch_runs(tmp_path, capsys):
  root = _budget_grid(tmp_path, max_epochs=1, epochs=1, best=(1, 1), history_epochs=1)
  out = tmp_path / "rep"
  assert report.main([f"--grid={root}", f"--out={out}"]) == 0
  text = (out / "README.md").read_text()
  section = text.split("## Alignment over training")[1].split("\n## ")[0]
  assert "trajectory figures skipped: no program has ≥ 2 validated epochs" in section
  assert not list(out.glob("trajectory*.png"))
  assert figures.trajectory_figure(root / "gca=early", tmp_path / "t.png") == []


def test_trajectory_figure_draws_only_panels_with_data(tmp_path):
  t = pd.DataFrame(
    {"replica": [0, 0, "mean", "mean"], "epoch": [1, 2, 1, 2], "valid/A": [0.1, 0.2, 0.1, 0.2]}
  )  # a plain program: no GCA cell
  ((_, fig),) = figures.trajectory_figure(t, tmp_path / "plain.png", return_fig=True)
  assert len(fig.axes) == 1 and fig.axes[0].get_ylabel() == "validation NDCG@10"
  assert not any(x.get_text() == "not logged" for ax in fig.axes for x in ax.texts)
  figures.plt.close(fig)
