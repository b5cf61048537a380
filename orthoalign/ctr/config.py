"""Click prediction's config: every key with its default (`default_config`) and its checks.

task   "ctr" (orthoalign.main runs orthoalign/ctr/loop.py)
data   format: "ads_synthetic" (the embedded scenario, data.ads = datasets/ads_synthetic.AdsConfig)
       or "events" (a labelled log: data.path and data.reader_options, the events format's
       column mapping and filters, docs/data.md "Your own log"); on_bad_line
ctr    target, sources (domain names; () = none), split ("time": the last valid_days /
       test_days of the log; "user_last": every user's last valid_last / test_last
       impressions), target_len / source_len (window lengths), downsample (the rate non-clicks
       are kept at in training; the logits are corrected for it, metrics/ctr.py)
model  width, blocks, heads, dropout, mlp (ctr/model.py)
gca    positions, heads, gate, act, gate_init, layernorm, dropout (models/gca.py)
train  batch_size, learning_rate, weight_decay, max_epochs, early_stop_patience,
       checkpoint_every
eval   batch_size, select (the validation metric that picks each replica's epoch)
sweep  seeds: one replica per seed, trained together in one compiled program
"""

from __future__ import annotations

import dataclasses

import ml_collections

from orthoalign.config import dicts
from orthoalign.datasets import ads_synthetic
from orthoalign.datasets.readers import events as events_format
from orthoalign.errors import ConfigError
from orthoalign.errors import DataError
from orthoalign.models import gca as gca_lib

TASK = "ctr"
FORMATS = ("ads_synthetic", "events")
SPLITS = ("time", "user_last")
SELECT = ("auc", "gauc", "logloss")  # logloss: lower is better
SECTIONS = ("data", "ctr", "model", "gca", "train", "eval", "sweep")


def default_config() -> ml_collections.ConfigDict:
  """Every key of a click-prediction run, with its default (the module docstring says what)."""
  c = ml_collections.ConfigDict()
  c.task = TASK
  ads = {f.name: f.default for f in dataclasses.fields(ads_synthetic.AdsConfig)}
  c.data = ml_collections.ConfigDict(
    {
      "format": "ads_synthetic",
      "path": "",
      "on_bad_line": "error",
      "ads": ads,
      # The events format's options but `domains`: ctr.target and ctr.sources name them.
      "reader_options": {
        **{k: v for k, v in events_format.OPTIONS.items() if k != "domains"},
        "t_min": ml_collections.FieldReference(None, field_type=int),
        "t_max": ml_collections.FieldReference(None, field_type=int),
      },
    }
  )
  c.ctr = ml_collections.ConfigDict(
    {
      "target": ads_synthetic.TARGET,
      "sources": (ads_synthetic.DWELL, ads_synthetic.LIKES),
      "split": "time",
      "valid_days": 3.0,
      "test_days": 3.0,
      "valid_last": 2,
      "test_last": 2,
      "target_len": 10,
      "source_len": 30,
      "downsample": 1.0,
    }
  )
  c.model = ml_collections.ConfigDict(
    {"width": 32, "blocks": 1, "heads": 1, "dropout": 0.1, "mlp": (64,)}
  )
  c.gca = ml_collections.ConfigDict(
    {
      "positions": (0,),
      "heads": 1,
      "gate": "scalar",
      "act": "sigmoid",
      "gate_init": 0.0,
      "layernorm": "none",
      "dropout": 0.0,
    }
  )
  c.train = ml_collections.ConfigDict(
    {
      "batch_size": 256,
      "learning_rate": 1e-3,
      "weight_decay": 0.0,
      "max_epochs": 10,
      "early_stop_patience": 3,
      "checkpoint_every": 1,
    }
  )
  c.eval = ml_collections.ConfigDict({"batch_size": 2048, "select": "auc"})
  c.sweep = ml_collections.ConfigDict({"seeds": (0,)})
  return c


def is_ctr(config: ml_collections.ConfigDict) -> bool:
  """Whether a config is a click-prediction run (`task = "ctr"`)."""
  return "task" in config and config.task == TASK


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks every key before anything is read or traced.

  Raises:
    ConfigError: naming the first invalid key, its value and what is allowed.
  """
  for key in SECTIONS:
    if key not in config or not isinstance(config[key], ml_collections.ConfigDict):
      raise ConfigError(
        f"the config has no section {key!r}; start from configs/ads_ctr.py, which has every one"
      )
  known = default_config()
  for section in SECTIONS:
    unknown = sorted(set(config[section]) - set(known[section]))
    if unknown:
      raise ConfigError(
        f"config key {section}.{unknown[0]} is not a click-prediction key; valid: "
        f"{sorted(known[section])}"
      )
  d = config.data
  dicts.choice("data.format", d.format, FORMATS)
  dicts.choice("data.on_bad_line", d.on_bad_line, ("error", "skip"))
  options = d.reader_options.to_dict()
  if "domains" in options:
    raise ConfigError(
      "config key data.reader_options.domains: click prediction reads the domains ctr.target "
      "and ctr.sources name; remove it"
    )
  try:
    events_format.check(**{**events_format.OPTIONS, **options})
  except DataError as e:  # naming data.reader_options.<key>
    raise ConfigError(f"config key {e.key}: {e.detail}") from None
  if d.format == "events":
    if not d.path:
      raise ConfigError("config key data.path is empty; data.format='events' reads a log there")
    if not options.get("label"):
      raise ConfigError(
        "config key data.reader_options.label is empty; click prediction needs the 0/1 column"
      )
  else:
    try:
      ads_synthetic.AdsConfig(**d.ads.to_dict())
    except (TypeError, ValueError) as e:
      raise ConfigError(f"config key data.ads: {e}") from None
  c = config.ctr
  if not isinstance(c.target, str) or not c.target:
    raise ConfigError(f"config key ctr.target={c.target!r} must be a domain name")
  if not isinstance(c.sources, (tuple, list)) or not all(isinstance(s, str) for s in c.sources):
    raise ConfigError(f"config key ctr.sources={c.sources!r} must be a tuple of domain names")
  if d.format == "ads_synthetic":  # its domains are known before anything is generated
    for key, names in (("ctr.target", (c.target,)), ("ctr.sources", tuple(c.sources))):
      unknown = [n for n in names if n not in ads_synthetic.DOMAINS]
      if unknown:
        raise ConfigError(
          f"config key {key}={c[key.split('.')[1]]!r}: the ads scenario has no domain "
          f"{unknown[0]!r}; its domains are {list(ads_synthetic.DOMAINS)}"
        )
  dicts.choice("ctr.split", c.split, SPLITS)
  for key in ("valid_days", "test_days"):
    dicts.check_number(config, f"ctr.{key}", dicts.POSITIVE)
  for key in ("valid_last", "test_last", "target_len", "source_len"):
    dicts.check_int(config, f"ctr.{key}", 1)
  if not (dicts.is_finite_number(c.downsample) and 0 < c.downsample <= 1):
    raise ConfigError(f"config key ctr.downsample={c.downsample!r} must be a rate in (0, 1]")
  m = config.model
  for key in ("width", "blocks", "heads"):
    dicts.check_int(config, f"model.{key}", 1 if key != "blocks" else 0)
  dicts.check_divides(config, "model.heads", "model.width")
  dicts.check_fraction(config, "model.dropout")
  dicts.check_number_list("model.mlp", tuple(m.mlp), dicts.POSITIVE, integer=True)
  g = config.gca
  dicts.check_number_list("gca.positions", tuple(g.positions), dicts.NON_NEGATIVE, integer=True)
  if any(p > m.blocks for p in g.positions):
    raise ConfigError(
      f"config key gca.positions={tuple(g.positions)}: positions are 0..model.blocks={m.blocks} "
      "(0 = after the embeddings, i = after block i)"
    )
  dicts.check_int(config, "gca.heads", 1)
  dicts.check_divides(config, "gca.heads", "model.width")
  dicts.choice("gca.gate", g.gate, gca_lib.GATES)
  dicts.choice("gca.act", g.act, ("sigmoid", "tanh", "none"))
  dicts.choice("gca.layernorm", g.layernorm, ("none", "pre", "post"))
  dicts.check_number(config, "gca.gate_init")
  dicts.check_fraction(config, "gca.dropout")
  for key in ("batch_size", "max_epochs", "early_stop_patience", "checkpoint_every"):
    dicts.check_int(config, f"train.{key}", 1)
  dicts.check_number(config, "train.learning_rate", dicts.POSITIVE)
  dicts.check_number(config, "train.weight_decay", dicts.NON_NEGATIVE)
  dicts.check_int(config, "eval.batch_size", 1)
  dicts.choice("eval.select", config.eval.select, SELECT)
  dicts.check_number_list(
    "sweep.seeds",
    tuple(config.sweep.seeds),
    dicts.NON_NEGATIVE,
    integer=True,
    high=dicts.SEED_LIMIT,
    at_least=1,
  )
