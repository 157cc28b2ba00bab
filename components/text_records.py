"""Records of a click-log file, as the readers hand them to the row parsers.

A text file is read as bytes, record by record:
  - a UTF-8 byte-order mark at the start of a file is not data, in any format;
  - CSV records follow RFC 4180: a quoted field may hold commas, doubled quotes
    and line breaks, so one record can span several physical lines;
  - each record is decoded on its own: a record that is not valid text in the
    file's encoding becomes a `RawRecord` with a `problem` (bad_encoding) and
    its bytes, so one bad byte costs one row, never the run;
  - blank lines are not records (they carry no data and are not counted).

Parquet rows become `RawRecord`s too (with `fields`), so every parser and the
dead-letter output see one type with the file and line it came from.

A file is read by one worker from start to end (a record boundary depends on
every quote before it), so parallelism is across files; split a very large
log into several files to spread its reading.
"""

import contextlib
import gzip
import zlib
from typing import IO, Any, Dict, Iterator, NamedTuple, Optional, Tuple

from components import events

UTF8_BOM = b"\xef\xbb\xbf"
# A quoted field left open for this many lines or bytes is a stray quote, not
# a long field: the first line is rejected and reading resumes on the next.
MAX_RECORD_LINES = 1000
MAX_RECORD_BYTES = 1 << 20
_QUOTE, _DELIMITER = ord('"'), ord(",")


class RawRecord(NamedTuple):
  """One record of a click-log file.

  Attributes:
    source: the file it came from.
    line: its first line in the file (1-based); for Parquet its row (1-based).
    text: the decoded record without its line break; None for Parquet rows and
      for records that are not valid text.
    fields: a Parquet row as a column -> value dict.
    data: the record's bytes when they could not be decoded (else empty).
    problem: (reason, detail) when the record is unusable before parsing
      (events.BAD_ENCODING, or events.MALFORMED_ROW for an unterminated quote).
  """
  source: str
  line: int
  text: Optional[str] = None
  fields: Optional[Dict[str, Any]] = None
  data: bytes = b""
  problem: Optional[Tuple[str, str]] = None

  @property
  def origin(self) -> str:
    """'FILE:LINE', where the record is in the log."""
    return f"{self.source}:{self.line}"


def _ends_inside_quotes(line: bytes, inside: bool) -> bool:
  """Whether a CSV line ends inside a quoted field, given whether it began inside one.

  RFC 4180: a quote opens a quoted field only at the start of a field; inside
  one, a doubled quote is a literal quote and a single one closes it. A quote in
  the middle of an unquoted field is literal (as Python's csv module reads it).
  """
  if not inside and _QUOTE not in line:
    return False
  at_field_start = not inside
  index, length = 0, len(line)
  while index < length:
    byte = line[index]
    if inside:
      if byte == _QUOTE:
        if index + 1 < length and line[index + 1] == _QUOTE:
          index += 1  # "" inside quotes
        else:
          inside, at_field_start = False, False
    elif byte == _DELIMITER:
      at_field_start = True
    elif byte == _QUOTE and at_field_start:
      inside = True
    else:
      at_field_start = False
    index += 1
  return inside


def _strip_line_break(data: bytes) -> bytes:
  if data.endswith(b"\n"):
    data = data[:-1]
  if data.endswith(b"\r"):
    data = data[:-1]
  return data


def _decoded(source: str, line: int, data: bytes, encoding: str) -> RawRecord:
  try:
    return RawRecord(source, line, text=data.decode(encoding))
  except UnicodeDecodeError as error:
    bad = data[error.start:error.end]
    return RawRecord(source, line, data=data, problem=(
        events.BAD_ENCODING, f"bytes {bad.hex(' ')} at offset {error.start} are not "
        f"{encoding} text"))


def iter_records(handle: IO[bytes], source: str, quoted_line_breaks: bool,
                 encoding: str = "utf-8") -> Iterator[RawRecord]:
  """The records of one open binary file, in order.

  Args:
    handle: the file, opened for reading bytes (decompressed).
    source: its path, for `RawRecord.source`.
    quoted_line_breaks: CSV: a quoted field may span lines (RFC 4180).
    encoding: the file's text encoding (UTF-8 for every generic format).
  """
  pending = []  # (number, bytes) of a record whose quoted field is still open
  pending_bytes, inside, number = 0, False, 0
  lines = iter(handle.readline, b"")  # Beam's CompressedFile has no __iter__
  replay = []  # lines to read again after a stray quote was given up on
  while True:
    if replay:
      number_read, physical = replay.pop(0)
    else:
      physical = next(lines, None)
      if physical is None:
        if not pending:
          break
        # The file ends inside a quoted field: a stray quote on the first line.
        (first, data), replay = pending[0], pending[1:]
        yield _stray_quote(source, first, data, encoding, at_end=not replay)
        pending, pending_bytes, inside = [], 0, False
        continue
      number += 1
      number_read = number
      if number == 1 and physical.startswith(UTF8_BOM):
        physical = physical[len(UTF8_BOM):]
    if not pending and not physical.strip():
      continue  # a blank line is not a record
    pending.append((number_read, physical))
    pending_bytes += len(physical)
    if quoted_line_breaks:
      inside = _ends_inside_quotes(physical, inside)
      if inside:
        if len(pending) < MAX_RECORD_LINES and pending_bytes < MAX_RECORD_BYTES:
          continue
        # Open for too long: a stray quote; reject its line alone, read the others again.
        (first, data), replay = pending[0], pending[1:] + replay
        yield _stray_quote(source, first, data, encoding, at_end=False)
        pending, pending_bytes, inside = [], 0, False
        continue
    yield _decoded(source, pending[0][0],
                   _strip_line_break(b"".join(data for _, data in pending)), encoding)
    pending, pending_bytes = [], 0


def _stray_quote(source: str, line: int, data: bytes, encoding: str,
                 at_end: bool) -> RawRecord:
  data = _strip_line_break(data)
  where = ("the file ends inside a quoted field" if at_end
           else "a quoted field is never closed")
  return RawRecord(source, line, text=data.decode(encoding, "backslashreplace"),
                   data=data if _is_undecodable(data, encoding) else b"",
                   problem=(events.MALFORMED_ROW, f'{where} (unbalanced ")'))


def _is_undecodable(data: bytes, encoding: str) -> bool:
  try:
    data.decode(encoding)
    return False
  except UnicodeDecodeError:
    return True


@contextlib.contextmanager
def open_file(path: str) -> Iterator[IO[bytes]]:
  """The file at `path` on any Beam file system, decompressed, for reading bytes.

  .gz goes through Python's gzip module, which raises on a truncated file
  (Beam's own decompressor ends it silently, losing rows unseen); other
  compressions are Beam's, by extension.
  """
  from apache_beam.io.filesystem import CompressionTypes  # pylint: disable=g-import-not-at-top
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  if path.lower().endswith(".gz"):
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
      with gzip.GzipFile(fileobj=raw, mode="rb") as handle:
        yield handle
  else:
    with FileSystems.open(path) as handle:
      yield handle


def read_file(path: str, quoted_line_breaks: bool, encoding: str = "utf-8",
              skip_first: bool = False) -> Iterator[RawRecord]:
  """The records of the file at `path` (any Beam file system; .gz and other
  compressions by extension), optionally without its first record (a header)."""
  last = 0
  try:
    with open_file(path) as handle:
      records = iter_records(handle, path, quoted_line_breaks, encoding)
      if skip_first:
        next(records, None)
      for record in records:
        last = record.line
        yield record
  except (OSError, EOFError, ValueError, zlib.error) as error:  # a truncated .gz, ...
    yield RawRecord(path, last + 1, text="", problem=(
        events.MALFORMED_ROW, f"the file cannot be read past here: "
        f"{type(error).__name__}: {error}"))


def first_record(path: str, quoted_line_breaks: bool,
                 encoding: str = "utf-8") -> Optional[RawRecord]:
  """The first record of a file (its header, for CSV), or None for an empty file."""
  with open_file(path) as handle:
    return next(iter_records(handle, path, quoted_line_breaks, encoding), None)


def dead_letter_fields(record: RawRecord) -> Dict[str, Any]:
  """The dead-letter `row` of a record, and `row_base64` when its bytes are not
  text: base64 of the exact bytes, so the row round-trips."""
  import base64  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  if record.fields is not None:
    return {"row": json.dumps(record.fields, default=str, sort_keys=True)}
  if record.data:
    return {"row": record.data.decode("utf-8", "backslashreplace"),
            "row_base64": base64.b64encode(record.data).decode("ascii")}
  return {"row": record.text or ""}
