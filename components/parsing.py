"""Row parsers: one raw record of a click-log format -> a validated `Event`.

A parser raises `RowError(reason, detail)` for a row it cannot use; the Beam
ingest turns that into a dead-letter record. Parsers are plain picklable
callables so they run on any Beam runner.
"""

import csv
import datetime
import json
import math
import re
from typing import Any, Dict, Mapping, Optional, Sequence

from components import events
from components.events import Event, RowError

# Unix seconds above this are almost surely milliseconds (year 5138).
_MAX_UNIX_SECONDS = 10**11
_MAX_ID_LENGTH = 512
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
TAOBAO_BEHAVIORS = ("pv", "buy", "cart", "fav")


def _is_missing(value: Any) -> bool:
  if value is None:
    return True
  if isinstance(value, float) and math.isnan(value):
    return True
  return isinstance(value, str) and not value.strip()


def parse_id(value: Any, field: str) -> str:
  """A user, item or category id as a clean string."""
  if _is_missing(value):
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
  text = str(value).strip()
  if _CONTROL_CHARS.search(text):
    raise RowError(events.INVALID_FIELD, f"{field} contains control characters")
  if len(text) > _MAX_ID_LENGTH:
    raise RowError(events.INVALID_FIELD, f"{field} is longer than {_MAX_ID_LENGTH} characters")
  return text


def parse_timestamp(value: Any) -> int:
  """Unix seconds (int, float or digits) or ISO-8601 (naive means UTC) -> int seconds."""
  if _is_missing(value):
    raise RowError(events.MISSING_FIELD, "timestamp is missing")
  if isinstance(value, bool):
    raise RowError(events.BAD_TIMESTAMP, f"timestamp is a boolean: {value!r}")
  if isinstance(value, datetime.datetime):  # e.g. a Parquet timestamp column
    moment = value
  elif isinstance(value, (int, float)):
    return _check_unix_seconds(value, value)
  else:
    text = str(value).strip()
    try:
      return _check_unix_seconds(float(text), value)
    except ValueError:
      pass
    try:
      moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
      raise RowError(events.BAD_TIMESTAMP,
                     f"timestamp {text[:40]!r} is neither unix seconds nor ISO-8601") from None
  if moment.tzinfo is None:
    moment = moment.replace(tzinfo=datetime.timezone.utc)
  return _check_unix_seconds(moment.timestamp(), value)


def _check_unix_seconds(seconds: float, original: Any) -> int:
  if not math.isfinite(seconds):
    raise RowError(events.BAD_TIMESTAMP, f"timestamp {original!r} is not finite")
  if seconds < 0:
    raise RowError(events.BAD_TIMESTAMP, f"timestamp {original!r} is before 1970")
  if seconds >= _MAX_UNIX_SECONDS:
    raise RowError(events.BAD_TIMESTAMP,
                   f"timestamp {original!r} is too large for unix seconds (milliseconds?)")
  return int(math.floor(seconds))


def parse_label(value: Any) -> int:
  """0 or 1 (as int, float or text) -> int."""
  if _is_missing(value):
    raise RowError(events.MISSING_FIELD, "label is missing")
  if isinstance(value, bool):
    return int(value)
  try:
    number = float(str(value).strip()) if not isinstance(value, (int, float)) else value
  except ValueError:
    raise RowError(events.BAD_LABEL, f"label {str(value)[:40]!r} is not a number") from None
  if number not in (0, 1):
    raise RowError(events.BAD_LABEL, f"label {value!r} is not 0 or 1")
  return int(number)


def event_from_fields(fields: Mapping[str, Any], raw: str) -> Event:
  """Validates one generic-table row given as a column -> value mapping."""
  category = fields.get(events.CATEGORY)
  return Event(
      user_id=parse_id(fields.get(events.USER_ID), events.USER_ID),
      item_id=parse_id(fields.get(events.ITEM_ID), events.ITEM_ID),
      category=(events.DEFAULT_CATEGORY if _is_missing(category)
                else parse_id(category, events.CATEGORY)),
      timestamp=parse_timestamp(fields.get(events.TIMESTAMP)),
      label=parse_label(fields.get(events.LABEL)),
      raw=raw)


def split_csv_line(line: str, delimiter: str = ",") -> Sequence[str]:
  try:
    return next(csv.reader([line], delimiter=delimiter, strict=True))
  except (csv.Error, StopIteration) as error:
    raise RowError(events.MALFORMED_ROW, f"unparseable CSV line: {error}") from None


class CsvRowParser:
  """A line of a generic CSV file with the given header."""

  def __init__(self, header: Sequence[str]):
    self.header = [name.strip() for name in header]
    missing = [c for c in events.REQUIRED_COLUMNS if c not in self.header]
    if missing:
      raise ValueError(f"CSV header {self.header} lacks required columns {missing}; "
                       f"expected {list(events.REQUIRED_COLUMNS)} (+ optional category)")

  def __call__(self, line: str) -> Event:
    values = split_csv_line(line)
    if len(values) != len(self.header):
      raise RowError(events.MALFORMED_ROW,
                     f"{len(values)} columns where the header has {len(self.header)}")
    return event_from_fields(dict(zip(self.header, values)), line)


class JsonLinesRowParser:
  """A line holding one JSON object."""

  def __call__(self, line: str) -> Event:
    try:
      record = json.loads(line)
    except ValueError as error:
      raise RowError(events.MALFORMED_ROW, f"not JSON: {error}") from None
    if not isinstance(record, dict):
      raise RowError(events.MALFORMED_ROW, f"a JSON {type(record).__name__}, not an object")
    return event_from_fields(record, line)


class RecordRowParser:
  """A record already decoded into a dict (Parquet)."""

  def __call__(self, record: Dict[str, Any]) -> Event:
    return event_from_fields(record, record_to_text(record))


def record_to_text(record: Any) -> str:
  """The dead-letter text of a non-text record."""
  return json.dumps(record, default=str, sort_keys=True)


class MovieLensRowParser:
  """A `u.data` line: user \\t item \\t rating \\t unix time.

  label = 1 when rating >= 4; category = the movie's first genre from `u.item`.
  """

  def __init__(self, item_genres: Mapping[str, str]):
    self.item_genres = dict(item_genres)

  def __call__(self, line: str) -> Event:
    values = line.split("\t")
    if len(values) != 4:
      raise RowError(events.MALFORMED_ROW, f"{len(values)} tab-separated fields, expected 4")
    user, item, rating, timestamp = values
    user_id = parse_id(user, events.USER_ID)
    item_id = parse_id(item, events.ITEM_ID)
    try:
      stars = int(rating)
    except ValueError:
      stars = None
    if stars is None or not 1 <= stars <= 5:
      raise RowError(events.INVALID_FIELD, f"rating {rating[:20]!r} is not an integer 1-5")
    if item_id not in self.item_genres:
      raise RowError(events.INVALID_FIELD, f"item {item_id!r} is not in u.item")
    return Event(user_id=user_id, item_id=item_id, category=self.item_genres[item_id],
                 timestamp=parse_timestamp(timestamp), label=int(stars >= 4), raw=line)


def movielens_item_genres(u_item_text: str, genre_names: Optional[Sequence[str]] = None
                         ) -> Dict[str, str]:
  """Parses `u.item` (id|title|date|video|url|19 genre flags) -> {item id: first genre}."""
  genre_names = list(genre_names or MOVIELENS_GENRES)
  genres = {}
  for line in u_item_text.splitlines():
    if not line.strip():
      continue
    fields = line.split("|")
    flags = fields[5:5 + len(genre_names)]
    first = next((genre_names[i] for i, flag in enumerate(flags) if flag.strip() == "1"),
                 events.DEFAULT_CATEGORY)
    genres[fields[0].strip()] = first
  return genres


MOVIELENS_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western")


class TaobaoRowParser:
  """A UserBehavior line: user,item,category,behavior,timestamp; every row is a positive."""

  def __call__(self, line: str) -> Event:
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
