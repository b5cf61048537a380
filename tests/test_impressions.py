"""Click prediction's data: the synthetic ads scenario and impressions with leak-free histories."""

import dataclasses

import numpy as np
import pytest

from orthoalign.datasets import ads_synthetic
from orthoalign.datasets import events as events_lib
from orthoalign.datasets import impressions
from orthoalign.datasets.badlines import BadLines
from orthoalign.errors import DataError

SMALL = ads_synthetic.AdsConfig(num_users=300, num_ads=40, num_posts=60, num_liked=50, days=10)


@pytest.fixture(scope="module")
def small():
  return ads_synthetic.generate_with_truth(SMALL)


def test_the_scenario_is_sparse_ads_and_dense_sources(small):
  events, truth = small
  assert events.domain_names == ("ads", "posts", "likes")
  ads = events.domain == 0
  assert 0.01 < events.label[ads].mean() < 0.03  # ctr=0.02
  assert np.all(events.label[~ads] == 1)
  per_user = {d: np.bincount(events.user[events.domain == c]).mean() for c, d in enumerate("apl")}
  assert per_user["p"] > 2 * per_user["a"]  # dense sources, sparse target
  dwell = events.value[events.domain == 1]
  assert np.all(dwell > 0) and np.all(np.isnan(events.value[events.domain != 1]))
  assert np.all(np.isnan(truth[~ads])) and np.all((truth[ads] > 0) & (truth[ads] < 1))
  assert np.all(np.diff(events.ts_ms) >= 0)  # a log in time order
  again = ads_synthetic.generate(SMALL)
  for field in ("user", "item", "domain", "ts_ms", "label"):
    np.testing.assert_array_equal(getattr(again, field), getattr(events, field))


def test_cross_strength_plants_the_users_taste_in_the_clicks():
  """lambda = 0: a click's probability is the ad's alone; lambda > 0: it varies between users."""
  for strength, varies in ((0.0, False), (2.0, True)):
    cfg = dataclasses.replace(SMALL, cross_strength=strength)
    events, truth = ads_synthetic.generate_with_truth(cfg)
    ads = np.flatnonzero(events.domain == 0)
    spread = max(np.ptp(truth[ads][events.item[ads] == a]) for a in np.unique(events.item[ads]))
    assert (spread > 0.01) == varies, (strength, spread)


def test_histories_hold_exactly_the_events_before_each_impression(small):
  events, _ = small
  data = impressions.click_data(events, "ads", ("posts", "likes"))
  assert data.num_impressions == int((events.domain == 0).sum())
  for name in ("ads", "posts", "likes"):
    code = events.domain_names.index(name)
    stream = data.streams[name]
    for i in np.random.default_rng(0).choice(data.num_impressions, 200, replace=False):
      user = data.user_keys[data.user[i]]
      mine = (np.asarray(events.user_keys)[events.user] == user) & (events.domain == code)
      mine &= events.label == 1  # the target's stream is its clicks
      before = np.sort(events.ts_ms[mine & (events.ts_ms < data.ts_ms[i])])
      lo, hi = stream.offsets[data.user[i]], data.hist_end[name][i]
      np.testing.assert_array_equal(stream.ts_ms[lo:hi], before)
  # No event at or after an impression's time, ties included (times are whole seconds).
  for name, stream in data.streams.items():
    last = data.hist_end[name] - 1
    has = data.history_lengths(name) > 0
    assert np.all(stream.ts_ms[last[has]] < data.ts_ms[has])
    nxt = np.minimum(data.hist_end[name], stream.ts_ms.size - 1)
    same_user = data.hist_end[name] < stream.offsets[data.user + 1]
    assert np.all(stream.ts_ms[nxt][same_user] >= data.ts_ms[same_user])


def test_a_tie_at_the_impression_time_stays_out_of_the_history():
  names = ("ads", "posts")
  events = events_lib.Events(
    user=np.array([0, 0, 0, 0]),
    item=np.array([0, 2, 3, 1]),
    domain=np.array([1, 1, 0, 0], np.int8),
    ts_ms=np.array([1000, 2000, 2000, 3000]),
    label=np.array([1, 1, 1, 0], np.int8),
    value=np.array([5, np.nan, np.nan, np.nan], np.float32),
    user_keys=["u"],
    item_keys=["p1", "a1", "p2", "a2"],
    item_domain=np.array([1, 0, 1, 0], np.int8),
    domain_names=names,
  )
  data = impressions.click_data(events, "ads", ("posts",), impressions.UserLastSplit(0, 0))
  assert data.history_lengths("posts").tolist() == [1, 2]  # p2 at 2000 is not before a2 at 2000
  assert data.history_lengths("ads").tolist() == [0, 1]  # the click a2 at 2000, before 3000
  items, buckets, times = data.window("posts", np.array([0, 1]), 3)
  assert items.tolist() == [[0, 0, 1], [0, 1, 2]]
  assert buckets.tolist() == [[0, 0, 3], [0, 3, 0]]  # 1 + floor(log2(6)) = 3; no value = 0
  assert times.tolist() == [[0, 0, 1000], [0, 1000, 2000]]


def test_splits_by_time(small):
  events, _ = small
  data = impressions.click_data(events, "ads", ("posts",), impressions.TimeSplit(2, 1))
  end = data.ts_ms.max() + 1
  test_from = end - 86_400_000
  assert np.all((data.split == impressions.TEST) == (data.ts_ms >= test_from))
  assert np.all(
    (data.split == impressions.VALID)
    == ((data.ts_ms >= test_from - 2 * 86_400_000) & (data.ts_ms < test_from))
  )
  data = impressions.click_data(events, "ads", ("posts",), impressions.UserLastSplit(2, 1))
  for u in range(20):
    codes = data.split[data.user == u].tolist()
    n = len(codes)
    assert codes == [0] * max(n - 3, 0) + [1] * min(max(n - 1, 0), 2) + [2] * min(n, 1)


def test_bad_click_data_is_one_error(small):
  events, _ = small
  cases = [
    (dict(target="games", sources=()), "target domain 'games' is not in the log"),
    (dict(target="ads", sources=("news",)), "source domain 'news' is not in the log"),
    (dict(target="ads", sources=("ads",)), "expected distinct sources other than the target"),
  ]
  for kwargs, message in cases:
    with pytest.raises(DataError, match=message):
      impressions.click_data(events, **kwargs)
  no_clicks = dataclasses.replace(events, label=np.where(events.domain == 0, 0, 1).astype(np.int8))
  with pytest.raises(DataError, match=r"target domain 'ads' has no click \(label 1\)"):
    impressions.click_data(no_clicks, "ads", ("posts",))
  all_clicks = dataclasses.replace(events, label=np.ones(len(events), np.int8))
  with pytest.raises(DataError, match=r"has no non-click \(label 0\)"):
    impressions.click_data(all_clicks, "ads", ("posts",))
  late = events.ts_ms + np.where(events.domain == 2, 10**12, 0)  # likes after every impression
  with pytest.raises(DataError, match="source domain 'likes' has no event before any impression"):
    impressions.click_data(dataclasses.replace(events, ts_ms=late), "ads", ("likes",))
  with pytest.raises(DataError, match="click prediction needs a label column"):
    impressions.click_data(dataclasses.replace(events, label=None), "ads", ())
  with pytest.raises(DataError, match="leaves no training impression"):
    impressions.click_data(events, "ads", (), impressions.TimeSplit(valid_days=20, test_days=5))


def test_the_scenario_through_an_events_table_gives_the_same_data(small, tmp_path):
  events, _ = small
  path = str(tmp_path / "ads.csv")
  ads_synthetic.write_csv(events, path)
  mapping = events_lib.ColumnMap(
    user="user_id", item="item_id", time="ts", domain="app", label="clicked", value="dwell"
  )
  read = events_lib.read_events([path], mapping, BadLines(), domains=("ads", "posts", "likes"))
  read, _ = events_lib.apply_filters(read, events_lib.Filters(), positives_only=False)
  a = impressions.click_data(events, "ads", ("posts", "likes"))
  b = impressions.click_data(read, "ads", ("posts", "likes"))
  assert a.summary() == b.summary()
  for field in ("user", "item", "ts_ms", "label", "split"):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  for name in a.streams:
    np.testing.assert_array_equal(a.hist_end[name], b.hist_end[name])
    np.testing.assert_array_equal(a.streams[name].items, b.streams[name].items)
    np.testing.assert_array_equal(a.streams[name].value_bucket, b.streams[name].value_bucket)
