"""Reading a click-log file record by record: BOMs, RFC 4180 records across lines,
undecodable bytes, stray quotes, blank lines, line ends and compression."""

import base64
import gzip
import io

import pytest

from components import events, text_records
from components.text_records import RawRecord, iter_records


def _records(data: bytes, quoted=True, encoding="utf-8"):
  return list(iter_records(io.BytesIO(data), "f.csv", quoted, encoding))


def _texts(data: bytes, quoted=True):
  return [(r.line, r.text) for r in _records(data, quoted)]


def test_plain_lines_with_both_line_ends_and_no_final_break():
  assert _texts(b"a,b\r\nc,d\ne,f") == [(1, "a,b"), (2, "c,d"), (3, "e,f")]


def test_a_bom_at_the_start_of_a_file_is_not_data():
  assert _texts(b"\xef\xbb\xbfuser_id,item_id\n1,2\n") == [(1, "user_id,item_id"), (2, "1,2")]
  # Only at the start: elsewhere those bytes are text (U+FEFF), left to the row rules.
  assert _texts(b"1,2\n\xef\xbb\xbf3,4\n")[1] == (2, "\ufeff3,4")


def test_blank_lines_are_not_records():
  assert _texts(b"a\n\n  \r\nb\n\n") == [(1, "a"), (4, "b")]


def test_quoted_fields_with_line_breaks_commas_and_quotes_are_one_record():
  data = b'h1,h2\n1,"two\nlines, ""quoted"""\n2,"x"\n'
  assert _texts(data) == [(1, "h1,h2"), (2, '1,"two\nlines, ""quoted"""'), (4, '2,"x"')]
  # JSON Lines and tab-separated files have no quoting: a line is a record.
  assert _texts(b'{"a": "\\"x"}\n{"b": 1}\n', quoted=False) == [
      (1, '{"a": "\\"x"}'), (2, '{"b": 1}')]


def test_a_quote_inside_an_unquoted_field_is_literal():
  assert _texts(b'u1,i"1,c\nu2,i2,c\n') == [(1, 'u1,i"1,c'), (2, "u2,i2,c")]


def test_a_stray_quote_costs_its_own_line_only(monkeypatch):
  monkeypatch.setattr(text_records, "MAX_RECORD_LINES", 3)
  records = _records(b'u1,"i1,c\nu2,i2,c\nu3,i3,c\nu4,i4,c\n')
  assert records[0].problem[0] == events.MALFORMED_ROW and records[0].line == 1
  assert [(r.line, r.text) for r in records[1:]] == [(2, "u2,i2,c"), (3, "u3,i3,c"),
                                                      (4, "u4,i4,c")]
  end = _records(b'u1,i1,c\nu2,"i2\n')  # the file ends inside the quotes
  assert end[0].text == "u1,i1,c"
  assert end[1].problem == (events.MALFORMED_ROW,
                            'the file ends inside a quoted field (unbalanced ")')


def test_an_undecodable_byte_costs_its_record_and_keeps_the_bytes():
  records = _records(b"u1,caf\xe9,c\nu2,i2,c\n")
  bad, good = records
  assert bad.text is None and bad.data == b"u1,caf\xe9,c" and bad.line == 1
  assert bad.problem[0] == events.BAD_ENCODING and "e9" in bad.problem[1]
  assert good.text == "u2,i2,c"
  fields = text_records.dead_letter_fields(bad)
  assert base64.b64decode(fields["row_base64"]) == b"u1,caf\xe9,c"  # round-trips
  assert fields["row"] == "u1,caf\\xe9,c"
  # The same bytes are text in a Latin-1 file.
  assert _records(b"u1,caf\xe9,c\n", encoding="latin-1")[0].text == "u1,caf\u00e9,c"


def test_gzip_files_and_a_truncated_one(tmp_path):
  path = tmp_path / "log.csv.gz"
  path.write_bytes(gzip.compress(b"\xef\xbb\xbfh\nr1\nr2\n"))
  records = list(text_records.read_file(str(path), True, skip_first=True))
  assert [(r.line, r.text) for r in records] == [(2, "r1"), (3, "r2")]
  assert text_records.first_record(str(path), True).text == "h"
  rows = [f"row{i:05d},{i * 7919 % 10007:05d}".encode() for i in range(20000)]
  compressed = gzip.compress(b"\n".join(rows) + b"\n")
  broken = tmp_path / "broken.csv.gz"
  broken.write_bytes(compressed[:len(compressed) // 2])
  records = list(text_records.read_file(str(broken), True))
  *complete, last = records
  assert 0 < len(complete) < len(rows)
  assert [r.text.encode() for r in complete] == rows[:len(complete)]  # no partial row
  assert last.problem[0] == events.MALFORMED_ROW
  assert "cannot be read past here: EOFError" in last.problem[1]


def test_origin_names_file_and_line():
  assert RawRecord("gs://b/log.csv", 7, text="x").origin == "gs://b/log.csv:7"


@pytest.mark.parametrize("line,inside", [
    (b'a,"b', True), (b'a,"b""', True), (b'a,"b"""', False), (b'"a",b', False),
    (b'a,b"c', False), (b'"a\nb', True)])
def test_quote_state_follows_rfc_4180(line, inside):
  assert text_records._ends_inside_quotes(line, False) is inside
