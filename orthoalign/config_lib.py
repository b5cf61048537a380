"""Config helpers shared by configs/*.py and the trainer: validation, flattening, comparison."""

from __future__ import annotations

from collections.abc import Mapping
import math
import os
import sys
from typing import Any

from absl import flags
import ml_collections
from ml_collections.config_flags import tuple_parser

from orthoalign import errors
from orthoalign import models
from orthoalign.data import load as data_load
from orthoalign.data import synthetic as data_synthetic
from orthoalign.metrics import keys
from orthoalign.metrics import ranking
from orthoalign.models import gca as gca_lib
from orthoalign.train import step as step_lib

# Keys that may change between a run and its resumption (they do not change what was computed).
RESUMABLE_CHANGES = ("train.max_epochs", "train.early_stop_patience")
# Keys added after runs were written, with the value that reproduces what those runs did: a saved
# config without the key equals one with this value (resumption and grid skip checks).
ADDED_KEYS = {
  "eval.ties": "pessimistic",
  "eval.extra_negatives": (),
  "model.ffn_size": 0,
  "gca.ffn": 0,
  "eval.track_test": False,
  "model.reg_pool": "history",
  "model.missing_text": "zero",
  "model.llm_emb_dir": "none",
  "model.llm_emb_file": "itm_emb_np",
  "model.user_emb_file": "usr_profile_emb",
  "train.compute_dtype": "float32",
  "train.item_shards": 1,
  "data.synthetic.planted": True,
  "train.length_buckets": (),
  "model.mask_padding_keys": False,
  "gca.intervention": "none",
  "gca.orth_penalty": 0.0,
  "sweep.orth_penalties": (),
}


ConfigError = errors.ConfigError  # defined with the other errors users see as one line
# The sections every config has (configs/base.py).
SECTIONS = ("data", "model", "gca", "train", "eval", "sweep")

# How a `--config.<key>=text` flag parses its text, by the type of the key's current value
# (ml_collections' own parsers); other types keep the text. `parse_value` applies them.
_PARSERS: dict[type, flags.ArgumentParser] = {
  bool: flags.BooleanParser(),
  int: flags.IntegerParser(),
  float: flags.FloatParser(),
  tuple: tuple_parser.TupleParser(),
  list: tuple_parser.TupleParser(),
}


def is_finite_number(value: Any) -> bool:
  """True for an int or float (not a bool) that is neither NaN nor infinite."""
  return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# What a number may be: (its lowest value or None for none, whether that value is excluded).
ANY = (None, False)
NON_NEGATIVE = (0.0, False)
POSITIVE = (0.0, True)
_SEED_LIMIT = 2**32  # numpy's and JAX's seeds are uint32


def _describe(bound: tuple[float | None, bool], integer: bool) -> str:
  low, open_low = bound
  kind = "an int" if integer else "a finite number"
  return kind if low is None else f"{kind} {'>' if open_low else '>='} {low:g}"


def _number_ok(value: Any, bound: tuple[float | None, bool], integer: bool) -> bool:
  if integer and (isinstance(value, bool) or not isinstance(value, int)):
    return False
  if not is_finite_number(value):
    return False
  low, open_low = bound
  return low is None or value > low or (value == low and not open_low)


def check_number(
  config: ml_collections.ConfigDict, key: str, bound: tuple[float | None, bool] = ANY
) -> None:
  """The value at dotted `key` must be a finite number within `bound` (ANY, NON_NEGATIVE, POSITIVE).

  Raises:
    ConfigError: naming the key, the value and what it must be.
  """
  value = get(config, key)
  if not _number_ok(value, bound, False):
    raise ConfigError(f"config key {key}={value!r} must be {_describe(bound, False)}")


def check_number_list(
  key: str,
  values: Any,
  bound: tuple[float | None, bool] = ANY,
  *,
  integer: bool = False,
  high: int | None = None,
  at_least: int = 0,
  what: str = "",
) -> None:
  """Every element of a list-valued key is a number within `bound` (and below `high`), no value
  twice (two equal values of a sweep list train identical replicas), at least `at_least` of them.

  Args:
    key: the dotted key, for the message.
    values: its value (a tuple or list).
    bound: ANY, NON_NEGATIVE or POSITIVE.
    integer: the elements must be ints.
    high: an exclusive upper limit.
    at_least: the fewest elements.
    what: what the values are, for the message ("learning rates").

  Raises:
    ConfigError: naming the key, the offending element and what every element must be.
  """
  must = _describe(bound, integer) + ("" if high is None else f" below {high}")
  example = f"; {what}" if what else ""
  if not isinstance(values, (tuple, list)):
    raise ConfigError(f"config key {key}={values!r} must be a tuple, each element {must}{example}")
  for i, v in enumerate(values):
    if not _number_ok(v, bound, integer) or (high is not None and v >= high):
      raise ConfigError(
        f"config key {key}={tuple(values)!r}: element {i} ({v!r}) is not {must}{example}"
      )
  twice = sorted({v for v in values if list(values).count(v) > 1}, key=str)
  if twice:
    raise ConfigError(
      f"config key {key}={tuple(values)!r} lists {twice[0]!r} twice; replicas with "
      "equal values would train the same model"
    )
  if len(values) < at_least:
    raise ConfigError(f"config key {key}={tuple(values)!r} must list at least {at_least} value(s)")


def _choice(key: str, value: Any, choices: tuple[Any, ...]) -> None:
  if value not in choices:
    raise ConfigError(f"config key {key}={value!r} is invalid; valid choices: {list(choices)}")


def check_sections(config: ml_collections.ConfigDict, where: str = "") -> None:
  """The config has every section of SECTIONS, each a ConfigDict; ConfigError naming one if not."""
  missing = [k for k in SECTIONS if not isinstance(config.get(k), ml_collections.ConfigDict)]
  if missing:
    raise ConfigError(
      f"{where}the config has no section {missing[0]!r}; start from "
      "configs/base.py, which has every section"
    )


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the first invalid key (with the valid choices)."""
  check_sections(config)
  _choice("model.name", config.model.name, models.names())
  _choice("data.format", config.data.format, data_load.FORMATS)
  _choice("data.on_bad_line", config.data.on_bad_line, ("error", "skip"))
  _choice("data.text_emb", config.data.text_emb, data_load.TEXT_METHODS)
  if config.data.format != "synthetic" and not config.data.path:
    raise ConfigError(
      f"config key data.path is empty; data.format={config.data.format!r} needs "
      "the folder of its files, e.g. --config.data.path=../shared/data/abxi-afk"
    )
  # .get: the config.json of a run from before the key existed means today's (pessimistic) rule.
  _choice("eval.ties", get_added(config, "eval.ties"), ranking.TIES)
  _choice("train.compute_dtype", get_added(config, "train.compute_dtype"), step_lib.COMPUTE_DTYPES)
  check_int(config, "train.num_devices", 0)
  shards = get_added(config, "train.item_shards")
  if not isinstance(shards, int) or isinstance(shards, bool) or shards < 1:
    raise ConfigError(
      f"config key train.item_shards={shards!r} must be an int >= 1 (1 = item tables "
      "not split; k splits them over k devices of train.num_devices)"
    )
  _check_length_buckets(config)
  _choice("gca.gate", config.gca.gate, gca_lib.GATES)
  _choice("gca.act", config.gca.act, gca_lib.ACTS)
  _choice("gca.kv", config.gca.kv, ("other", "mixed"))
  _choice("gca.layernorm", config.gca.layernorm, gca_lib.LAYERNORMS)
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
  for key in (
    "train.batch_size",
    "train.max_epochs",
    "train.eval_every",
    "eval.num_negatives",
    "eval.batch_size",
    "train.early_stop_patience",
    "train.checkpoint_every",
  ):
    value = get(config, key)
    if not isinstance(value, int) or value <= 0:
      raise ConfigError(f"config key {key}={value!r} must be a positive int")
  extra = config.eval.get("extra_negatives", ADDED_KEYS["eval.extra_negatives"])
  if (
    not isinstance(extra, (tuple, list))
    or len(set(extra)) != len(extra)
    or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in extra)
  ):
    raise ConfigError(
      f"config key eval.extra_negatives={extra!r}; expected a tuple of distinct "
      "positive ints (each N adds the protocol sampled<N>), e.g. '(999,)'"
    )
  declared = keys.protocols(config.eval)
  if not isinstance(config.train.select_metric, str):
    raise ConfigError(
      f"config key train.select_metric={config.train.select_metric!r} must be a "
      "metric key, e.g. 'valid/sampled/all/ndcg@10'"
    )
  for term in config.train.select_metric.split("+"):
    match = keys.SELECT_RE.match(term)
    if not match or match.group(1) not in declared:
      raise ConfigError(
        f"config key train.select_metric={config.train.select_metric!r}; expected "
        f"valid/<{'|'.join(declared)}>/<A|B|all>/<ndcg@1|5|10, hr@1|5|10, mrr, auc> "
        "(a protocol this config evaluates: eval.extra_negatives declares "
        "sampled<N>), or a '+'-joined sum of such keys"
      )
  for key in ("train.warmup_epochs", "train.plateau_patience", "gca.ffn"):
    if not isinstance(get(config, key), int) or get(config, key) < 0:
      raise ConfigError(f"config key {key}={get(config, key)!r} must be an int >= 0")
  if config.train.warmup_epochs >= config.train.max_epochs:
    raise ConfigError(
      f"config key train.warmup_epochs={config.train.warmup_epochs} leaves no "
      f"validated epoch within train.max_epochs={config.train.max_epochs} (no "
      "validation during warm-up, so no best epoch); lower it or train longer"
    )
  if config.data.format == "synthetic":
    try:  # the generator's own checks, before anything is written
      data_synthetic.from_config_dict(config.data.synthetic)
    except errors.DataError as e:
      key = str(e.key).split()[-1].strip("'")
      raise ConfigError(f"config key data.synthetic.{key}: {e.detail}") from None
  _check_sweep(config)
  check_int(config, "gca.heads", 1)
  check_fraction(config, "gca.dropout")
  check_int(config, "eval.candidate_seed", 0, _SEED_LIMIT - 1)
  for key in ("train.warmup_start_factor", "train.plateau_factor"):
    value = get(config, key)
    if not is_finite_number(value) or not 0 < value <= 1:
      raise ConfigError(f"config key {key}={value!r} must be a number in (0, 1]")
  titles = config.data.titles
  if not isinstance(titles, (tuple, list)) or not all(isinstance(t, str) and t for t in titles):
    raise ConfigError(
      f"config key data.titles={titles!r} must be a tuple of file paths (JSON "
      "files {item id: title}), e.g. '(\"titles.json\",)'"
    )
  models.validate(config)


def _check_sweep(config: ml_collections.ConfigDict) -> None:
  """Every sweep list, element by element, and the single values they replace when empty."""
  for key in ("seeds", "learning_rates", "weight_decays", "gate_inits"):
    if key not in config.sweep:
      raise ConfigError(f"config key sweep.{key} is missing")
  check_number_list(
    "sweep.seeds",
    config.sweep.seeds,
    NON_NEGATIVE,
    integer=True,
    high=_SEED_LIMIT,
    at_least=1,
    what="each seed trains one replica",
  )
  for key, bound, what in (
    ("learning_rate", POSITIVE, "train"),
    ("weight_decay", NON_NEGATIVE, "train"),
  ):
    check_number(config, f"{what}.{key}", bound)
    check_number_list(f"sweep.{key}s", config.sweep[f"{key}s"], bound)
  check_number(config, "gca.gate_init")
  check_number_list(
    "sweep.gate_inits", config.sweep.gate_inits, what="initial gate pre-activations"
  )
  model_lists = config.sweep.get("model") or {}
  bounds = models.replica_bounds(config.model.name)
  unknown = sorted(set(model_lists) - set(bounds))
  if unknown:
    raise ConfigError(
      f"config key sweep.model.{unknown[0]}: {config.model.name} has no replica "
      f"hyperparameter {unknown[0]!r}; valid: {list(bounds)}"
    )
  for k, bound in bounds.items():
    if k in config.model:
      check_number(config, f"model.{k}", bound)
    check_number_list(f"sweep.model.{k}", model_lists.get(k, ()), bound)


def check_fraction(config: ml_collections.ConfigDict, key: str) -> None:
  """A dropout rate: a number in [0, 1)."""
  value = get(config, key)
  if not is_finite_number(value) or not 0.0 <= value < 1.0:
    raise ConfigError(f"config key {key}={value!r} must be a number in [0, 1)")


def _check_interventions(config: ml_collections.ConfigDict) -> None:
  """gca.intervention and gca.orth_penalty / sweep.orth_penalties: known values, on GCA cells."""
  intervention = get_added(config, "gca.intervention")
  _choice("gca.intervention", intervention, gca_lib.INTERVENTIONS)
  penalty = get_added(config, "gca.orth_penalty")
  penalties = get_added(config, "sweep.orth_penalties")
  if not is_finite_number(penalty):
    raise ConfigError(
      f"config key gca.orth_penalty={penalty!r} must be a finite number (0 = no penalty)"
    )
  check_number_list("sweep.orth_penalties", penalties, what="e.g. '(0.0,0.1,-0.1)'")
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
      if get(config, key) == 1:
        raise ConfigError(
          f"config key gca.intervention='shuffled' takes Y from another row of "
          f"the batch, but {key}=1 has no other row; use a batch of >= 2"
        )


def _check_length_buckets(config: ml_collections.ConfigDict) -> None:
  """train.length_buckets: ascending ints in [1, model.max_len), on a model that masks padding."""
  buckets = get_added(config, "train.length_buckets")
  if not buckets:
    return
  max_len = config.model.get("max_len")
  if (
    not isinstance(buckets, (tuple, list))
    or not all(isinstance(b, int) and not isinstance(b, bool) for b in buckets)
    or list(buckets) != sorted(set(buckets))
    or buckets[0] < 1
    or (isinstance(max_len, int) and buckets[-1] >= max_len)
  ):
    raise ConfigError(
      f"config key train.length_buckets={buckets!r}; expected strictly ascending ints "
      f">= 1 and below model.max_len={max_len} (which is always the last bucket), "
      "e.g. '(25, 50, 100)', or () for none"
    )
  if config.model.get("mask_padding_keys") is not True:
    has_key = "mask_padding_keys" in config.model
    raise ConfigError(
      f"config key train.length_buckets={tuple(buckets)} needs model.mask_padding_keys=True: "
      "cutting "
      "padding off a batch must not change the model's outputs, and the baselines' attention lets "
      "padding act as keys unless masked"
      + (
        ""
        if has_key
        else f"; model.name={config.model.name!r} has no such key (length buckets "
        "are built for llm4cdsr)"
      )
    )


def require(config: ml_collections.ConfigDict, keys: tuple[str, ...], who: str) -> None:
  """Raises ConfigError naming the first of `keys` (dotted) missing in `config` (`who` reads it)."""
  for key in keys:
    try:
      parent_of(config, key)
    except ConfigError:
      raise ConfigError(
        f"config key {key} is missing; {who} reads it (start from that model's "
        f"config file, e.g. configs/{who.lower()}.py)"
      ) from None


def check_int(
  config: ml_collections.ConfigDict, key: str, low: int, high: int | None = None
) -> int:
  """The int at `key`, which must lie in [low, high]; ConfigError naming the key otherwise."""
  value = get(config, key)
  if (
    isinstance(value, bool)
    or not isinstance(value, int)
    or value < low
    or (high is not None and value > high)
  ):
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ConfigError(f"config key {key}={value!r} must be an int {bound}")
  return value


def check_divides(config: ml_collections.ConfigDict, key: str, width_key: str) -> None:
  """Attention heads must divide the width they split."""
  if get(config, width_key) % get(config, key):
    raise ConfigError(
      f"config key {key}={get(config, key)} must divide {width_key}="
      f"{get(config, width_key)} (each head gets an equal share of the width)"
    )


def check_positions(
  config: ml_collections.ConfigDict, allowed: tuple[int, ...] | range, where: str
) -> None:
  """gca.positions must be insertion points the model has (a range for 0..num_blocks)."""
  bad = [p for p in config.gca.positions if p not in allowed]
  if bad:
    have = f"{allowed.start}..{allowed.stop - 1}" if len(allowed) > 8 else str(list(allowed))
    raise ConfigError(
      f"config key gca.positions={tuple(config.gca.positions)}: {where} has GCA "
      f"positions {have}; {bad} is not one of them"
    )


def get_added(config: ml_collections.ConfigDict, dotted: str) -> Any:
  """The value of an `ADDED_KEYS` key, or its default in a config written before the key existed."""
  *sections, key = dotted.split(".")
  for section in sections:
    config = config[section]
  return config.get(key, ADDED_KEYS[dotted])


def get(config: ml_collections.ConfigDict, dotted: str, where: str = "") -> Any:
  """The value at dotted key `dotted` ("train.max_epochs"), which must exist.

  Raises:
    ConfigError: an unknown key, naming the valid keys where it goes wrong (see `parent_of`).
  """
  return parent_of(config, dotted, where)[dotted.rsplit(".", 1)[-1]]


def parent_of(
  config: ml_collections.ConfigDict, key: str, where: str = ""
) -> ml_collections.ConfigDict:
  """The ConfigDict holding dotted `key`'s last part, which must exist.

  Raises:
    ConfigError: an unknown key, naming the valid keys at the level where it goes wrong (and
      `where`, e.g. the flag or file that named it).
  """
  node: Any = config
  parts = key.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      parent = ".".join(parts[:depth]) or "<root>"
      valid = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      raise ConfigError(f"unknown config key {key!r}{where}; valid keys under {parent}: {valid}")
    if depth < len(parts) - 1:
      node = node[part]
  return node


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{"a": {"b": 1}} -> {"a.b": 1}; tuples become lists (JSON-friendly)."""
  out: dict[str, Any] = {}
  for k, v in tree.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, key + "."))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
  """Dotted keys whose values differ between two flattened configs (ignoring RESUMABLE_CHANGES)."""
  keys = sorted(set(old) | set(new))
  return [
    k
    for k in keys
    if k not in RESUMABLE_CHANGES and old.get(k, ADDED_KEYS.get(k)) != new.get(k, ADDED_KEYS.get(k))
  ]


def parse_value(key: str, text: str, default: Any, where: str = "") -> Any:
  """Command-line `text` as a value of the type of `default`, `key`'s current value.

  Parses the way ml_collections parses `--config.<key>=text`: bools true/false/t/f/1/0 (any case),
  ints and floats as Python numbers (ints also 0x..), tuples as Python literals ('(0,1)'; a single
  value becomes a 1-tuple; a list default gets a list), anything else as the text itself.

  Raises:
    ConfigError: the text does not parse as that type; names the key, the text, the type and the
      default (and `where`, e.g. the flag that gave it).
  """
  parser = _PARSERS.get(type(default))
  if parser is None:
    return text
  try:
    value = parser.parse(text)
  except (TypeError, ValueError):
    raise ConfigError(
      f"config key {key}={text!r}{where}: expected a value of type "
      f"{type(default).__name__} (default {default!r})"
    ) from None
  return list(value) if isinstance(default, list) else value


def _load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path[:arg]` as ml_collections' config_file flag does (to pre-check overrides)."""
  import importlib.util

  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    what = "is a folder, not a config file" if os.path.isdir(path) else "does not exist"
    raise ConfigError(f"--config={spec}: {path!r} {what}")
  root = os.getcwd()
  if root not in sys.path:
    sys.path.insert(0, root)  # configs import each other as `from configs import base`
  module_spec = importlib.util.spec_from_file_location("_orthoalign_config", path)
  if module_spec is None or not path.endswith(".py"):
    raise ConfigError(
      f"--config={spec}: {path!r} is not a Python file with get_config(), e.g. configs/tiny.py"
    )
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # the user's file: name what it raised
    raise ConfigError(f"--config={spec}: loading {path} raised {type(e).__name__}: {e}") from e
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"--config={spec}: {path} defines no get_config()")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except ConfigError:
    raise
  except TypeError as e:
    raise ConfigError(
      f"--config={spec}: get_config{'(' + repr(arg) + ')' if arg else '()'} failed: {e}"
    ) from e
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError(
      f"--config={spec}: get_config() returned a {type(config).__name__}; "
      "expected an ml_collections.ConfigDict"
    )
  check_sections(config, f"--config={spec}: ")
  return config


def check_overrides(argv: list[str]) -> None:
  """Checks `--config.a.b=value` flags before absl parses them.

  ml_collections answers an unknown key with a traceback and a bad value with a bare parse error;
  this raises ConfigError naming the key, the valid keys at that level, or the expected type.
  """
  spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
  overrides = [a[len("--config.") :] for a in argv if a.startswith("--config.")]
  if spec is None:
    return
  # Loaded even without overrides: a get_config that raises ConfigError (e.g. an unknown model in
  # `configs/base.py:<model>`) is then one line, not ml_collections' wrapped traceback.
  config = _load_config_file(spec)
  seen: set[str] = set()
  for item in overrides:
    key, has_value, raw = item.partition("=")
    if key in seen:
      # absl treats repeated --config.<tuple key> flags as a multi-flag and concatenates them.
      raise ConfigError(f"config key {key} is given twice; give each --config.<key> once")
    seen.add(key)
    node = get(config, key, f" (in --config.{item})")
    if has_value and not isinstance(node, ml_collections.ConfigDict):
      parse_value(key, raw, node)


def parse_flags_checked(argv: list[str]) -> list[str]:
  """absl `flags_parser` for entry points: check --config.* overrides, then parse as usual.

  A bad override, an unknown or missing flag, or a positional argument prints one line
  `error: ...` and exits with status 1 (absl would print a traceback or its usage text).
  """
  if errors.cli_main(check_overrides)(argv):
    sys.exit(1)
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:  # an unknown flag, a missing value or a required flag not given
    print(errors.message(e), file=sys.stderr, flush=True)
    sys.exit(1)
  if len(rest) > 1:
    print(
      f"error: unexpected arguments {rest[1:]}; every setting is a --flag=value",
      file=sys.stderr,
      flush=True,
    )
    sys.exit(1)
  return rest
