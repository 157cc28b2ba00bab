"""Row parsers: one `RawRecord` of a click-log format -> a validated `Event`.

A parser raises `RowError(reason, detail)` for a row it cannot use; the Beam
ingest turns that into a dead-letter record. Parsers are plain picklable
callables so they run on any Beam runner. The rules for ids and times are
components/rules.py's, which the server applies too.
"""

import csv
import datetime
import io
import json
import math
from typing import Any, Mapping, Optional, Sequence, Tuple

from dateutil import parser as dateutil_parser

from components import events, rules, side_features
from components.events import Event, RowError
from components.text_records import RawRecord

TAOBAO_BEHAVIORS = ("pv", "buy", "cart", "fav")
# Exporters (BigQuery, many databases) append the zone as a word.
_UTC_SUFFIXES = (" UTC", " GMT", " Z")


def parse_id(value: Any, field: str) -> str:
  """A user, item or category id as clean text (components/rules.py: the same
  rule the server applies); surrounding whitespace is stripped first.

  Raises:
    RowError: missing_field, or invalid_field naming the rule broken.
  """
  if rules.is_missing(value):
    raise RowError(events.MISSING_FIELD, f"{field} is missing")
  if isinstance(value, bool):
    raise RowError(events.INVALID_FIELD, f"{field} is a boolean: {value!r}")
  if isinstance(value, float):
    if not value.is_integer():
      raise RowError(events.INVALID_FIELD, f"{field} is a non-integral number: {value!r}")
    value = int(value)
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      raise RowError(events.INVALID_FIELD, f"{field} is not UTF-8") from None
  if not isinstance(value, (str, int)):
    raise RowError(events.INVALID_FIELD, f"{field} has type {type(value).__name__}")
  text = rules.strip(str(value))
  problem = rules.id_problem(text)
  if problem:
    raise RowError(events.INVALID_FIELD, f"{field} {problem}")
  return text


def parse_timestamp(value: Any) -> int:
  """An event time -> int unix seconds (floored).

  Accepts unix seconds (int, float or digits) and ISO-8601 as exporters write
  it (dateutil's isoparse: `2020-09-01T12:00:00Z`, `2020-09-01 12:00:00`,
  `+02:00` / `+0200` / `-05` offsets, fractions, `20200901T120000Z`, a date
  alone, week and ordinal dates), also with a trailing ` UTC` / ` GMT`. Naive
  times are UTC.

  Raises:
    RowError: missing_field, or bad_timestamp with the exact reason
      (components/rules.py: before 1970, too large for seconds (milliseconds?),
      not finite, or neither unix seconds nor ISO-8601).
  """
  if rules.is_missing(value):
    raise RowError(events.MISSING_FIELD, "timestamp is missing")
  if isinstance(value, bool):
    raise RowError(events.BAD_TIMESTAMP, f"timestamp is a boolean: {value!r}")
  if isinstance(value, datetime.datetime):  # e.g. a Parquet timestamp column
    moment = value
  elif isinstance(value, datetime.date):
    moment = datetime.datetime(value.year, value.month, value.day)
  elif isinstance(value, (int, float)):
    return _unix_seconds(value, value)
  elif isinstance(value, (str, bytes)):
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text.strip()
    number = _number(text)
    if number is not None:
      return _unix_seconds(number, text)
    moment = _iso_moment(text)
  else:
    raise RowError(events.BAD_TIMESTAMP, f"timestamp has type {type(value).__name__}")
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return _unix_seconds(moment.timestamp(), value)


def _number(text: str) -> Optional[float]:
  try:
    return float(text)
  except ValueError:
    return None


def _iso_moment(text: str) -> datetime.datetime:
  candidate = text
  for suffix in _UTC_SUFFIXES:
    if candidate.upper().endswith(suffix):
      candidate = candidate[:-len(suffix)] + "+00:00"
      break
  try:
    return dateutil_parser.isoparse(candidate)
  except (ValueError, OverflowError):
    raise RowError(events.BAD_TIMESTAMP,
                   f"timestamp {text[:40]!r} is neither unix seconds nor ISO-8601") from None


def _unix_seconds(seconds, original: Any) -> int:
  problem = rules.unix_seconds_problem(seconds)
  if problem:
    raise RowError(events.BAD_TIMESTAMP, f"timestamp {str(original)[:40]!r} {problem}")
  return int(math.floor(seconds))


def parse_label(value: Any) -> int:
  """0 or 1 (as int, float or text) -> int.

  Raises:
    RowError: missing_field, or bad_label.
  """
  if rules.is_missing(value):
    raise RowError(events.MISSING_FIELD, "label is missing")
  if isinstance(value, bool):
    return int(value)
  if isinstance(value, (int, float)):
    number = value
  elif isinstance(value, str):
    number = _number(value.strip())
    if number is None:
      raise RowError(events.BAD_LABEL, f"label {value[:40]!r} is not a number")
  else:
    raise RowError(events.BAD_LABEL, f"label has type {type(value).__name__}")
  if number not in (0, 1):
    raise RowError(events.BAD_LABEL, f"label {str(value)[:40]!r} is not 0 or 1")
  return int(number)


BUILT_IN_COLUMNS = frozenset(events.REQUIRED_COLUMNS + events.OPTIONAL_COLUMNS)


def event_from_fields(fields: Mapping[str, Any], raw: str, features: Sequence[Any] = (),
                      ignored: Optional[Sequence[str]] = None) -> Event:
  """Validates one generic-table row given as a column -> value mapping.

  features: the declared side features (FeatureSpecs), read from their columns
  (an absent column is a missing value; see components/side_features.py).
  ignored: the row's undeclared extra columns when the caller knows them (a CSV
  file's header); None: every key of `fields` that is neither built-in nor declared.
  """
  category = fields.get(events.CATEGORY)
  event = Event(
      user_id=parse_id(fields.get(events.USER_ID), events.USER_ID),
      item_id=parse_id(fields.get(events.ITEM_ID), events.ITEM_ID),
      category=(events.DEFAULT_CATEGORY if rules.is_missing(category)
                else parse_id(category, events.CATEGORY)),
      timestamp=parse_timestamp(fields.get(events.TIMESTAMP)),
      label=parse_label(fields.get(events.LABEL)),
      raw=raw)
  if features:
    event = event._replace(side=side_features.parse_row(features, fields))
  if ignored is None:
    ignored = extra_columns(fields, features)
  return event._replace(ignored=tuple(ignored)) if ignored else event


def extra_columns(columns, features: Sequence[Any] = ()) -> Tuple[str, ...]:
  """The columns that are neither built-in nor declared features, sorted."""
  declared = {spec.name for spec in features}
  return tuple(sorted(str(c) for c in columns
                      if c not in BUILT_IN_COLUMNS and c not in declared))


def check_feature_columns(columns: Sequence[str], source: str, features: Sequence[Any],
                          what: str = "CSV header"):
  """Raises ValueError naming the file and the column when a declared feature is
  not among a file's columns."""
  missing = [spec.name for spec in features if spec.name not in columns]
  if missing:
    raise ValueError(f"{source}: the declared feature column{'s' if len(missing) > 1 else ''} "
                     f"{', '.join(repr(m) for m in missing)} {'are' if len(missing) > 1 else 'is'}"
                     f" not in the {what} {list(columns)}; add the column to every file or "
                     "remove the --feature declaration")


def split_csv_line(line: str, delimiter: str = ",") -> Sequence[str]:
  """One CSV record (RFC 4180; quoted fields may hold line breaks) -> its fields.

  Raises:
    RowError: malformed_row, when it is not exactly one well-formed record.
  """
  try:
    rows = list(csv.reader(io.StringIO(line, newline=""), delimiter=delimiter, strict=True))
  except csv.Error as error:
    raise RowError(events.MALFORMED_ROW, f"unparseable CSV record: {error}") from None
  if len(rows) != 1:
    raise RowError(events.MALFORMED_ROW, f"{len(rows)} CSV records where one was expected")
  return rows[0]


def check_csv_header(header: Sequence[str], source: str) -> Sequence[str]:
  """A CSV file's header, cleaned; raises ValueError naming the file when it
  lacks a required column or repeats one."""
  header = [name.strip() for name in header]
  missing = [c for c in events.REQUIRED_COLUMNS if c not in header]
  if missing:
    raise ValueError(f"{source}: the CSV header {header} lacks required columns {missing}; "
                     f"each file needs a header naming {list(events.REQUIRED_COLUMNS)} "
                     "(+ optional category), in any order")
  repeated = sorted({name for name in header if header.count(name) > 1})
  if repeated:
    raise ValueError(f"{source}: the CSV header repeats columns {repeated}")
  return header


class CsvRowParser:
  """A record of a generic CSV file, read with its own file's header."""

  def __init__(self, headers: Mapping[str, Sequence[str]], features: Sequence[Any] = ()):
    """headers: {file path: its header}; each is checked (check_csv_header), and
    must name every declared feature (check_feature_columns)."""
    self.headers = {path: check_csv_header(header, path) for path, header in headers.items()}
    self.features = tuple(features)
    for path, header in self.headers.items():
      check_feature_columns(header, path, self.features)
    self.extra = {path: extra_columns(header, self.features)
                  for path, header in self.headers.items()}

  def __call__(self, record: RawRecord) -> Event:
    header = self.headers[record.source]
    values = split_csv_line(record.text)
    if len(values) != len(header):
      raise RowError(events.MALFORMED_ROW,
                     f"{len(values)} columns where the header has {len(header)}")
    return event_from_fields(dict(zip(header, values)), record.text, self.features,
                             self.extra[record.source])


class JsonLinesRowParser:
  """A line holding one JSON object. A declared feature's key absent from an
  object is a missing value (JSON exporters omit nulls)."""

  def __init__(self, features: Sequence[Any] = ()):
    self.features = tuple(features)

  def __call__(self, record: RawRecord) -> Event:
    try:
      value = json.loads(record.text)
    except ValueError as error:
      raise RowError(events.MALFORMED_ROW, f"not JSON: {error}") from None
    if not isinstance(value, dict):
      raise RowError(events.MALFORMED_ROW, f"a JSON {type(value).__name__}, not an object")
    return event_from_fields(value, record.text, self.features)


class RecordRowParser:
  """A record already decoded into a dict (Parquet)."""

  def __init__(self, features: Sequence[Any] = ()):
    self.features = tuple(features)

  def __call__(self, record: RawRecord) -> Event:
    return event_from_fields(record.fields, record_to_text(record.fields), self.features)


def record_to_text(record: Any) -> str:
  """The dead-letter text of a non-text record."""
  return json.dumps(record, default=str, sort_keys=True)


class TaobaoRowParser:
  """A UserBehavior line: user,item,category,behavior,timestamp; every row is a positive."""

  def __call__(self, record: RawRecord) -> Event:
    line = record.text
    values = split_csv_line(line)
    if len(values) != 5:
      raise RowError(events.MALFORMED_ROW, f"{len(values)} columns, expected 5")
    user, item, category, behavior, timestamp = values
    if behavior.strip() not in TAOBAO_BEHAVIORS:
      raise RowError(events.INVALID_FIELD,
                     f"behavior {behavior[:20]!r} is not one of {TAOBAO_BEHAVIORS}")
    return Event(user_id=parse_id(user, events.USER_ID),
                 item_id=parse_id(item, events.ITEM_ID),
                 category=parse_id(category, events.CATEGORY),
                 timestamp=parse_timestamp(timestamp), label=1, raw=line)
