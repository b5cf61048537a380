"""The entry points' flag checks: `--config=<file>` and `--config.<key>=<value>` overrides.

ml_collections answers an unknown key with a traceback and a bad value with a bare parse error,
and absl answers an unknown flag with its usage text; `parse_flags_checked` (absl's
`flags_parser` for every entry point) turns each into one line naming the key or flag.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import sys

from absl import flags
import ml_collections

from orthoalign import errors
from orthoalign.config import dicts
from orthoalign.config import upgrade

ConfigError = errors.ConfigError


def load_file(spec: str) -> ml_collections.ConfigDict:
  """Loads `path[:arg]` as ml_collections' config_file flag does (to pre-check overrides)."""
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
  except errors.UserError:
    raise
  except Exception as e:  # pylint: disable=broad-except  # the user's file: name what it raised
    raise ConfigError(f"--config={spec}: loading {path} raised {type(e).__name__}: {e}") from e
  if not callable(getattr(module, "get_config", None)):
    raise ConfigError(f"--config={spec}: {path} defines no get_config()")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except errors.UserError:
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
  dicts.check_sections(config, f"--config={spec}: ")
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
  config = load_file(spec)
  seen: set[str] = set()
  for item in overrides:
    key, has_value, raw = item.partition("=")
    if key in seen:
      # absl treats repeated --config.<tuple key> flags as a multi-flag and concatenates them.
      raise ConfigError(f"config key {key} is given twice; give each --config.<key> once")
    seen.add(key)
    if upgrade.renamed_key(key) != key and not _has(config, key):
      raise ConfigError(f"config key {key} is now {upgrade.renamed_key(key)} (same meaning)")
    if key.startswith("data.reader_options.") and not _has(config, key):
      _unlisted_reader_option(config, key, raw)
    node = dicts.get(config, key, f" (in --config.{item})")
    if has_value and not isinstance(node, ml_collections.ConfigDict):
      dicts.parse_value(key, raw, node)


def _unlisted_reader_option(config: ml_collections.ConfigDict, key: str, raw: str) -> None:
  """Raises the ConfigError for `--config.data.reader_options.<option>` that the config lacks:
  an option the format does not take (listing those it takes), or how to set one it does.
  """
  from orthoalign.datasets import formats  # pylint: disable=g-import-not-at-top

  option = key.split(".", 2)[2]
  fmt = formats.READERS.get(str(config.data.format)) if "data" in config else None
  if fmt is not None and option not in fmt.options:
    raise ConfigError(
      f"config key {key}: format {fmt.name!r} has no reader option {option!r}; its options: "
      f"{sorted(fmt.options) or 'none'}"
    )
  try:
    value = repr(ast.literal_eval(raw))
  except (ValueError, SyntaxError):
    value = repr(raw)
  raise ConfigError(
    f"--config.{key}: this config does not list the reader option {option!r}, so it cannot be set "
    f"alone; set the options as one dict, which replaces the config's: "
    f"--config.data.reader_options=\"{{'{option}': {value}}}\" (the options: docs/data.md)"
  )


def _has(config: ml_collections.ConfigDict, key: str) -> bool:
  try:
    dicts.get(config, key)
  except ConfigError:
    return False
  return True


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
