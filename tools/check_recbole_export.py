r"""Loads atomic files written by `prepare --export=recbole` with RecBole's own loader.

  python tools/check_recbole_export.py --folder=recbole/mylog

For each `<domain>/<domain>.inter` under the folder, RecBole (`pip install recbole`; it needs
torch; RecBole 1.2.1 also needs pandas < 3 for `token_seq` fields such as titles) builds its
`Dataset` from the files as its documentation describes (`data_path` = the folder, `dataset` =
the domain, the default USER_ID_FIELD / ITEM_ID_FIELD / TIME_FIELD names, no filtering) and the
tool prints RecBole's users, items and interactions beside the lines of
the file. Exits 1 when RecBole refuses a file or counts other interactions than the file holds.
"""

import argparse
import glob
import logging
import os
import sys


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--folder", required=True, help="what prepare --export=recbole wrote")
  args = parser.parse_args()
  import numpy as np  # pylint: disable=g-import-not-at-top

  # RecBole 1.2.1 aliases NumPy 1 names that NumPy 2 removed; give it them back (no other change).
  for old, new in (("float_", np.float64), ("complex_", np.complex128), ("unicode_", np.str_)):
    if old not in np.__dict__:
      setattr(np, old, new)
  from recbole.config import Config  # pylint: disable=g-import-not-at-top
  from recbole.data import create_dataset  # pylint: disable=g-import-not-at-top

  logging.disable(logging.CRITICAL)  # RecBole logs its whole config
  folder = os.path.abspath(args.folder)
  inters = sorted(glob.glob(os.path.join(folder, "*", "*.inter")))
  if not inters:
    print(f"no <domain>/<domain>.inter under {folder}")
    return 1
  failed = False
  for inter in inters:
    domain = os.path.basename(os.path.dirname(inter))
    with open(inter, encoding="utf-8") as f:
      rows = sum(1 for _ in f) - 1
    config = Config(
      model="SASRec",
      dataset=domain,
      config_dict={
        "data_path": folder,
        "load_col": None,  # every field of the files
        "train_neg_sample_args": None,  # SASRec trains with CE: RecBole wants no negatives
        "show_progress": False,
        "save_dataset": False,
        "checkpoint_dir": os.path.join(folder, ".recbole_check"),
      },
    )
    ds = create_dataset(config)
    item_file = os.path.join(os.path.dirname(inter), f"{domain}.item")
    items = "read" if os.path.exists(item_file) else "absent"
    fields = sorted(ds.field2type)
    print(
      f"{domain}: RecBole read {ds.inter_num} interactions of {ds.user_num - 1} users and "
      f"{ds.item_num - 1} items (file: {rows} rows; .item {items}); "
      f"fields {fields}"
    )
    failed |= ds.inter_num != rows
  print("all equal" if not failed else "DIFFERENT")
  return int(failed)


if __name__ == "__main__":
  sys.exit(main())
