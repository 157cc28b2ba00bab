"""Row parsers: each format, each rejection reason, and real MovieLens lines."""

import json

import pytest

from components import events, parsing
from components.events import RowError
from components.text_records import RawRecord


def _reason(call, *args):
  with pytest.raises(RowError) as error:
    call(*args)
  return error.value.reason


def _detail(call, *args):
  with pytest.raises(RowError) as error:
    call(*args)
  return error.value.detail


def _record(text, source="log.csv"):
  return RawRecord(source, 2, text=text)


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
  parser = parsing.CsvRowParser(
      {"log.csv": ["user_id", "item_id", "category", "timestamp", "label"]})
  event = parser(_record('u1,"i,1",books,2020-01-01T00:00:00Z,1'))
  assert event[:5] == ("u1", "i,1", "books", 1577836800, 1)
  no_category = parsing.CsvRowParser({"b.csv": ["timestamp", "label", "item_id", "user_id"]})
  assert no_category(_record("100,0,i9,u2", "b.csv")).category == events.DEFAULT_CATEGORY
  assert _reason(parser, _record("u1,i1,books,100")) == events.MALFORMED_ROW
  assert _reason(parser, _record("u1,i1,books,100,7")) == events.BAD_LABEL
  with pytest.raises(ValueError, match="x.csv.*lacks required columns"):
    parsing.CsvRowParser({"x.csv": ["user_id", "item_id"]})
  with pytest.raises(ValueError, match="y.csv.*repeats columns \\['label'\\]"):
    parsing.CsvRowParser({"y.csv": ["user_id", "item_id", "timestamp", "label", "label"]})


def test_each_files_header_governs_that_file():
  parser = parsing.CsvRowParser({
      "a.csv": ["user_id", "item_id", "category", "timestamp", "label"],
      "b.csv": ["item_id", "user_id", "category", "timestamp", "label"]})
  line = "x,y,c,100,1"
  assert parser(_record(line, "a.csv"))[:2] == ("x", "y")
  assert parser(_record(line, "b.csv"))[:2] == ("y", "x")


def test_a_quoted_field_may_span_lines_rfc_4180():
  """An export's free-text column (here `note`) may hold commas, quotes and line breaks."""
  parser = parsing.CsvRowParser({"log.csv": ["user_id", "item_id", "note", "timestamp",
                                             "label"]})
  event = parser(_record('u1,"i,1","a ""quoted"" note\non two lines",100,1'))
  assert event[:5] == ("u1", "i,1", "unknown", 100, 1)
  assert _reason(parser, _record('u1,"i\n1",x,100,1')) == events.INVALID_FIELD  # ids: no \n
  assert _reason(parser, _record('u1,i1,x,100,1\nu2,i2,x,100,1')) == events.MALFORMED_ROW


@pytest.mark.parametrize("text,seconds", [
    ("2020-09-01T12:00:00Z", 1598961600), ("2020-09-01 12:00:00", 1598961600),
    ("2020-09-01T14:00:00+02:00", 1598961600), ("2020-09-01T14:00:00+0200", 1598961600),
    ("2020-09-01T07:00:00-05", 1598961600), ("20200901T120000Z", 1598961600),
    ("2020-09-01T12:00:00.999Z", 1598961600), ("2020-09-01T12:00:00,5Z", 1598961600),
    ("2020-09-01 12:00:00 UTC", 1598961600), ("2020-09-01 12:00:00.123456 UTC", 1598961600),
    ("2020-09-01", 1598918400), ("2020-09-01T12:00", 1598961600), ("1598961600", 1598961600),
    ("1598961600.7", 1598961600), (" 1598961600 ", 1598961600)])
def test_timestamp_dialects_exporters_write(text, seconds):
  assert parsing.parse_timestamp(text) == seconds


@pytest.mark.parametrize("value,words", [
    ("1700000000000", "too large for unix seconds (milliseconds?)"),
    (1700000000000, "too large for unix seconds (milliseconds?)"),
    ("-5", "before 1970"), ("nan", "not finite"), (float("inf"), "not finite"),
    (10**400, "too large for unix seconds (milliseconds?)"),
    ("yesterday", "neither unix seconds nor ISO-8601"),
    ("2020-13-45", "neither unix seconds nor ISO-8601"), ([1], "has type list")])
def test_timestamp_rejection_reasons_are_exact(value, words):
  assert _reason(parsing.parse_timestamp, value) == events.BAD_TIMESTAMP
  assert words in _detail(parsing.parse_timestamp, value)


def test_ids_are_capped_in_characters_not_bytes():
  cjk = "\u5546" * 300  # 300 characters, 900 bytes of UTF-8
  assert parsing.parse_id(cjk, "item_id") == cjk
  emoji = "\U0001F600" * 512
  assert parsing.parse_id(emoji, "item_id") == emoji
  assert "longer than 512 characters (513)" in _detail(parsing.parse_id, "x" * 513, "item_id")


def test_jsonl_and_record_parsers():
  line = json.dumps({"user_id": 1, "item_id": "i", "timestamp": 5, "label": 0})
  parser = parsing.JsonLinesRowParser()
  assert parser(_record(line))[:5] == ("1", "i", "unknown", 5, 0)
  assert _reason(parser, _record("{not json")) == events.MALFORMED_ROW
  assert _reason(parser, _record("[1, 2]")) == events.MALFORMED_ROW
  huge = '{"user_id": 1, "item_id": "i", "timestamp": 1%s, "label": 0}' % ("0" * 30)
  assert _reason(parser, _record(huge)) == events.BAD_TIMESTAMP  # > int64, no crash
  record = {"user_id": "u", "item_id": 7, "category": None, "timestamp": 9.0, "label": 1}
  parquet = parsing.RecordRowParser()
  assert parquet(RawRecord("p.parquet", 1, fields=record))[:5] == ("u", "7", "unknown", 9, 1)
  for wrong in ({"a": 1}, [1, 2], b"\xff"):
    bad = dict(record, item_id=wrong)
    assert _reason(parquet, RawRecord("p.parquet", 1, fields=bad)) == events.INVALID_FIELD
  assert _reason(parquet, RawRecord("p.parquet", 1, fields=dict(record, label=[1]))) == (
      events.BAD_LABEL)


def test_taobao_parser():
  parser = parsing.TaobaoRowParser()
  assert parser(_record("1,2268318,2520377,pv,1511544070"))[:5] == (
      "1", "2268318", "2520377", 1511544070, 1)
  assert _reason(parser, _record("1,2268318,2520377,click,1511544070")) == events.INVALID_FIELD
  assert _reason(parser, _record("1,2268318,pv,1511544070")) == events.MALFORMED_ROW
