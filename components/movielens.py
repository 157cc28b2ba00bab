"""The MovieLens family: which layout a directory holds, and one row parser for all.

GroupLens ships its rating data sets in four layouts, one row of `LAYOUTS` each:

| layout    | releases                                   | ratings / items             |
|-----------|--------------------------------------------|-----------------------------|
| ml-100k   | ml-100k                                    | u.data (tabs) / u.item      |
| ml-1m     | ml-1m (also has users.dat)                 | ratings.dat / movies.dat    |
| ml-10m    | ml-10m                                     | ratings.dat / movies.dat    |
| ml-latest | ml-latest, ml-latest-small, ml-20m/25m/32m | ratings.csv / movies.csv    |

A ratings row is user, movie, rating, unix seconds. The event's category is the
movie's first genre (`unknown` when it has none: "(no genres listed)", or no
u.item genre flag). The label is 1 when the rating is at least
`SourceConfig.min_positive_rating` (default 4.0), else 0; on half-star layouts
that makes 4.0, 4.5 and 5.0 positives and 3.5 a negative, the same line as on
whole-star data (see DEFAULT_MIN_POSITIVE_RATING).

A directory's layout is told from the files present (`detect`); the ingest then
reads only its ratings file, and the items file once when the parser is built.
Nothing here imports Beam at import time; file access goes through Beam's
FileSystems, so a bucket directory works as a local one.
"""

import csv
import dataclasses
import io
import logging
import math
import posixpath
import re
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from components import events, parsing, text_records
from components.events import Event, RowError

log = logging.getLogger(__name__)

# A rating at or above this is a positive (label 1). 4 of 5 stars is "liked" on
# every layout: on the half-star ones 3.5 stays a negative, so the label means
# the same across the family (and ml-latest-small gets 48% positives; 3.5 would
# make it 61%).
DEFAULT_MIN_POSITIVE_RATING = 4.0
MIN_RATING, MAX_RATING = 0.5, 5.0  # stars, over every layout
NO_GENRES = "(no genres listed)"
# ExampleGen fingerprints the files under a MovieLens directory that match this
# pattern (its cache key). It is fixed, not detected, because the pipeline is
# built before the directory can be read (Kubeflow compiles for a bucket it
# never opens); it matches every layout's ratings and items files (u.*,
# ratings.*, movies.*, users.dat) but not README, links.csv, tags.* or genome-*.
INPUT_PATTERN = "[mru]*"
_RATING_TEXT = re.compile(r"\d+(\.\d+)?")


# ml-100k's u.item genre flags, in order.
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western")


def _genres_from_flags(text: str) -> Dict[str, str]:
  """u.item (id|title|release|video release|url|19 genre flags) -> {id: first genre
  whose flag is set}, `unknown` when none is."""
  genres = {}
  for line in text.splitlines():
    if not line.strip():
      continue
    fields = line.split("|")
    flags = fields[5:5 + len(ML_100K_GENRES)]
    genres[fields[0].strip()] = next(
        (ML_100K_GENRES[i] for i, flag in enumerate(flags) if flag.strip() == "1"),
        events.DEFAULT_CATEGORY)
  return genres


def _first_genre(genres: str) -> str:
  first = genres.split("|")[0].strip()
  return events.DEFAULT_CATEGORY if not first or first == NO_GENRES else first


def _genres_from_fields(rows: Iterable[Sequence[str]], source: str) -> Dict[str, str]:
  """(id, title..., genres) rows -> {id: first genre}; unusable rows are logged."""
  genres, skipped = {}, 0
  for row in rows:
    if len(row) < 3 or not row[0].strip():
      skipped += 1
      continue
    genres.setdefault(row[0].strip(), _first_genre(row[-1]))
  if skipped:
    log.warning("%s: %d rows without an id, title and genres skipped; their movies' "
                "ratings are rejected as invalid_field", source, skipped)
  return genres


def _genres_from_dat(text: str) -> Dict[str, str]:
  """movies.dat: MovieID::Title::Genres (genres `|`-separated)."""
  return _genres_from_fields((line.split("::") for line in text.splitlines() if line.strip()),
                             "movies.dat")


def _genres_from_csv(text: str) -> Dict[str, str]:
  """movies.csv: header movieId,title,genres; RFC 4180 (quoted titles with commas)."""
  rows = csv.reader(io.StringIO(text, newline=""))
  header = [name.strip() for name in next(rows, [])]
  if header[:1] != ["movieId"] or header[-1:] != ["genres"]:
    raise ValueError(f"movies.csv: header {header} is not movieId,title,genres")
  return _genres_from_fields((row for row in rows if row), "movies.csv")


@dataclasses.dataclass(frozen=True)
class Layout:
  """One MovieLens file layout.

  Attributes:
    name: the layout's name (the oldest release that uses it).
    releases: the GroupLens releases that use it.
    ratings_file: the file of ratings rows: user, movie, rating, unix seconds.
    items_file: the file of movies and their genres.
    separator: between the fields of a ratings row.
    encoding: the items file's text encoding (ratings are ASCII digits).
    header: the ratings and items files start with a header line (never
      handed to the parser, so never counted as a row).
    half_stars: ratings go from 0.5 to 5 in steps of 0.5 (else whole stars 1-5).
    item_genres: items file text -> {movie id: first genre}.
    also_requires: further files that tell this layout from a later row with the
      same ratings file (ml-1m's users.dat; ml-10m has none).
  """
  name: str
  releases: Tuple[str, ...]
  ratings_file: str
  items_file: str
  separator: str
  encoding: str
  header: bool
  half_stars: bool
  item_genres: Callable[[str], Dict[str, str]]
  also_requires: Tuple[str, ...] = ()

  @property
  def files(self) -> Tuple[str, ...]:
    """Every file whose presence marks this layout."""
    return (self.ratings_file, self.items_file) + self.also_requires

  @property
  def ratings_header(self) -> Optional[str]:
    return "userId,movieId,rating,timestamp" if self.header else None


LAYOUTS: Tuple[Layout, ...] = (
    Layout("ml-100k", ("ml-100k",), "u.data", "u.item", "\t", "latin-1", header=False,
           half_stars=False, item_genres=_genres_from_flags),
    Layout("ml-1m", ("ml-1m",), "ratings.dat", "movies.dat", "::", "latin-1", header=False,
           half_stars=False, item_genres=_genres_from_dat, also_requires=("users.dat",)),
    # ml-10m's titles are read as Latin-1 too: it never fails, and only the
    # ASCII ids and genres are used.
    Layout("ml-10m", ("ml-10m",), "ratings.dat", "movies.dat", "::", "latin-1", header=False,
           half_stars=True, item_genres=_genres_from_dat),
    Layout("ml-latest", ("ml-latest", "ml-latest-small", "ml-20m", "ml-25m", "ml-32m"),
           "ratings.csv", "movies.csv", ",", "utf-8", header=True, half_stars=True,
           item_genres=_genres_from_csv),
)
_BY_NAME = {layout.name: layout for layout in LAYOUTS}


def layout_named(name: str) -> Layout:
  """The layout called `name`; raises ValueError naming the known ones."""
  if name not in _BY_NAME:
    raise ValueError(f"unknown MovieLens layout {name!r}; expected one of {tuple(_BY_NAME)}")
  return _BY_NAME[name]


def looked_for() -> str:
  """The layouts and their files, for error messages."""
  return "; ".join(f"{' + '.join(layout.files)} ({', '.join(layout.releases)})"
                   for layout in LAYOUTS)


def _join(directory: str, name: str) -> str:
  from apache_beam.io.filesystems import FileSystems  # any file system Beam knows
  return FileSystems.join(directory, name)


def _exists(path: str) -> bool:
  from apache_beam.io.filesystems import FileSystems
  try:
    return FileSystems.exists(path)
  except Exception:  # pylint: disable=broad-except  (e.g. an unreachable bucket)
    return False


def detect(directory: str) -> Layout:
  """The layout of the MovieLens data in `directory` (local or on a bucket).

  The first row of LAYOUTS whose files are all present wins (ml-1m before
  ml-10m: both have ratings.dat and movies.dat, only ml-1m has users.dat).

  Raises:
    FileNotFoundError: no layout's files are all there; names what was looked
      for and which of those files were found.
    ValueError: files of two layouts with different ratings files (e.g. u.data
      and ratings.csv); which to read would be a guess.
  """
  candidates = sorted({name for layout in LAYOUTS for name in layout.files})
  present = {name for name in candidates if _exists(_join(directory, name))}
  matches = [layout for layout in LAYOUTS if set(layout.files) <= present]
  if not matches:
    found = ", ".join(sorted(present)) or "none of them"
    raise FileNotFoundError(
        f"no MovieLens data set in {directory}: looked for {looked_for()}; found {found}")
  ratings_files = sorted({layout.ratings_file for layout in matches})
  if len(ratings_files) > 1:
    raise ValueError(f"{directory} holds several MovieLens layouts "
                     f"({', '.join(layout.name for layout in matches)}); point the path at a "
                     "directory with one of them")
  return matches[0]


def rows_file(directory: str) -> str:
  """The name of the ratings file of the layout in `directory` (see detect)."""
  return detect(directory).ratings_file


def has_header(files: Sequence[str]) -> bool:
  """Whether these ratings files start with a header line (ratings.csv).

  Raises:
    ValueError: a file that is no layout's ratings file, or a mix.
  """
  headers = set()
  for path in files:
    name = posixpath.basename(path.replace("\\", "/"))
    layouts = [layout for layout in LAYOUTS if layout.ratings_file == name]
    if not layouts:
      raise ValueError(f"{path} is not a MovieLens ratings file "
                       f"({', '.join(sorted({l.ratings_file for l in LAYOUTS}))})")
    headers.add(layouts[0].header)
  if len(headers) > 1:
    raise ValueError(f"MovieLens ratings files of different layouts: {list(files)}")
  return headers.pop() if headers else False


def _decode(data: bytes, encoding: str, path: str) -> str:
  if data.startswith(b"\xef\xbb\xbf"):  # a byte-order mark is not data
    data = data[3:]
  try:
    return data.decode(encoding)
  except UnicodeDecodeError as error:
    log.warning("%s is not all %s (%s); undecodable bytes replaced (only ids and genres "
                "are used)", path, encoding, error)
    return data.decode(encoding, "replace")


class MovieLensRowParser:
  """One ratings row of a MovieLens layout -> an Event.

  Args:
    layout: the Layout the row comes from.
    item_genres: {movie id: first genre} from the layout's items file.
    min_positive_rating: stars; a rating at or above it is label 1, below it 0.

  Raises (constructor):
    ValueError: min_positive_rating is not a number in (0, 5].

  A call takes a text_records.RawRecord (as every row parser) and raises
  RowError: malformed_row (not 4 fields), missing_field /
  invalid_field (ids), invalid_field (a rating off the layout's scale, a movie
  not in the items file), bad_timestamp.
  """

  def __init__(self, layout: Layout, item_genres: Mapping[str, str],
               min_positive_rating: float = DEFAULT_MIN_POSITIVE_RATING):
    check_min_positive_rating(min_positive_rating)
    self.layout = layout
    self.item_genres = dict(item_genres)
    self.min_positive_rating = float(min_positive_rating)

  def __call__(self, record) -> Event:
    line = record.text  # a file's byte-order mark is gone already (text_records)
    values = line.split(self.layout.separator)
    if len(values) != 4:
      raise RowError(events.MALFORMED_ROW,
                     f"{len(values)} fields separated by {self.layout.separator!r}, expected 4 "
                     "(user, movie, rating, timestamp)")
    user, item, rating, timestamp = values
    user_id = parsing.parse_id(user, events.USER_ID)
    item_id = parsing.parse_id(item, events.ITEM_ID)
    stars = self._stars(rating)
    if item_id not in self.item_genres:
      raise RowError(events.INVALID_FIELD,
                     f"item {item_id!r} is not in {self.layout.items_file}")
    return Event(user_id=user_id, item_id=item_id, category=self.item_genres[item_id],
                 timestamp=parsing.parse_timestamp(timestamp),
                 label=int(stars >= self.min_positive_rating), raw=line)

  def _stars(self, text: str) -> float:
    text = text.strip()
    stars = float(text) if _RATING_TEXT.fullmatch(text) else math.nan
    if self.layout.half_stars:
      valid = MIN_RATING <= stars <= MAX_RATING and (stars * 2).is_integer()
      scale = "0.5-5 in steps of 0.5"
    else:
      valid = 1 <= stars <= MAX_RATING and stars.is_integer()
      scale = "a whole number 1-5"
    if not valid:
      raise RowError(events.INVALID_FIELD, f"rating {text[:20]!r} is not {scale}")
    return stars


def check_min_positive_rating(value) -> None:
  """Raises ValueError unless `value` is a number of stars in (0, 5]."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      0 < value <= MAX_RATING):
    raise ValueError(f"min_positive_rating must be a number of stars in (0, {MAX_RATING:g}], "
                     f"got {value!r}")


def make_parser(path: str, files: Sequence[str],
                min_positive_rating: float = DEFAULT_MIN_POSITIVE_RATING
                ) -> MovieLensRowParser:
  """The parser for the MovieLens directory `path` (the formats table's
  parser_factory): detects the layout, checks the ratings files' header where
  the layout has one, and reads the items file once.

  Args:
    path: the directory.
    files: the ratings files the ingest reads (sources.input_files).
    min_positive_rating: stars (see MovieLensRowParser).

  Raises:
    FileNotFoundError, ValueError: see detect; ValueError also for a ratings
      header other than userId,movieId,rating,timestamp, or an unreadable
      movies.csv header.
  """
  layout = detect(path)
  if layout.ratings_header:
    for name in files:
      first = text_records.first_record(name, quoted_line_breaks=False)
      header = (first.text or "") if first is not None else ""
      header = header.replace(" ", "")
      if header != layout.ratings_header:
        raise ValueError(f"{name}: header {header[:80]!r} is not {layout.ratings_header!r}")
  items_path = _join(path, layout.items_file)
  with text_records.open_file(items_path) as handle:
    text = _decode(handle.read(), layout.encoding, items_path)
  return MovieLensRowParser(layout, layout.item_genres(text), min_positive_rating)

