"""The `gca.*` checks (run by orthoalign.config.validation) and the models' position check.

Each raises `errors.ConfigError` naming the key, its value and what is allowed.
"""

from __future__ import annotations

import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.config import replica_axes
from orthoalign.models import gca

ConfigError = errors.ConfigError


# Every gca.* key the cells read (configs/base.py has them all).
_KEYS = tuple(
  f"gca.{k}"
  for k in (
    "act",
    "causal",
    "dropout",
    "ffn",
    "gate",
    "gate_init",
    "heads",
    "kv",
    "layernorm",
    "positions",
    "intervention",
    "orth_penalty",
  )
) + replica_axes.sweep_keys("gca")


def check_config(config: ml_collections.ConfigDict, kv_choices: tuple[str, ...]) -> None:
  """The GCA cell's settings, its interventions and penalties, and the gate-init sweep.

  Args:
    config: the whole config (the shuffled intervention reads the batch sizes).
    kv_choices: the `gca.kv` values the model supports ("other"; ABXI also "mixed").

  Raises:
    ConfigError: naming the first missing or invalid key.
  """
  dicts.require(config, _KEYS, "the GCA cell", "configs/base.py")
  dicts.choice("gca.gate", config.gca.gate, gca.GATES)
  dicts.choice("gca.act", config.gca.act, gca.ACTS)
  if config.gca.kv not in kv_choices:
    raise ConfigError(
      f"config key gca.kv={config.gca.kv!r}: model.name={config.model.name!r} supports "
      f"{list(kv_choices)} ('other': each cell reads the other domain's stream; 'mixed': the "
      "merged stream)"
    )
  dicts.choice("gca.layernorm", config.gca.layernorm, gca.LAYERNORMS)
  positions = config.gca.positions
  if not isinstance(positions, (tuple, list)) or not all(
    isinstance(p, int) and p >= 0 for p in positions
  ):
    raise ConfigError(
      f"config key gca.positions={positions!r} must be a tuple of ints >= 0, "
      "e.g. --config.gca.positions='(0,)'"
    )
  if len(set(positions)) != len(positions):
    raise ConfigError(f"config key gca.positions={positions!r} lists a position twice")
  _check_interventions(config)
  if not isinstance(config.gca.ffn, int) or config.gca.ffn < 0:
    raise ConfigError(f"config key gca.ffn={config.gca.ffn!r} must be an int >= 0")
  dicts.check_int(config, "gca.heads", 1)
  dicts.check_fraction(config, "gca.dropout")
  dicts.check_number(config, "gca.gate_init")
  dicts.check_number_list(
    "sweep.gate_inits", config.sweep.gate_inits, what="initial gate pre-activations"
  )


def _check_interventions(config: ml_collections.ConfigDict) -> None:
  """gca.intervention and gca.orth_penalty / sweep.orth_penalties: known values, on GCA cells."""
  intervention = config.gca.intervention
  dicts.choice("gca.intervention", intervention, gca.INTERVENTIONS)
  penalty = config.gca.orth_penalty
  penalties = config.sweep.orth_penalties
  if not dicts.is_finite_number(penalty):
    raise ConfigError(
      f"config key gca.orth_penalty={penalty!r} must be a finite number (0 = no penalty)"
    )
  dicts.check_number_list("sweep.orth_penalties", penalties, what="e.g. '(0.0,0.1,-0.1)'")
  if not config.gca.positions:
    for key, value, off in (
      ("gca.intervention", intervention, "none"),
      ("gca.orth_penalty", penalty, 0.0),
      ("sweep.orth_penalties", tuple(penalties), ()),
    ):
      if value != off:
        raise ConfigError(
          f"config key {key}={value!r} acts on GCA cells, but gca.positions=() "
          "configures none; set e.g. --config.gca.positions='(0,)'"
        )
  if intervention == "shuffled":
    for key in ("train.batch_size", "eval.batch_size"):
      if dicts.get(config, key) == 1:
        raise ConfigError(
          f"config key gca.intervention='shuffled' takes Y from another row of "
          f"the batch, but {key}=1 has no other row; use a batch of >= 2"
        )


def check_positions(
  config: ml_collections.ConfigDict, allowed: tuple[int, ...] | range, where: str
) -> None:
  """gca.positions must be insertion points the model has (a range for 0..blocks).

  Raises:
    ConfigError: naming the positions the model has.
  """
  bad = [p for p in config.gca.positions if p not in allowed]
  if bad:
    have = f"{allowed.start}..{allowed.stop - 1}" if len(allowed) > 8 else str(list(allowed))
    raise ConfigError(
      f"config key gca.positions={tuple(config.gca.positions)}: {where} has GCA "
      f"positions {have}; {bad} is not one of them"
    )
