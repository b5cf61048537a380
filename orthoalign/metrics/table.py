"""Tables of results: one layout for the trainer, orthoalign.evaluate and the analyses.

`render` lays out a table as right-aligned fixed-width text (terminals, logs) or as markdown
(reports). `replica_table` is the table the trainer and orthoalign.evaluate print: one line per
replica, split, protocol and domain, the ranking metrics of each result row (keys
`<split>/<protocol>/<domain>/<metric>`, metrics/keys.py).

Light on purpose (no numpy, no pandas, no JAX): orthoalign.train and orthoalign.analysis import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import math
import numbers
from typing import Any

from orthoalign.metrics import keys

METRIC_WIDTH = 8  # columns of a metric in text tables (0.1234 and its name)
# config.eval.ties -> how a negative scoring exactly as the target counts (metrics/ranking.py).
TIE_RULES = {
  "pessimistic": "a tie counts against the target",
  "optimistic": "a tie counts for the target",
  "expected": "mean over random tie-breaking",
}


def _cell(value: Any, float_format: str) -> str:
  if isinstance(value, str):
    return value
  if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
    return format(float(value), float_format)  # numpy floats too
  return str(value)


def render(
  header: Sequence[str],
  rows: Iterable[Sequence[Any]],
  *,
  markdown: bool = False,
  widths: Sequence[int] = (),
  float_format: str = ".4f",
) -> str:
  """A table as text: right-aligned columns separated by one space, or a markdown table.

  Args:
    header: the column names.
    rows: one sequence of cells per line, as many as `header`. A str is shown as is, a float
      (numpy's too) with `float_format` (NaN as "nan"), anything else (ints) with str().
    markdown: a markdown table (`| a | b |`, `|---|---|`) instead of fixed-width text.
    widths: text only: the least width of each column (default: as wide as its widest cell or
      name); a cell wider than its column widens it.
    float_format: the format of float cells.

  Returns:
    The lines of the table joined by newlines (no trailing newline).
  """
  lines = [[_cell(v, float_format) for v in row] for row in rows]
  for i, line in enumerate(lines):
    if len(line) != len(header):
      raise ValueError(f"row {i} has {len(line)} cells; the header has {len(header)}")
  if markdown:
    return "\n".join(
      ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
      + ["| " + " | ".join(line) + " |" for line in lines]
    )
  least = list(widths) + [0] * (len(header) - len(widths))
  sizes = [
    max([least[j], len(name)] + [len(line[j]) for line in lines]) for j, name in enumerate(header)
  ]
  return "\n".join(
    " ".join(f"{cell:>{size}}" for cell, size in zip(line, sizes))
    for line in [list(header)] + lines
  )


def replica_table(
  rows: Sequence[Mapping[str, Any]],
  metrics: Sequence[str],
  splits: Sequence[str] = ("test",),
  columns: Sequence[tuple[str, int, Callable[[Mapping[str, Any]], Any]]] = (),
) -> str:
  """Text table of ranking metrics: one line per result row (replica), split, protocol and domain.

  The protocols are those the rows hold (keys.row_protocols: sampled, sampled<N>..., full).

  Args:
    rows: result rows (results.jsonl, orthoalign.evaluate) with `replica`, `seed` and metric keys;
      a missing metric shows as nan.
    metrics: metric names, e.g. ("ndcg@10", "mrr"); the header shows them in capitals.
    splits: the splits to show; a `split` column only when there are several.
    columns: further replica columns after `rep` and `seed`: (name, least width, cell of a row).

  Returns:
    The table (see `render`), metrics with 4 decimals.
  """
  header = ["rep", "seed", *(name for name, _, _ in columns)]
  widths = [3, 5, *(width for _, width, _ in columns)]
  if len(splits) > 1:
    header.append("split")
    widths.append(5)
  header += ["proto", "dom", *(m.upper() for m in metrics)]
  widths += [7, 3, *([METRIC_WIDTH] * len(metrics))]
  lines = []
  protocols = {
    split: keys.row_protocols(rows, split) or [keys.SAMPLED, keys.FULL] for split in splits
  }
  for row in rows:
    ids = [row["replica"], row["seed"], *(cell(row) for _, _, cell in columns)]
    for split in splits:
      for proto in protocols[split]:
        for dom in keys.DOMAINS:
          lines.append(
            ids
            + ([split] if len(splits) > 1 else [])
            + [proto, dom]
            + [row.get(keys.metric_key(split, proto, dom, m), math.nan) for m in metrics]
          )
  return render(header, lines, widths=widths)


def group_table(
  rows: Sequence[Mapping[str, Any]],
  metrics: Sequence[str],
  split: str = "test",
  domains: Sequence[str] = keys.DOMAINS,
) -> str:
  """Text table of ranking metrics per user group: one line per replica, group, protocol and domain.

  Args:
    rows: result rows with "<split>/<group>/<protocol>/<domain>/<metric>" keys and the group's
      "<split>/<group>/sampled/all/count" (train.loop.finalize_split).
    metrics: metric names, e.g. ("ndcg@10", "auc").
    split: the split to show.
    domains: the domains to show.

  Returns:
    The table (see `render`), or "" when the rows hold no user group.
  """
  groups = keys.row_groups(rows, split)
  if not groups:
    return ""
  lines = []
  protocols = keys.row_protocols(rows, split)
  for row in rows:
    for group in groups:
      n = row.get(keys.count_key(split, group))
      for proto in protocols:
        for dom in domains:
          lines.append(
            [
              row["replica"],
              group,
              "-" if n is None else int(n),
              proto,
              dom,
              *(row.get(keys.metric_key(split, proto, dom, m, group), math.nan) for m in metrics),
            ]
          )
  return render(
    ["rep", "group", "cases", "proto", "dom", *(m.upper() for m in metrics)],
    lines,
    widths=[3, 14, 5, 7, 3, *([METRIC_WIDTH] * len(metrics))],
  )
