"""The click-prediction grid report, on hand-written results of a small grid."""

import json

from orthoalign.analysis import ctr_report


def write_grid(root, programs, seeds=(0, 1, 2)):
  runs = []
  for (sources, cell), shift in programs.items():
    name = f"sources={sources}_cell={cell}"
    (root / name).mkdir(parents=True)
    rows = []
    for r, seed in enumerate(seeds):
      row = {"replica": r, "seed": seed, "best_epoch": 3, "params": 10}
      for group in ("", "cold/", "warm/"):
        row.update(
          {
            f"test/{group}auc": 0.6 + shift + 0.01 * seed,
            f"test/{group}gauc": 0.55 + shift,
            f"test/{group}logloss": 0.09 - shift / 10,
            f"test/{group}pcoc": 1.0,
          }
        )
      if cell == "gca":
        row.update(
          {
            "align/gca0_posts/mean_abs_cos": 0.2,
            "align/gca0_posts/xy_mean_abs_cos": 0.1,
            "align/gca0_posts/alpha": 0.5,
          }
        )
      rows.append(row)
    (root / name / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    runs.append({"name": name, "workdir": name, "axes": {"sources": sources, "cell": cell}})
  runs.append(
    {
      "name": "sources=likes_cell=gca",
      "workdir": "sources=likes_cell=gca",
      "axes": {"sources": "likes", "cell": "gca"},
    }
  )
  (root / "grid.json").write_text(json.dumps({"name": "g", "runs": runs}))


def test_report_tables_and_paired_differences(tmp_path, capsys):
  programs = {("none", "plain"): 0.0, ("posts", "plain"): 0.05, ("posts", "gca"): 0.07}
  write_grid(tmp_path / "grid", programs)
  assert ctr_report.main([f"--grid={tmp_path / 'grid'}", f"--out={tmp_path / 'out'}"]) == 0
  text = (tmp_path / "out" / "README.md").read_text()
  assert "| posts | gca | 3 | 0.6800 ± 0.0100 |" in text  # auc = 0.67 + 0.01 * seed
  assert "| posts | gca_posts" not in text and "| posts | gca0_posts | 0.2000 ± 0.0000" in text
  # GCA - plain on AUC: +0.02 for every seed, so all three seeds better.
  line = next(l for l in text.splitlines() if l.startswith("| posts/gca − posts/plain | auc |"))
  assert "| 3 | +0.0200 |" in line and line.endswith("| 3/3 |")
  # Lower logloss is better: the sources beat the ads history alone on every seed.
  line = next(l for l in text.splitlines() if l.startswith("| posts/plain − none/plain | logloss"))
  assert line.endswith("| 3/3 |")
  assert "Not finished: sources=likes_cell=gca" in text
  assert "report written:" in capsys.readouterr().err
