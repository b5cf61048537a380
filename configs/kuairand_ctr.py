r"""Click prediction on KuaiRand-Pure (Kuaishou's short-video logs with impressions, clicks and
several feedback types across 15 scenarios, the app's tabs; Gao et al., CIKM 2022).

Download (untested: the project's machines had no network):
  wget https://zenodo.org/records/10439422/files/KuaiRand-Pure.tar.gz
  tar -xzf KuaiRand-Pure.tar.gz -C data/
Then:
  python -m orthoalign.main --config=configs/kuairand_ctr.py --workdir=runs/kuairand_ctr \
      [--config.data.path=data/KuaiRand-Pure/data] [--config.ctr.target=1] \
      [--config.ctr.sources='("0","2")']

The standard logs (log_standard_*_pure.csv: the recommender's impressions; the randomly exposed
log and the feature files are left out by `pattern`) are read as an events table: user_id,
video_id, time_ms (milliseconds), the tab as the domain, is_click as the label and play_time_ms
(in seconds) as each event's value. An impression of the target tab is a labelled event; a
source tab's clicked videos, with their play time, are its stream. KuaiRand does not publish what
each tab is; the target and sources here are an example, to be chosen from the data (a run
prints its target's impressions and click rate per split). Split: the last 7 days test, the
7 before validation. A run on the real logs is untested, beyond files written in the same
format (tests/test_ctr.py); at their size it is a GPU job.
"""

from configs import ads_ctr


def get_config():
  config = ads_ctr.get_config()
  config.data.format = "events"
  config.data.path = "data/KuaiRand-Pure/data"
  config.data.reader_options.update(
    user="user_id",
    item="video_id",
    time="time_ms",
    time_unit="ms",
    domain="tab",
    label="is_click",
    value="play_time_ms",
    value_scale=0.001,  # milliseconds -> seconds, so the log2 buckets span 1 s .. 4.5 hours
    pattern="log_standard_*_pure.csv",
  )
  config.ctr.update(target="1", sources=("0",), valid_days=7.0, test_days=7.0)
  config.ctr.update(target_len=20, source_len=50)
  config.model.width = 64
  config.train.update(batch_size=1024, max_epochs=10, early_stop_patience=2)
  return config
