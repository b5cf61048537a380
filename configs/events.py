r"""Your own log: a two-domain baseline on two domains of an events table.

  python -m orthoalign.main --config=configs/events.py --workdir=runs/events

trains LLM4CDSR + GCA_early on the example log examples/events_log.csv.gz (books and movies of
three apps; tools/make_events_example.py): 40 s on a 2-core CPU. For your own log (CSV/TSV, JSON
Lines or Parquet, one file or a folder of parts, one row per event; docs/data.md, "Your own log"),
name its file and columns and the two domains to train on:

  python -m orthoalign.main --config=configs/events.py --workdir=runs/mylog \
      --config.data.path=logs/events.parquet \
      --config.data.reader_options.user=uid --config.data.reader_options.item=item \
      --config.data.reader_options.time=event_time --config.data.reader_options.time_unit=iso \
      --config.data.reader_options.domain=surface --config.data.reader_options.label='' \
      --config.data.reader_options.domains='("search","feed")'

Another baseline: --config=configs/events.py:abxi (or cdsrnp, sasrec). The filters below are the
usual preparation of a log for sequential recommendation (a 5-core, exact duplicates dropped,
each user's last 200 events); set any to 0 to turn it off. The model keeps its faithful defaults
(configs/base.py) but LLM4CDSR, which runs at the main job's size; the schedule is the main job's.
"""

import ml_collections

from configs import base
from orthoalign.datasets.readers import events as events_format


def get_config(model: str = "llm4cdsr"):
  config = base.get_config(model)
  config.data.format = "events"
  config.data.path = "examples/events_log.csv.gz"  # the file or folder of your log
  # Every reader option is listed (datasets/readers/events.py OPTIONS), so that any one can be set
  # on the command line: --config.data.reader_options.t_min=1735689600
  config.data.reader_options = ml_collections.ConfigDict(
    {
      **events_format.OPTIONS,
      "user": "user_id",  # column names
      "item": "item_id",
      "time": "ts",
      "domain": "app",
      "label": "clicked",  # a 0/1 column ("" = none): only label-1 events become interactions
      "time_unit": "s",  # s, ms, us, ns or iso (ISO 8601 strings)
      "domains": ("books", "movies"),  # the two domains (A, B); () = the log's two, by name
      "duplicates": "drop",
      "user_core": 5,
      "item_core": 5,
      "max_len": 200,
      # None = no bound; a typed reference so that a flag can set an integer
      "t_min": ml_collections.FieldReference(None, field_type=int),
      "t_max": ml_collections.FieldReference(None, field_type=int),
    }
  )
  config.train.update(batch_size=128, max_epochs=20, early_stop_patience=5, checkpoint_every=10)
  if model == "llm4cdsr":  # the main job's size (configs/llm4cdsr.py): upstream's 128 and 200
    config.model.update(width=64, max_len=30)  # are slow on a CPU
  config.gca.positions = (0,)  # GCA_early; '()' for the plain baseline
  return config
