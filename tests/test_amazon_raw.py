"""Raw Amazon readers: every format, plain and gzip, bad lines, truncation."""

import gzip
import json
import os
import pathlib

import pytest

from orthoalign.datasets.badlines import BadLines
from orthoalign.datasets.readers import amazon
from orthoalign.errors import DataError

RECORDS = [
  ("U1", "A01", 5.0, 1400000000),
  ("U2", "A02", 3.0, 1400000100),
  ("U1", "B00X", 1.0, 1400000200),
]


def _line(fmt: str, user: str, item: str, rating: float, ts: int) -> str:
  """One raw line in `fmt` (review formats carry extra keys like the dumps)."""
  if fmt == "csv":
    return f"{user},{item},{rating},{ts}"
  if fmt == "reviews":
    return json.dumps(
      {
        "reviewerID": user,
        "asin": item,
        "reviewerName": "n",
        "overall": rating,
        "summary": "s",
        "unixReviewTime": ts,
        "reviewTime": "01 1, 2014",
      }
    )
  if fmt == "reviews_py":  # 2014 review dumps loaded with literal_eval.
    return repr(
      {"reviewerID": user, "asin": item, "overall": rating, "unixReviewTime": ts, "helpful": [0, 0]}
    )
  if fmt == "reviews2023":
    # Milliseconds, not a whole second: the reader floors to seconds.
    return json.dumps(
      {
        "rating": rating,
        "title": "t",
        "asin": item + "v",
        "parent_asin": item,
        "user_id": user,
        "timestamp": ts * 1000 + 999,
        "verified_purchase": True,
      }
    )
  raise ValueError(fmt)


def write(
  path: pathlib.Path, lines: list[str], gz: bool = False, raw: bytes | None = None
) -> pathlib.Path:
  data = raw if raw is not None else ("\n".join(lines) + "\n").encode()
  if gz:
    data = gzip.compress(data)
  path.write_bytes(data)
  return path


def write_records(path, fmt, records=RECORDS, gz=False):
  return write(path, [_line(fmt, *r) for r in records], gz=gz)


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
  "fmt,detected",
  [
    ("csv", "csv"),
    ("reviews", "reviews"),
    ("reviews_py", "reviews"),
    ("reviews2023", "reviews2023"),
  ],
)
def test_every_interaction_format_reads_the_same_records(tmp_path, fmt, detected, gz):
  path = write_records(tmp_path / ("f.gz" if gz else "f"), fmt, gz=gz)
  assert amazon.detect_interaction_format(path) == detected
  got = list(amazon.read_interactions(path, BadLines()))
  assert got == [amazon.Interaction(*r) for r in RECORDS]
  assert all(isinstance(r.timestamp, int) for r in got)
  # An explicit format gives the same.
  assert list(amazon.read_interactions(path, BadLines(), fmt=detected)) == got


def test_2023_milliseconds_become_seconds(tmp_path):
  path = write(
    tmp_path / "r.jsonl",
    [json.dumps({"user_id": "u", "parent_asin": "p", "rating": 4.0, "timestamp": 1588615855070})],
  )
  (record,) = amazon.read_interactions(path, BadLines())
  assert record.timestamp == 1588615855
  assert record.item == "p"  # parent_asin, not asin.


def test_gzip_is_detected_by_content_not_name(tmp_path):
  path = write_records(tmp_path / "ratings.csv", "csv", gz=True)
  assert len(list(amazon.read_interactions(path, BadLines()))) == 3


def test_blank_lines_crlf_and_bom_are_tolerated(tmp_path):
  raw = ("\ufeffU1,A1,5.0,100\r\n\r\n  \nU2,A2,4,200\r\n").encode()
  path = write(tmp_path / "r.csv", [], raw=raw)
  got = list(amazon.read_interactions(path, BadLines()))
  assert got == [("U1", "A1", 5.0, 100), ("U2", "A2", 4.0, 200)]


def test_reading_is_streamed(tmp_path):
  # The first record comes out before the (truncated) tail is read: nothing
  # is loaded whole.
  lines = [_line("reviews", f"U{n}", f"I{n}", 5.0, n) for n in range(20000)]
  data = gzip.compress(("\n".join(lines) + "\n").encode())
  path = write(tmp_path / "r.json.gz", [], raw=data[: len(data) // 2])
  records = amazon.read_interactions(path, BadLines())
  assert next(records).user == "U0"
  with pytest.raises(DataError, match="truncated"):
    list(records)


@pytest.mark.parametrize(
  "fmt,line,expected",
  [
    ("csv", "U9,A9,5.0", "expected 4"),
    ("csv", "U9,A9,5.0,100,extra", "expected 4"),
    ("csv", "U9,A9,five,100", "rating"),
    ("csv", "U9,A9,5.0,yesterday", "timestamp"),
    ("csv", "U9,A9,5.0,100.5", "timestamp"),
    ("csv", "U9,,5.0,100", "item"),
    ("csv", "U9,A9,nan,100", "rating"),
    ("reviews", '{"reviewerID": "U9", "asin": "A9", "overall": 5.0}', "unixReviewTime"),
    (
      "reviews",
      ('{"reviewerID": "U9", "asin": "A9", "overall": "x", "unixReviewTime": 1}'),
      "overall",
    ),
    (
      "reviews",
      ('{"reviewerID": "U9", "asin": "A9", "overall": 5.0, "unixReviewTime": true}'),
      "unixReviewTime",
    ),
    ("reviews", '{"reviewerID": "U9", "asin": ', "JSON"),
    ("reviews", "[1, 2]", "expected one"),
    ("reviews2023", '{"user_id": "U9", "rating": 5.0, "timestamp": 1}', "parent_asin"),
    (
      "reviews2023",
      ('{"user_id": "U9", "parent_asin": "P", "rating": 5.0, "timestamp": "soon"}'),
      "timestamp",
    ),
  ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_bad_line_names_file_line_and_expectation(tmp_path, fmt, line, expected, gz):
  lines = [_line(fmt, *RECORDS[0]), line, _line(fmt, *RECORDS[1])]
  path = write(tmp_path / "r", lines, gz=gz)
  with pytest.raises(DataError, match=expected) as info:
    list(amazon.read_interactions(path, BadLines("error"), fmt=fmt))
  assert info.value.path == str(path) and info.value.line == 2
  assert str(info.value).startswith(f"{path}:2: ")

  bad = BadLines("skip")
  got = list(amazon.read_interactions(path, bad, fmt=fmt))
  assert [r.user for r in got] == ["U1", "U2"]
  assert bad.total == 1 and bad.counts[str(path)] == 1
  assert bad.report()["examples"][0].startswith(f"{path}:2: ")


@pytest.mark.parametrize("gz", [False, True])
def test_wrong_encoding_is_blamed_on_its_own_line(tmp_path, gz):
  # A small file: one decode block holds every line, yet line 3 is blamed.
  raw = b"U1,A1,5.0,1\nU2,A2,5.0,2\nU\xe9\xff,A3,5.0,3\nU4,A4,5.0,4\n"
  path = write(tmp_path / "r.csv", [], raw=raw, gz=gz)
  with pytest.raises(DataError, match="UTF-8") as info:
    list(amazon.read_interactions(path, BadLines(), fmt="csv"))
  assert info.value.line == 3 and info.value.path == str(path)
  bad = BadLines("skip")
  assert len(list(amazon.read_interactions(path, bad, fmt="csv"))) == 3
  assert bad.total == 1


def test_truncated_gzip_names_file_and_last_good_line(tmp_path):
  lines = [_line("csv", f"U{n}", "A1", 5.0, n) for n in range(5000)]
  data = gzip.compress(("\n".join(lines) + "\n").encode())
  path = write(tmp_path / "r.csv.gz", [], raw=data[:-20])
  bad = BadLines("skip")  # Truncation is fatal under either policy.
  got = []
  with pytest.raises(DataError) as info:
    for record in amazon.read_interactions(path, bad):
      got.append(record)  # noqa: PERF402  # Keeps what came before the error.
  message = str(info.value)
  assert info.value.path == str(path)
  assert "truncated or corrupt" in message
  assert f"after line {len(got)} (the last good line)" in message
  assert len(got) > 4000


def test_corrupt_gzip_is_a_data_error(tmp_path):
  data = bytearray(gzip.compress(b"U1,A1,5.0,1\n" * 1000))
  data[30:40] = b"\x00" * 10
  path = write(tmp_path / "r.csv.gz", [], raw=bytes(data))
  with pytest.raises(DataError, match="truncated or corrupt") as info:
    list(amazon.read_interactions(path, BadLines(), fmt="csv"))
  assert info.value.path == str(path)


def test_missing_empty_and_undetectable_files(tmp_path):
  with pytest.raises(DataError, match="cannot open") as info:
    list(amazon.read_interactions(tmp_path / "nope.csv", BadLines()))
  assert info.value.path == str(tmp_path / "nope.csv")
  empty = write(tmp_path / "empty.csv", [], raw=b"\n\n")
  with pytest.raises(DataError, match="empty"):
    list(amazon.read_interactions(empty, BadLines()))
  odd = write(tmp_path / "odd.txt", ["hello world"])
  with pytest.raises(DataError, match="cannot detect") as info:
    list(amazon.read_interactions(odd, BadLines()))
  assert info.value.line == 1
  other_json = write(tmp_path / "o.json", ['{"a": 1}'])
  with pytest.raises(DataError, match="cannot detect"):
    amazon.detect_interaction_format(other_json)
  with pytest.raises(DataError, match="unknown format"):
    list(amazon.read_interactions(odd, BadLines(), fmt="parquet"))


# --- Metadata ---------------------------------------------------------------

META = [("A01", "Green tea"), ("A02", None), ("A03", "Chef's knife, 8\"")]


def _meta_line(fmt: str, item: str, title: str | None) -> str:
  record = {"categories": [["Grocery"]], "price": 3.5, "related": {"also_bought": ["A09", "A08"]}}
  if title is not None:
    record["title"] = title
  if fmt == "meta2014":
    return repr({"asin": item, **record})
  if fmt == "meta2018":
    return json.dumps({"asin": item, **record})
  return json.dumps({"main_category": "x", "parent_asin": item, **record})


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("fmt", list(amazon.META_FORMATS))
def test_titles_in_every_metadata_format(tmp_path, fmt, gz):
  path = write(tmp_path / "meta", [_meta_line(fmt, *m) for m in META], gz=gz)
  assert amazon.detect_meta_format(path) == fmt
  assert amazon.read_titles(path, BadLines()) == {"A01": "Green tea", "A03": "Chef's knife, 8\""}
  # Only wanted ids are kept; the first record of a repeated id wins.
  lines = [_meta_line(fmt, *m) for m in META] + [_meta_line(fmt, "A01", "Other")]
  path = write(tmp_path / "meta2", lines, gz=gz)
  assert amazon.read_titles(path, BadLines(), wanted={"A01", "A02"}) == {"A01": "Green tea"}
  assert amazon.read_titles(path, BadLines(), wanted=set(), fmt=fmt) == {}


def test_literal_eval_never_executes_code(tmp_path):
  marker = tmp_path / "PWNED"
  evil = f"__import__('os').system('touch {marker}')"
  lines = [
    _meta_line("meta2014", "A01", "Tea"),
    evil,
    "{'asin': 'A02', 'title': __import__('os').getcwd()}",
    _meta_line("meta2014", "A03", "Knife"),
  ]
  path = write(tmp_path / "meta.json", lines)
  with pytest.raises(DataError, match="Python-literal") as info:
    amazon.read_titles(path, BadLines())
  assert info.value.line == 2
  bad = BadLines("skip")
  assert amazon.read_titles(path, bad) == {"A01": "Tea", "A03": "Knife"}
  assert bad.total == 2
  # Same in a review file loaded in the 2014 Python-literal style.
  reviews = write(tmp_path / "reviews.json", [_line("reviews_py", *RECORDS[0]), evil])
  with pytest.raises(DataError, match="Python-literal") as info:
    list(amazon.read_interactions(reviews, BadLines()))
  assert info.value.line == 2
  assert not marker.exists() and not os.path.exists("PWNED")


def test_metadata_bad_lines(tmp_path):
  lines = [
    _meta_line("meta2018", "A01", "Tea"),
    '{"title": "no id"}',
    '{"asin": 7, "title": "numeric id"}',
    '{"asin": "A02", ',
  ]
  path = write(tmp_path / "meta.json", lines)
  with pytest.raises(DataError, match="missing key 'asin'") as info:
    amazon.read_titles(path, BadLines())
  assert info.value.line == 2
  bad = BadLines("skip")
  assert amazon.read_titles(path, bad) == {"A01": "Tea"}
  assert bad.total == 3
  with pytest.raises(DataError, match="cannot detect"):
    amazon.detect_meta_format(write(tmp_path / "x.json", ['{"id": 1}']))


def test_a_malformed_first_line_does_not_hide_the_format(tmp_path):
  lines = [
    '{"reviewerID": "U0", "asin": ',
    _line("reviews", *RECORDS[0]),
    _line("reviews", *RECORDS[1]),
  ]
  path = write(tmp_path / "r.json", lines)
  assert amazon.detect_interaction_format(path) == "reviews"
  with pytest.raises(DataError, match="not a JSON object") as info:
    list(amazon.read_interactions(path, BadLines()))
  assert info.value.line == 1
  bad = BadLines("skip")
  assert len(list(amazon.read_interactions(path, bad))) == 2
  assert bad.total == 1
  meta = write(tmp_path / "m.json", ["garbage", _meta_line("meta2014", "A1", "Tea")])
  assert amazon.detect_meta_format(meta) == "meta2014"
