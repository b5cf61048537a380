r"""Full-catalogue evaluation with the item tables split over k devices: memory per device, time.

  python -m orthoalign.bench.catalogue --config=configs/bench_catalogue.py --item_shards=1,4 \
      --cpu_devices=4 --out=/tmp/orthoalign/bench_catalogue.json

Each k runs on the first k devices with `train.item_shards=k` (1 = one device, nothing split);
the measurement and the comparison of every k's metric sums with the first k's are in
orthoalign/bench/sharded_eval.py. On a CPU, --cpu_devices creates fake devices.
"""

from __future__ import annotations

from absl import app
from absl import flags
import jax

from orthoalign import errors
from orthoalign.bench import cli
from orthoalign.bench import sharded_eval
from orthoalign.config import flags as flag_checks

_ITEM_SHARDS = flags.DEFINE_list(
  "item_shards",
  ["1"],
  "Item shards k to measure: each runs on the first k devices with the item tables split over "
  "them (1 = one device, nothing split).",
)
_PASSES = flags.DEFINE_integer("passes", 3, "Timed validation passes per --item_shards value.")
_CPU_DEVICES = flags.DEFINE_integer(
  "cpu_devices",
  0,
  "Fake CPU devices to create (jax_num_cpu_devices) for --item_shards > 1 on a CPU; 0 = leave "
  "as is. No effect on other backends.",
)


@errors.cli_main
def main(argv: list[str]) -> None:
  """Entry point (absl): flags only."""
  del argv
  if _PASSES.value < 1:
    raise errors.ConfigError(f"--passes={_PASSES.value}: expected an int >= 1 (timed passes)")
  if _CPU_DEVICES.value:  # before the first device is touched
    jax.config.update("jax_num_cpu_devices", _CPU_DEVICES.value)
  config, header = cli.start("catalogue")
  rows, first = [], None
  for k in cli.ints("item_shards", _ITEM_SHARDS.value):
    if k > jax.device_count():
      raise errors.RunError(
        f"--item_shards={k} needs {k} devices but {jax.device_count()} "
        "are visible; on a CPU add --cpu_devices=<k>"
      )
    row, sums, _ = sharded_eval.measure(config, k, _PASSES.value)
    if first is None:
      first = sums
    else:
      row["sums_agree_with_first"] = not sharded_eval.sums_differ(first, sums)
    rows.append(row)
    print(sharded_eval.line(rows[-1]), flush=True)
    cli.write({**header, "catalogue": rows})  # after each k: a long run keeps what it measured


if __name__ == "__main__":
  jax.config.config_with_absl()
  app.run(main, flags_parser=flag_checks.parse_flags_checked)
