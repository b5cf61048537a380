r"""Table 1 (paper.md §3.1): mean ± std over seeds per condition and the paired comparison with
the plain baseline, as tidy frames (`table1`) rendered to markdown or LaTeX (booktabs).

Input is the runs frame of `results.load_runs` (optionally with grid `axis.*` columns);
conditions are those of `variants.setting_columns`.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses

import numpy as np
import pandas as pd

from orthoalign.analysis import formatting
from orthoalign.analysis import results
from orthoalign.analysis import stats
from orthoalign.analysis import variants
from orthoalign.metrics import keys

TABLE1_METRICS = ("ndcg@1", "ndcg@10", "auc", "hr@10", "mrr")
WILCOXON_FOOTNOTE = (
  "With n seeds the exact two-sided Wilcoxon signed-rank test cannot give p below 2 / 2^n: "
  "0.0625 for n = 5, so five seeds can never reach p < 0.05 by this test, whatever the effect; "
  "read it together with the t-test and the CI."
)
_CONDITION = ["model", "dataset", "variant", "setting"]


@dataclasses.dataclass
class Table1:
  """Table 1 as two tidy frames.

  Attributes:
    summary: one row per (model, dataset, variant, setting, protocol, domain, metric) with mean,
      std (ddof=1) and n over seeds (test split, each run at its best validation epoch).
    paired: one row per non-plain condition × protocol × domain × metric: the paired comparison
      with the plain baseline of the same model, dataset and shared settings over matching seeds
      (columns n, mean_diff, ci_low, ci_high, t_stat, t_p, wilcoxon_p, wilcoxon_min_p, plus
      `control`, the plain condition it was compared with).
    metrics, protocols: what was requested (for the renderers' column order).
    group: the user group the metrics are of ("" = all test users; e.g. "non-overlapped").
  """

  summary: pd.DataFrame
  paired: pd.DataFrame
  metrics: tuple[str, ...]
  protocols: tuple[str, ...]
  group: str = ""


def table1(
  df: pd.DataFrame,
  protocols: Sequence[str] | None = None,
  metrics: Sequence[str] = TABLE1_METRICS,
  group: str = "",
) -> Table1:
  """Table 1 (paper.md §3.1): baseline, +GCA_early, +GCA_stack, mean ± std over seeds.

  Conditions are (model, dataset, variant) plus any setting that varies between runs
  (`variants.setting_columns`). Each GCA condition is paired with the plain runs of the same
  model and dataset; a setting is matched too when it varies among those plain runs (e.g. hidden
  size in a size grid). A setting that is constant among the plain runs (e.g. the gate
  activation, which a plain model lacks) is not matched; the `control` column shows which plain
  condition was used. Pairs are joined on seed (duplicates per seed are averaged).

  Args:
    df: `load_runs` frame (optionally with `axis.*` columns).
    protocols: e.g. ("sampled", "full") (metrics/keys.py); None = every protocol the runs hold.
    metrics: metric names as in the results columns.
    group: a user group ("overlapped", "non-overlapped", ...; `user_groups`): the metrics of that
      group's test users; "" = all.

  Returns:
    A `Table1`.

  Raises:
    DataError: if model, dataset, seed or the GCA positions are missing.
  """
  df = variants.with_variant(df)
  variants.require_columns(df, ("model", "dataset", "seed"))
  settings = variants.setting_columns(df)
  df = variants.add_conditions(df, settings)
  gcols = variants.condition_columns(settings)
  protocols, metric_cols = _metric_columns(df, protocols, metrics, group)
  rows = []
  for key, g in df.groupby(gcols, sort=False, dropna=False):
    base = dict(zip(gcols, key))
    for p, d, m, col in metric_cols:
      v = pd.to_numeric(g[col], errors="coerce").dropna()
      rows.append(
        {
          "model": base["model"],
          "dataset": base["dataset"],
          "variant": base["variant"],
          "setting": g["setting"].iloc[0],
          "protocol": p,
          "domain": d,
          "metric": m,
          "mean": v.mean() if len(v) else np.nan,
          "std": v.std(ddof=1) if len(v) > 1 else np.nan,
          "n": int(len(v)),
        }
      )
  summary = variants.sorted_rows(
    pd.DataFrame(rows, columns=_CONDITION + ["protocol", "domain", "metric", "mean", "std", "n"]),
    _CONDITION,
  )
  paired = _paired(df, settings, gcols, metric_cols)
  return Table1(summary, paired, tuple(metrics), tuple(protocols), group)


def _metric_columns(
  df: pd.DataFrame, protocols: Sequence[str] | None, metrics: Sequence[str], group: str
) -> tuple[Sequence[str], list[tuple[str, str, str, str]]]:
  """The protocols (None = every one the runs hold) and the test metric columns df has, as
  (protocol, domain, metric, column) in protocol, domain, metric order.
  """
  if protocols is None:
    protocols = keys.row_protocols([{c: None for c in df.columns}], "test")
  cols = [
    (p, d, m, keys.metric_key("test", p, d, m, group))
    for p in protocols
    for d in results.DOMAINS
    for m in metrics
  ]
  return protocols, [t for t in cols if t[3] in df.columns]


def user_groups(df: pd.DataFrame) -> list[str]:
  """The user groups whose test metrics the runs report (train.loop.finalize_split)."""
  return keys.row_groups([{c: None for c in df.columns}], "test")


def _paired(
  df: pd.DataFrame,
  settings: Sequence[str],
  gcols: Sequence[str],
  metric_cols: Sequence[tuple[str, str, str, str]],
) -> pd.DataFrame:
  """`Table1.paired` of an `add_conditions` frame (see `table1`)."""
  rows = []
  plain_all = df[df["variant"] == "plain"]
  for key, g in df[df["variant"] != "plain"].groupby(gcols, sort=False, dropna=False):
    base = dict(zip(gcols, key))
    plain = plain_all[
      (plain_all["model"] == base["model"]) & (plain_all["dataset"] == base["dataset"])
    ]
    if plain.empty:
      continue
    for c in settings:
      k = f"_k:{c}"
      if plain[k].nunique() > 1:  # a setting the plain runs vary: match on it
        plain = plain[plain[k] == base[k]]
    rows += _paired_rows(g, plain, base, metric_cols)
  return variants.sorted_rows(pd.DataFrame(rows, columns=_PAIRED_COLUMNS), _CONDITION)


_PAIRED_COLUMNS = _CONDITION + [
  "control",
  "protocol",
  "domain",
  "metric",
  "n",
  "mean_diff",
  "ci_low",
  "ci_high",
  "t_stat",
  "t_p",
  "wilcoxon_p",
  "wilcoxon_min_p",
]


def _paired_rows(
  treated: pd.DataFrame,
  control: pd.DataFrame,
  base: dict,
  metric_cols: Sequence[tuple[str, str, str, str]],
) -> list[dict]:
  """One paired-comparison row per metric column: `treated` − `control` over matching seeds."""
  label = "; ".join(sorted(set(control["setting"]))) or "—"
  rows = []
  for p, d, m, col in metric_cols:
    t = pd.to_numeric(treated[col], errors="coerce").groupby(treated["seed"]).mean()
    c = pd.to_numeric(control[col], errors="coerce").groupby(control["seed"]).mean()
    both = pd.concat({"t": t, "c": c}, axis=1, join="inner")
    res = stats.paired_comparison(both["t"].to_numpy(), both["c"].to_numpy())
    rows.append(
      {
        "model": base["model"],
        "dataset": base["dataset"],
        "variant": base["variant"],
        "setting": treated["setting"].iloc[0],
        "control": label,
        "protocol": p,
        "domain": d,
        "metric": m,
        "n": res.n,
        "mean_diff": res.mean_diff,
        "ci_low": res.ci95[0],
        "ci_high": res.ci95[1],
        "t_stat": res.t_stat,
        "t_p": res.t_p,
        "wilcoxon_p": res.wilcoxon_p,
        "wilcoxon_min_p": res.wilcoxon_min_p,
      }
    )
  return rows


INTERVENTION = "config.gca.intervention"


def intervened(df: pd.DataFrame) -> pd.Series:
  """Per row: True where the run's GCA cell has an intervention (gca.intervention not "none")."""
  if INTERVENTION not in df.columns:
    return pd.Series(False, index=df.index)
  return df[INTERVENTION].fillna("none").astype(str) != "none"


def _intervention_settings(df: pd.DataFrame, settings: Sequence[str]) -> list[str]:
  """The setting columns that only name the intervention (one-to-one with it on GCA rows)."""
  gca = df[df["variant"] != "plain"]
  out = []
  for c in settings:
    pair = pd.DataFrame({"a": gca[c].map(variants.as_key), "i": gca[INTERVENTION].astype(str)})
    if c == INTERVENTION or (
      pair.groupby("a")["i"].nunique().max() == 1 and pair.groupby("i")["a"].nunique().max() == 1
    ):
      out.append(c)
  return out


def interventions(
  df: pd.DataFrame,
  protocols: Sequence[str] | None = None,
  metrics: Sequence[str] = TABLE1_METRICS,
  group: str = "",
) -> pd.DataFrame:
  """Each intervention on the GCA cell paired with the same cell without it.

  A run with `gca.intervention` = orthogonal / parallel / shuffled (models/gca.py) is compared
  with the runs of the same model, dataset, GCA variant and every other setting whose
  intervention is "none", over matching seeds: did replacing X′ by its orthogonal part (or its
  part along X, or the other-domain history by another user's) cost accuracy?

  Args:
    df: `load_runs` frame (optionally with `axis.*` columns) holding `config.gca.intervention`.
    protocols, metrics, group: as `table1`.

  Returns:
    `Table1.paired`'s columns (`control` names the condition compared with); empty when no run
    has an intervention or none has a matching "none" run.

  Raises:
    DataError: if model, dataset, seed or the GCA positions are missing.
  """
  df = variants.with_variant(df)
  variants.require_columns(df, ("model", "dataset", "seed"))
  if INTERVENTION not in df.columns:
    return pd.DataFrame(columns=_PAIRED_COLUMNS)
  df = df.assign(**{INTERVENTION: df[INTERVENTION].fillna("none")})
  settings = variants.setting_columns(df)
  df = variants.add_conditions(df, settings)
  gcols = variants.condition_columns(settings)
  match = [f"_k:{c}" for c in settings if c not in _intervention_settings(df, settings)]
  protocols, metric_cols = _metric_columns(df, protocols, metrics, group)
  gca = df[df["variant"] != "plain"]
  none = gca[gca[INTERVENTION] == "none"]
  rows = []
  for key, g in gca[gca[INTERVENTION] != "none"].groupby(gcols, sort=False, dropna=False):
    base = dict(zip(gcols, key))
    same = (
      (none["model"] == base["model"])
      & (none["dataset"] == base["dataset"])
      & (none["variant"] == base["variant"])
    )
    for k in match:
      same &= none[k] == base[k]
    if same.any():
      rows += _paired_rows(g, none[same], base, metric_cols)
  return variants.sorted_rows(pd.DataFrame(rows, columns=_PAIRED_COLUMNS), _CONDITION)


def _summary_wide(t: Table1, protocol: str) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
  """The summary rows of `protocol` and its (metric, domain) columns that have values."""
  s = t.summary[t.summary["protocol"] == protocol]
  cols = [
    (m, d)
    for m in t.metrics
    for d in results.DOMAINS
    if not s[(s["metric"] == m) & (s["domain"] == d)].empty
  ]
  return s, cols


def _ci(r: pd.Series) -> str:
  """The 95 % CI of a paired row's mean difference, as "[low, high]"."""
  return f"[{formatting.number(r['ci_low'])}, {formatting.number(r['ci_high'])}]"


def _summary_cells(g: pd.DataFrame, cols: Sequence[tuple[str, str]], tex: bool) -> list[str]:
  """Mean ± std of one condition's summary rows `g`, one cell per (metric, domain) of `cols`."""
  cells = []
  for m, d in cols:
    r = g[(g["metric"] == m) & (g["domain"] == d)]
    cells.append(
      formatting.mean_std(r["mean"].iloc[0], r["std"].iloc[0], tex=tex)
      if len(r)
      else ("--" if tex else "—")
    )
  return cells


def table1_markdown(
  t: Table1, protocols: Sequence[str] | None = None, paired_metrics: Sequence[str] | None = None
) -> str:
  """Markdown: per protocol a mean ± std table (Table 1 layout) and the paired differences.

  Args:
    t: `table1` output.
    protocols: subset of t.protocols to render (default all).
    paired_metrics: metrics shown in the paired-difference table (default all of t.metrics).
  """
  parts = []
  for protocol in protocols or t.protocols:
    s, cols = _summary_wide(t, protocol)
    if s.empty:
      continue
    who = f", {t.group} users" if t.group else ""
    parts += [
      f"**Test{who}, {protocol} protocol** (mean ± std over seeds, each at its best "
      "validation epoch)",
      "",
      "| model | dataset | variant | setting | n | "
      + " | ".join(f"{formatting.metric_label(m)} {d}" for m, d in cols)
      + " |",
      "|---|---|---|---|---|" + "---|" * len(cols),
    ]
    for (model, dataset, variant, setting), g in s.groupby(_CONDITION, sort=False):
      parts.append(
        f"| {model} | {dataset} | {formatting.variant_label(variant)} | "
        f"{setting or '—'} | {int(g['n'].max())} | "
        + " | ".join(_summary_cells(g, cols, False))
        + " |"
      )
    parts.append("")
    pr = t.paired[t.paired["protocol"] == protocol]
    if paired_metrics is not None:
      pr = pr[pr["metric"].isin(list(paired_metrics))]
    if pr.empty:
      parts += ["(no GCA variant has a plain baseline with matching seeds)", ""]
      continue
    parts += [
      f"**Paired difference to the plain baseline{who}, {protocol} protocol** (same "
      "seeds; treated − baseline)",
      "",
      *paired_markdown(pr),
    ]
    parts += ["", f"Note: {WILCOXON_FOOTNOTE}", ""]
  return "\n".join(parts).rstrip() + "\n"


def paired_markdown(pr: pd.DataFrame) -> list[str]:
  """The rows of a paired-comparison frame (`Table1.paired`, `interventions`) as markdown lines."""
  lines = [
    "| model | dataset | variant | setting | vs. | domain | metric | n | Δ mean | "
    "95 % CI | t-test p | Wilcoxon p (min) |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  ]
  for _, r in pr.iterrows():
    lines.append(
      f"| {r['model']} | {r['dataset']} | {formatting.variant_label(r['variant'])} | "
      f"{r['setting'] or '—'} | {r['control']} | {r['domain']} | "
      f"{formatting.metric_label(r['metric'])} | {r['n']} | "
      f"{formatting.number(r['mean_diff'])} | {_ci(r)} | {formatting.p_value(r['t_p'])} | "
      f"{formatting.p_value(r['wilcoxon_p'])} ({formatting.p_value(r['wilcoxon_min_p'])}) |"
    )
  return lines


_TEX_ESCAPES = {
  "\\": r"\textbackslash{}",
  "_": r"\_",
  "%": r"\%",
  "&": r"\&",
  "#": r"\#",
  "$": r"\$",
  "{": r"\{",
  "}": r"\}",
  "−": "-",
  "Δ": r"$\Delta$",
  "×": r"$\times$",
  "ρ": r"$\rho$",
  "′": "'",
}


def _tex(s: str) -> str:
  """Escapes LaTeX specials of a plain-text cell (one pass, so escapes are not re-escaped)."""
  return "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(s))


def table1_latex(t: Table1, protocol: str = "sampled") -> str:
  """LaTeX (booktabs): the Table 1 block of one protocol and the paired-difference table."""
  s, cols = _summary_wide(t, protocol)
  out = [
    f"% Table 1, test set, {protocol} protocol: mean $\\pm$ std over seeds "
    "(orthoalign.analysis.tables.table1_latex)",
    "\\begin{tabular}{lll" + "c" * len(cols) + "}",
    "\\toprule",
    "Model & Dataset & Variant & "
    + " & ".join(f"{_tex(formatting.metric_label(m))}\\textsubscript{{{d}}}" for m, d in cols)
    + " \\\\",
    "\\midrule",
  ]
  for (model, dataset, variant, setting), g in s.groupby(_CONDITION, sort=False):
    name = formatting.variant_label(variant) + (f" ({setting})" if setting else "")
    out.append(
      f"{_tex(model)} & {_tex(dataset)} & {_tex(name)} & "
      + " & ".join(_summary_cells(g, cols, True))
      + " \\\\"
    )
  out += ["\\bottomrule", "\\end{tabular}", ""]
  pr = t.paired[t.paired["protocol"] == protocol]
  if not pr.empty:
    out += [
      f"% Paired difference to the plain baseline over matching seeds, {protocol} protocol",
      "\\begin{tabular}{llllrrcrr}",
      "\\toprule",
      "Model & Dataset & Variant & Metric & $n$ & $\\Delta$ mean & 95\\% CI & $p_t$ & $p_W$ \\\\",
      "\\midrule",
    ]
    for _, r in pr.iterrows():
      name = formatting.variant_label(r["variant"]) + (f" ({r['setting']})" if r["setting"] else "")
      out.append(
        f"{_tex(r['model'])} & {_tex(r['dataset'])} & {_tex(name)} & "
        f"{_tex(formatting.metric_label(r['metric']))}\\textsubscript{{{r['domain']}}} & "
        f"{r['n']} & {formatting.number(r['mean_diff'])} & {_ci(r)} & "
        f"{formatting.p_value(r['t_p'])} & {formatting.p_value(r['wilcoxon_p'])} \\\\"
      )
    out += ["\\bottomrule", "\\end{tabular}", f"% {_tex(WILCOXON_FOOTNOTE)}", ""]
  return "\n".join(out)
