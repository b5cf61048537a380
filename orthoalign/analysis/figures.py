"""PNG figures in the paper's layout (matplotlib, Agg backend; nothing is ever shown).

- `correlation_figure`: Figure 2 (paper.md §2.1-2.2), NDCG@10 against |cos(X, X′)|, Domain A
  blue and Domain B red, least-squares line and Pearson r per panel; one PNG per model.
- `scaling_figure`: Figure 3 (paper.md §4.2), NDCG@10 against total parameters, Domain A above
  Domain B; baseline dashed with circles, +GCA_early squares, +GCA_stack triangles; one PNG per
  model/dataset.
- `alignment_boxplots`: Figure 8 (paper.md §2.1), boxplots of |cos(X, Y)| and |cos(X, X′)|.
- `trajectory_figure`: |cos(X, X′)|, α and validation NDCG@10 against epoch.

Every writer returns the written path(s); with return_fig=True it returns (path, Figure) pairs
and leaves the figures open (the caller closes them), otherwise it closes them.
"""

from __future__ import annotations

import os
import re

import matplotlib

matplotlib.use("Agg")  # files only: never open a window (also on machines without a display)
import matplotlib.pyplot as plt
import matplotlib.ticker  # noqa: E402  (must follow the backend choice)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from orthoalign.analysis import alignment  # noqa: E402
from orthoalign.analysis import correlations  # noqa: E402
from orthoalign.analysis import formatting  # noqa: E402
from orthoalign.analysis import history  # noqa: E402
from orthoalign.analysis import results  # noqa: E402
from orthoalign.analysis import scaling_curves  # noqa: E402
from orthoalign.analysis import stats  # noqa: E402
from orthoalign.analysis import variants  # noqa: E402
from orthoalign.fileio import atomic_write_binary  # noqa: E402

DPI = 120
DOMAIN_COLORS = {"A": "tab:blue", "B": "tab:red"}
_SERIES_STYLE = {
  "plain": dict(marker="o", linestyle="--", color="0.45", label="Baseline"),
  "early": dict(marker="s", linestyle="-", color="tab:orange", label="Baseline+GCA_early"),
  "stack": dict(marker="^", linestyle="-", color="tab:green", label="Baseline+GCA_stack"),
}
_STAT_AXIS = {
  "abs_mean_cos": "|cos(X, X′)|",
  "mean_abs_cos": "mean |cos(X, X′)|",
  "mean_cos": "cos(X, X′)",
  "xy_mean_abs_cos": "mean |cos(X, Y)|",
  "xy_abs_mean_cos": "|cos(X, Y)|",
}


def _slug(*parts: object) -> str:
  return "_".join(re.sub(r"[^A-Za-z0-9.@+-]+", "-", str(p)).strip("-") for p in parts)


def _save(fig: matplotlib.figure.Figure, path: str, return_fig: bool, written: list) -> None:
  fig.tight_layout()
  atomic_write_binary(path, lambda f: fig.savefig(f, format="png", dpi=DPI))
  if return_fig:
    written.append((path, fig))
  else:
    plt.close(fig)
    written.append(path)


def correlation_figure(
  df: pd.DataFrame,
  out: str | os.PathLike[str],
  stat: str = "abs_mean_cos",
  position: int = 0,
  metric: str = "ndcg@10",
  protocol: str = "sampled",
  epoch: str = "best_valid",
  histories: pd.DataFrame | None = None,
  return_fig: bool = False,
) -> list:
  """Figure 2: per model, panels "Domain A" (blue) and "Domain B" (red).

  Each panel scatters the test metric against the alignment stat of cell gca<position>_<domain>
  (one point per replica with that cell, `correlations.correlation_points`), draws the
  least-squares line and prints Pearson "r = …" (with n). `epoch="best_test"` uses the paper's
  test-set selection and says so in the title.

  Args:
    df: `load_runs` frame. out: folder for `correlation_<model>.png`.
    Others: as `correlations.correlation_points`.

  Returns:
    The written paths (or (path, Figure) pairs with return_fig); none when no model has points.
  """
  pts = correlations.correlation_points(df, stat, position, metric, protocol, epoch, histories)
  written: list = []
  if pts.empty:
    return written
  for model, g in pts.groupby("model", sort=True):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, d in zip(axes, results.DOMAINS):
      gd = g[g["domain"] == d]
      ax.set_title(f"Domain {d}")
      ax.set_xlabel(
        _STAT_AXIS.get(stat, stat).replace("X, X′", f"X{d}, X′{d}")
        if stat.startswith("xy_")
        else _STAT_AXIS.get(stat, stat)
      )
      ax.set_ylabel(f"test {formatting.metric_label(metric)}")
      ax.grid(alpha=0.3)
      if gd.empty:
        ax.text(0.5, 0.5, "no points", transform=ax.transAxes, ha="center", va="center")
        continue
      ax.scatter(gd["x"], gd["y"], s=22, color=DOMAIN_COLORS[d], alpha=0.75, edgecolors="none")
      fit = stats.linear_fit(gd["x"], gd["y"])
      c = stats.correlation(gd["x"], gd["y"], n_boot=0)
      if np.isfinite(fit.slope):
        xs = np.linspace(gd["x"].min(), gd["x"].max(), 50)
        ax.plot(xs, fit.slope * xs + fit.intercept, color=DOMAIN_COLORS[d], linewidth=1.5)
      r = f"{c.pearson_r:+.3f}" if np.isfinite(c.pearson_r) else "n/a"
      ax.text(
        0.97,
        0.95,
        f"r = {r}\nn = {c.n}",
        transform=ax.transAxes,
        ha="right",
        va="top",
        bbox=dict(boxstyle="round", facecolor="white", alpha=0.6, edgecolor="0.7"),
      )
    sel = "best test epoch (paper's choice)" if epoch == "best_test" else "best validation epoch"
    fig.suptitle(
      f"{model}: orthogonality vs. {formatting.metric_label(metric)} "
      f"(cell at GCA position {position}, {sel})"
    )
    _save(fig, os.path.join(os.fspath(out), f"correlation_{_slug(model)}.png"), return_fig, written)
  return written


def scaling_figure(
  df: pd.DataFrame,
  out: str | os.PathLike[str],
  metric: str = "ndcg@10",
  protocol: str = "sampled",
  return_fig: bool = False,
) -> list:
  """Figure 3: per model/dataset, Domain A panel above Domain B, metric against parameters.

  Series: baseline (dashed line, circles), +GCA_early (squares), +GCA_stack (triangles), other
  placements with diamonds; markers are means over seeds, error bars the std over seeds; the
  smallest point of each series gets a black edge as in the paper.

  Returns:
    Paths of `scaling_<model>_<dataset>.png` (or (path, Figure) pairs).
  """
  s = scaling_curves.scaling(df, metric, protocol)
  written: list = []
  if s.empty:
    return written
  for (model, dataset), g in s.groupby(["model", "dataset"], sort=True):
    fig, axes = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True)
    for ax, d in zip(axes, results.DOMAINS):
      gd = g[g["domain"] == d]
      ax.set_title(f"Domain {d}")
      ax.set_ylabel(formatting.metric_label(metric))
      ax.grid(alpha=0.3)
      for v in sorted(gd["variant"].unique(), key=variants.variant_sort_key):
        sv = gd[gd["variant"] == v].sort_values("params")
        style = dict(
          _SERIES_STYLE.get(v, dict(marker="D", linestyle="-", color=None, label=f"Baseline+{v}"))
        )
        if v != "plain" and len(sv) == 1:
          style["linestyle"] = "none"
        ax.errorbar(
          sv["params"], sv["mean"], yerr=sv["std"].fillna(0.0), capsize=3, markersize=7, **style
        )
        ax.plot(
          sv["params"].iloc[:1],
          sv["mean"].iloc[:1],
          linestyle="none",
          marker=style["marker"],
          markersize=7,
          markerfacecolor="none",
          markeredgecolor="black",
        )
      ax.legend(fontsize=8, loc="lower right")
    axes[-1].set_xlabel("Parameters (total)")
    fig.suptitle(
      f"{model} / {dataset}: {formatting.metric_label(metric)} vs. parameters ({protocol})"
    )
    _save(
      fig, os.path.join(os.fspath(out), f"scaling_{_slug(model, dataset)}.png"), return_fig, written
    )
  return written


def alignment_boxplots(
  df: pd.DataFrame,
  out: str | os.PathLike[str],
  xx_stat: str = "mean_abs_cos",
  xy_stat: str = "xy_mean_abs_cos",
  return_fig: bool = False,
) -> list:
  """Figure 8: boxplots of |cos(X, Y)| (left) and |cos(X, X′)| (right) per model/dataset.

  Each box pools the stat over all GCA cells, domains and replicas of that model/dataset.

  Returns:
    [path of alignment_boxplots.png] (or [(path, Figure)]); [] when no run has GCA cells.
  """
  vals = alignment.alignment_values(df, (xx_stat, xy_stat))
  written: list = []
  if vals.empty:
    return written
  groups = sorted({(m, d) for m, d in zip(vals["model"], vals["dataset"])})
  labels = [f"{m}\n{d}" for m, d in groups]
  fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.6 * len(groups) * 2), 4.0))
  for ax, st in ((axes[0], xy_stat), (axes[1], xx_stat)):
    title = alignment.STAT_LABELS.get(st, st)
    data = [
      vals[(vals["model"] == m) & (vals["dataset"] == d) & (vals["stat"] == st)]["value"].to_numpy()
      for m, d in groups
    ]
    ax.boxplot(
      [x if x.size else np.array([np.nan]) for x in data], tick_labels=labels, showfliers=True
    )
    ax.set_title(title)
    ax.set_ylabel(alignment.STAT_LABELS.get(st, st))
    ax.grid(alpha=0.3, axis="y")
    ax.tick_params(axis="x", labelsize=8)
  fig.suptitle("GCA alignment, pooled over cells, domains, seeds", fontsize=10)
  _save(fig, os.path.join(os.fspath(out), "alignment_boxplots.png"), return_fig, written)
  return written


def trajectory_figure(
  workdir_or_frame: str | os.PathLike[str] | pd.DataFrame,
  out: str | os.PathLike[str],
  stat: str = "abs_mean_cos",
  metric: str = "ndcg@10",
  protocol: str = "sampled",
  return_fig: bool = False,
) -> list:
  """|cos(X, X′)| per cell, α per cell and validation metric against epoch, one panel each.

  Thin lines are replicas, thick lines their mean. Only the panels with values are drawn (a plain
  program has no cos or α panel).

  Args:
    workdir_or_frame: a run folder (with history.jsonl), a `load_histories` frame or a
      `history.trajectory` frame.
    out: the PNG path to write (a folder gets `trajectory.png`).

  Returns:
    [path] (or [(path, Figure)]); [] when there is nothing to plot: fewer than 2 validated epochs
    (`history.validated_epochs`; one point is no trajectory) or no values at all.
  """
  t = workdir_or_frame
  if not (
    isinstance(t, pd.DataFrame)
    and "replica" in t.columns
    and any(c.startswith(("cos/", "alpha/", "valid/")) and c.count("/") == 1 for c in t.columns)
  ):
    t = history.trajectory(t, stat, metric, protocol)
  written: list = []
  if history.validated_epochs(t) < 2:
    return written
  panels = []
  for prefix, label in (
    ("cos/", _STAT_AXIS.get(stat, stat)),
    ("alpha/", "α (gate)"),
    ("valid/", f"validation {formatting.metric_label(metric)}"),
  ):
    # A grid's histories frame has every program's cells; plot (and list) only this run's.
    cols = [c for c in t.columns if c.startswith(prefix) and t[c].notna().any()]
    if cols:
      panels.append((label, cols))
  if not panels:
    return written
  out = os.fspath(out)
  if os.path.isdir(out) or not out.lower().endswith(".png"):
    out = os.path.join(out, "trajectory.png")
  fig, axes = plt.subplots(
    len(panels), 1, figsize=(6.4, 2.5 * len(panels)), sharex=True, squeeze=False
  )
  axes = axes[:, 0]
  is_mean = t["replica"].astype(str) == "mean"
  for ax, (label, cols) in zip(axes, panels):
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    for i, c in enumerate(cols):
      color = f"C{i}"
      for _, g in t[~is_mean].groupby("replica"):
        g = g[g[c].notna()]
        ax.plot(g["epoch"], g[c], color=color, alpha=0.3, linewidth=0.8)
      m = t[is_mean & t[c].notna()]
      ax.plot(m["epoch"], m[c], color=color, linewidth=2.0, label=c.split("/", 1)[1])
    ax.legend(fontsize=8)
  axes[0].set_title("Orthogonal alignment over training (validation inputs)")
  axes[-1].set_xlabel("epoch")
  axes[-1].xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  _save(fig, out, return_fig, written)
  return written
