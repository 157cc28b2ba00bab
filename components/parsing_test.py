"""Row parsers: each format, each rejection reason, and real MovieLens lines."""

import json
import os

import pytest

from components import datasets, events, parsing
from components.events import RowError


def _reason(call, *args):
  with pytest.raises(RowError) as error:
    call(*args)
  return error.value.reason


def test_timestamps_unix_and_iso():
  assert parsing.parse_timestamp("881250949") == 881250949
  assert parsing.parse_timestamp(881250949) == 881250949
  assert parsing.parse_timestamp("881250949.7") == 881250949
  assert parsing.parse_timestamp("1997-12-04T15:55:49Z") == 881250949
  assert parsing.parse_timestamp("1997-12-04T15:55:49") == 881250949  # naive = UTC
  assert parsing.parse_timestamp("1997-12-04T16:55:49+01:00") == 881250949


@pytest.mark.parametrize("value", ["yesterday", "", None, "1997-13-45", "-5", "nan",
                                   "1700000000000", True])
def test_bad_timestamps(value):
  reason = _reason(parsing.parse_timestamp, value)
  assert reason in (events.BAD_TIMESTAMP, events.MISSING_FIELD)


def test_labels():
  assert [parsing.parse_label(v) for v in ("0", "1", 0, 1, 1.0, " 1 ")] == [0, 1, 0, 1, 1, 1]
  for value in ("2", "-1", "0.5", "yes"):
    assert _reason(parsing.parse_label, value) == events.BAD_LABEL
  assert _reason(parsing.parse_label, "") == events.MISSING_FIELD


def test_ids():
  assert parsing.parse_id(" 42 ", "item_id") == "42"
  assert parsing.parse_id(42.0, "item_id") == "42"
  assert _reason(parsing.parse_id, "", "item_id") == events.MISSING_FIELD
  assert _reason(parsing.parse_id, "a\nb", "item_id") == events.INVALID_FIELD
  assert _reason(parsing.parse_id, 4.5, "item_id") == events.INVALID_FIELD
  assert _reason(parsing.parse_id, "x" * 600, "item_id") == events.INVALID_FIELD


def test_csv_parser_with_and_without_category():
  parser = parsing.CsvRowParser(["user_id", "item_id", "category", "timestamp", "label"])
  event = parser('u1,"i,1",books,2020-01-01T00:00:00Z,1')
  assert event[:5] == ("u1", "i,1", "books", 1577836800, 1)
  no_category = parsing.CsvRowParser(["timestamp", "label", "item_id", "user_id"])
  assert no_category("100,0,i9,u2").category == events.DEFAULT_CATEGORY
  assert _reason(parser, "u1,i1,books,100") == events.MALFORMED_ROW
  assert _reason(parser, "u1,i1,books,100,7") == events.BAD_LABEL
  with pytest.raises(ValueError, match="lacks required columns"):
    parsing.CsvRowParser(["user_id", "item_id"])


def test_jsonl_and_record_parsers():
  line = json.dumps({"user_id": 1, "item_id": "i", "timestamp": 5, "label": 0})
  assert parsing.JsonLinesRowParser()(line)[:5] == ("1", "i", "unknown", 5, 0)
  assert _reason(parsing.JsonLinesRowParser(), "{not json") == events.MALFORMED_ROW
  assert _reason(parsing.JsonLinesRowParser(), "[1, 2]") == events.MALFORMED_ROW
  record = {"user_id": "u", "item_id": 7, "category": None, "timestamp": 9.0, "label": 1}
  assert parsing.RecordRowParser()(record)[:5] == ("u", "7", "unknown", 9, 1)


def test_taobao_parser():
  parser = parsing.TaobaoRowParser()
  assert parser("1,2268318,2520377,pv,1511544070")[:5] == (
      "1", "2268318", "2520377", 1511544070, 1)
  assert _reason(parser, "1,2268318,2520377,click,1511544070") == events.INVALID_FIELD
  assert _reason(parser, "1,2268318,pv,1511544070") == events.MALFORMED_ROW


def test_movielens_item_genres_first_flag_wins():
  flags = ["0"] * 19
  flags[2] = flags[5] = "1"  # Adventure, Comedy
  text = "7|A film (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
  text += "8|Nothing (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 19) + "\n"
  assert parsing.movielens_item_genres(text) == {"7": "Adventure", "8": "unknown"}


def test_movielens_parser_rules():
  parser = parsing.MovieLensRowParser({"242": "Comedy"})
  assert parser("196\t242\t4\t881250949")[:5] == ("196", "242", "Comedy", 881250949, 1)
  assert parser("196\t242\t3\t881250949").label == 0
  assert _reason(parser, "196\t242\t6\t881250949") == events.INVALID_FIELD
  assert _reason(parser, "196\t999\t4\t881250949") == events.INVALID_FIELD  # not in u.item
  assert _reason(parser, "196 242 4 881250949") == events.MALFORMED_ROW
  assert _reason(parser, "196\t242\t4\tnoon") == events.BAD_TIMESTAMP


def _movielens_dir():
  try:
    return datasets.locate_movielens_100k(download=False)
  except datasets.DatasetNotFound:
    pytest.skip("MovieLens-100k not available (set ETA_DATA_DIR)")


def test_adapter_parses_real_movielens_lines():
  directory = _movielens_dir()
  with open(os.path.join(directory, "u.item"), encoding="latin-1") as handle:
    genres = parsing.movielens_item_genres(handle.read())
  assert len(genres) == 1682
  assert genres["1"] == "Animation"  # Toy Story: Animation|Children's|Comedy
  parser = parsing.MovieLensRowParser(genres)
  with open(os.path.join(directory, "u.data")) as handle:
    lines = [handle.readline().rstrip("\n") for _ in range(1000)]
  parsed = [parser(line) for line in lines]
  user, item, rating, timestamp = lines[0].split("\t")
  assert parsed[0][:4] == (user, item, genres[item], int(timestamp))
  assert parsed[0].label == int(int(rating) >= 4)
  assert {event.label for event in parsed} == {0, 1}
