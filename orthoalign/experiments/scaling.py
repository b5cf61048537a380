"""The scaling experiment's grid: baseline sizes matched to baseline + GCA (the paper's Figure 3).

reference/paper.md §4: each GCA series adds GCA cells to the smaller baseline sizes; the baseline
sizes are chosen to land on the GCA models' total parameter counts (the parameter-matched
comparison), plus larger sizes. Here:

1. GCA points: every GCA variant (e.g. early = GCA[0], stack = GCA[0, 1]) added to the smallest
   `gca_sizes` baseline sizes, where each next size is the baseline matched to the previous
   size + GCA_early.
2. Baseline points: the base size, one matched to every GCA point's total count
   (`models.param_count.match`, growing the model's FFN width), and `larger` more sizes, each one
   GCA unit (GCA_early's added count at the base size) above the largest.
Targets and achieved counts go into grid.json's `meta` (every match must be within `tolerance`,
else the grid refuses to expand, naming the point).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.experiments import expand
from orthoalign.models import param_count


def scaling_grid(
  config: ml_collections.ConfigDict,
  variants: Mapping[str, tuple[int, ...]] = (("early", (0,)), ("stack", (0, 1))),
  gca_sizes: int = 2,
  larger: int = 2,
  seeds: Sequence[int] = (0, 1, 2, 3, 4),
  tolerance: float = 0.01,
) -> expand.Grid:
  """Builds the Grid (blocks, short names, matching record) of a scaling experiment.

  Args:
    config: the smallest baseline's config (its gca.* settings other than positions are used
      for the GCA points; gca.positions is overridden).
    variants: GCA variant label -> gca.positions, in order; the first one is the step from one GCA
      size to the next.
    gca_sizes: how many of the smallest baseline sizes get GCA points.
    larger: baseline sizes beyond the largest matched one, one GCA unit apart.
    seeds: replicas of every program.
    tolerance: the largest |achieved - target| / target accepted for a matched baseline.

  Returns:
    An expand.Grid with axes gca (plain + variants) x the grown key (labelled by its value), and
    meta {"grown_key", "unit_params", "matches": [...], "tolerance"}.

  Raises:
    ConfigError: a target no width can reach within tolerance.
  """
  variants = dict(variants)
  key = param_count.GROW_KEY
  base_value = dicts.get(config, key) or config.model.width  # ffn 0 = width
  config = param_count.with_values(config, {key: int(base_value)})
  plain = param_count.with_values(config, {"gca.positions": ()})
  at = lambda value, positions: param_count.count(
    param_count.with_values(config, {"gca.positions": tuple(positions), key: int(value)})
  )

  base_total = at(base_value, ())[0]
  first = next(iter(variants))
  unit = at(base_value, variants[first])[0] - base_total
  matches: list[dict[str, Any]] = []
  plain_values = [int(base_value)]
  gca_values = [int(base_value)]

  def matched(target: int, label: str) -> int:
    # A baseline size already in the grid that is within tolerance serves this target too
    # (e.g. stack at one size and early at the next land on about the same count).
    for value in plain_values:
      total, trainable = at(value, ())
      if abs(total - target) <= tolerance * target:
        m = param_count.Match(key=key, value=value, target=target, total=total, trainable=trainable)
        matches.append({"matched_to": label, **m.to_dict()})
        return value
    m = param_count.match(plain, target, key=key)
    if abs(m.rel_error) > tolerance:
      raise errors.ConfigError(
        f"scaling grid: no {key} gives a baseline within {tolerance:.0%} of {label} "
        f"({target:,} parameters; nearest {m.total:,} at {key}={m.value})"
      )
    matches.append({"matched_to": label, **m.to_dict()})
    if m.value not in plain_values:
      plain_values.append(m.value)
    return m.value

  i = 0
  while i < len(gca_values) and i < gca_sizes:
    value = gca_values[i]
    for name, positions in variants.items():
      target = at(value, positions)[0]
      step = matched(target, f"{name}@{key}={value}")
      if name == first and len(gca_values) < gca_sizes:
        gca_values.append(step)
    i += 1
  top = max(at(v, ())[0] for v in plain_values)
  for k in range(1, larger + 1):
    matched(top + k * unit, f"larger+{k}")

  size_axis = lambda values: {str(v): v for v in sorted(set(values))}
  blocks = [{"gca.positions": {"plain": ()}, key: size_axis(plain_values), "seed": tuple(seeds)}]
  for name, positions in variants.items():
    blocks.append(
      {"gca.positions": {name: tuple(positions)}, key: size_axis(gca_values), "seed": tuple(seeds)}
    )
  meta = {
    "scaling": {"grown_key": key, "unit_params": unit, "tolerance": tolerance, "matches": matches}
  }
  return expand.Grid(
    blocks=blocks, names={"gca.positions": "gca", key: key.rsplit(".", 1)[-1]}, meta=meta
  )
