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
u.item genre flag but `unknown`). The label is 1 when the rating is at least
`SourceConfig.min_positive_rating` (default 4.0), else 0; on half-star layouts
that makes 4.0, 4.5 and 5.0 positives and 3.5 a negative, the same line as on
whole-star data (see DEFAULT_MIN_POSITIVE_RATING).

Side-feature columns (components/side_features.py): the reader joins these onto
every ratings row, so they can be declared as features (`FEATURE_PRESETS`, or
--feature NAME:ENTITY:KIND with the entity and kind below); undeclared, the
ingest reports them once as ignored columns, as any log's extra column:

  column      entity  layouts          value
  genres      item    all              every genre of the movie, in the items
                                       file's order (a list: declare it
                                       categorical_list); none for "(no genres
                                       listed)" and u.item's `unknown` flag
  age         user    ml-100k, ml-1m   the age group, as ml-1m codes it (text):
                                       "1" under 18, "18" 18-24, "25" 25-34,
                                       "35" 35-44, "45" 45-49, "50" 50-55, "56"
                                       56+; ml-100k's age in years is put in its
                                       group, so both layouts share one vocabulary
  gender      user    ml-100k, ml-1m   "M" or "F", as shipped
  occupation  user    ml-100k, ml-1m   ml-100k's name as shipped ("student");
                                       ml-1m's code 0-20 as its README names it
                                       ("college/grad student", ML_1M_OCCUPATIONS)
  zip_prefix  user    ml-100k, ml-1m   the first ZIP_PREFIX_LENGTH (1) character
                                       of the zip code: a US ZIP's national area
                                       (0 New England ... 9 the West Coast), a
                                       Canadian postal code's province letter

The user columns come from the users file (ml-100k's u.user, ml-1m's
users.dat), read once when the parser is built and only when one of them is
declared. It is one snapshot per user (what the user gave at sign-up), so the
join is by user id alone: every rating of a user gets the same values, and no
value is from the future. A user without a row in the users file gets missing
values (side_features: the declared `default`, else an OOV bucket; "" in the
example). A users-file row that is unusable for a declared column (not 5
fields, an age that is no whole number of years 1-120 or no ml-1m age code, an
ml-1m occupation code outside 0-20) makes each rating of that user an
`invalid_field` dead letter naming the file, line and problem; a users-file row
without a usable user id is skipped with a logged warning (its ratings get
missing values). Declaring a column the layout lacks, with another entity, or
`genres` as other than categorical_list, is a ValueError when the parser is
built.

A directory's layout is told from the files present (`detect`); the ingest then
reads only its ratings file, the items file once when the parser is built, and
the users file as above.
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
from typing import (Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence,
                    Tuple)

from components import events, parsing, side_features, text_records
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
# Genre names that mean the movie has none.
_NOT_GENRES = (NO_GENRES, ML_100K_GENRES[0])

# The side-feature columns the reader provides (see the module docstring), and
# the entity each must be declared with.
GENRES = "genres"
AGE, GENDER, OCCUPATION, ZIP_PREFIX = "age", "gender", "occupation", "zip_prefix"
USER_COLUMNS = (AGE, GENDER, OCCUPATION, ZIP_PREFIX)
ITEM_COLUMNS = (GENRES,)
COLUMN_ENTITIES = {**{column: side_features.USER for column in USER_COLUMNS},
                   GENRES: side_features.ITEM}
# Characters of the zip code kept: 1 is the US ZIP's national area (10 values,
# plus Canadian province letters: 19 in ml-100k). 2 would leave 22 of ml-100k's
# 111 values with one user, 3 (the sectional centre) 204 of 382: a second user id.
ZIP_PREFIX_LENGTH = 1
# ml-1m's age groups (its README): each code is the group's lowest age in years,
# but 1 = under 18.
AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)
MIN_AGE, MAX_AGE = 1, 120  # years; an ml-100k age outside them is unusable
# ml-1m's occupation codes 0-20 (its README), by code.
ML_1M_OCCUPATIONS = (
    "other or not specified", "academic/educator", "artist", "clerical/admin",
    "college/grad student", "customer service", "doctor/health care", "executive/managerial",
    "farmer", "homemaker", "K-12 student", "lawyer", "programmer", "retired",
    "sales/marketing", "scientist", "self-employed", "technician/engineer",
    "tradesman/craftsman", "unemployed", "writer")

# Named feature declarations (FeatureSpec fields) of the columns above, for
# `--feature-preset NAME` (eta_ctr/flags.py); entries are dicts because
# eta_ctr.config imports this module.
FEATURE_PRESETS: Dict[str, Tuple[Dict[str, Any], ...]] = {
    "movielens-users": tuple({"name": column, "entity": COLUMN_ENTITIES[column],
                              "kind": side_features.CATEGORICAL} for column in USER_COLUMNS),
    "movielens-genres": ({"name": GENRES, "entity": COLUMN_ENTITIES[GENRES],
                          "kind": side_features.CATEGORICAL_LIST, "separator": "|"},),
}


def _genre_list(names: Iterable[str]) -> Tuple[str, ...]:
  return tuple(name for name in (n.strip() for n in names) if name and name not in _NOT_GENRES)


def first_genre(genres: Sequence[str]) -> str:
  """The event category of a movie with these genres (`unknown` for none)."""
  return genres[0] if genres else events.DEFAULT_CATEGORY


def _genres_from_flags(text: str) -> Dict[str, Tuple[str, ...]]:
  """u.item (id|title|release|video release|url|19 genre flags) -> {id: the genres
  whose flag is set, in flag order}."""
  genres = {}
  for line in text.splitlines():
    if not line.strip():
      continue
    fields = line.split("|")
    flags = fields[5:5 + len(ML_100K_GENRES)]
    genres[fields[0].strip()] = _genre_list(
        ML_100K_GENRES[i] for i, flag in enumerate(flags) if flag.strip() == "1")
  return genres


def _genres_from_fields(rows: Iterable[Sequence[str]],
                        source: str) -> Dict[str, Tuple[str, ...]]:
  """(id, title..., genres) rows -> {id: genres}; unusable rows are logged."""
  genres, skipped = {}, 0
  for row in rows:
    if len(row) < 3 or not row[0].strip():
      skipped += 1
      continue
    genres.setdefault(row[0].strip(), _genre_list(row[-1].split("|")))
  if skipped:
    log.warning("%s: %d rows without an id, title and genres skipped; their movies' "
                "ratings are rejected as invalid_field", source, skipped)
  return genres


def _genres_from_dat(text: str) -> Dict[str, Tuple[str, ...]]:
  """movies.dat: MovieID::Title::Genres (genres `|`-separated)."""
  return _genres_from_fields((line.split("::") for line in text.splitlines() if line.strip()),
                             "movies.dat")


def _genres_from_csv(text: str) -> Dict[str, Tuple[str, ...]]:
  """movies.csv: header movieId,title,genres; RFC 4180 (quoted titles with commas)."""
  rows = csv.reader(io.StringIO(text, newline=""))
  header = [name.strip() for name in next(rows, [])]
  if header[:1] != ["movieId"] or header[-1:] != ["genres"]:
    raise ValueError(f"movies.csv: header {header} is not movieId,title,genres")
  return _genres_from_fields((row for row in rows if row), "movies.csv")


class Unusable(NamedTuple):
  """A users-file value that cannot be used, and why (a phrase naming the file and line)."""
  detail: str


# A users file read: {user id: {column: text value, None (missing) or Unusable}}.
UserTable = Dict[str, Dict[str, Any]]


def _age_group(text: str, ml_1m_code: bool) -> Any:
  """An age field -> its AGE_GROUPS code as text, None when empty, else Unusable."""
  text = text.strip()
  if not text:
    return None
  years = int(text) if text.isdigit() else None
  if ml_1m_code:
    if years not in AGE_GROUPS:
      return Unusable(f"age {text[:20]!r} is not an ml-1m age code {AGE_GROUPS}")
    return str(years)
  if years is None or not MIN_AGE <= years <= MAX_AGE:
    return Unusable(f"age {text[:20]!r} is not a whole number of years {MIN_AGE}-{MAX_AGE}")
  return str(max(group for group in AGE_GROUPS if group <= years))


def _occupation_name(text: str) -> Any:
  """An ml-1m occupation code -> its name, None when empty, else Unusable."""
  text = text.strip()
  if not text:
    return None
  if not text.isdigit() or int(text) >= len(ML_1M_OCCUPATIONS):
    return Unusable(f"occupation {text[:20]!r} is not an ml-1m occupation code "
                    f"0-{len(ML_1M_OCCUPATIONS) - 1}")
  return ML_1M_OCCUPATIONS[int(text)]


def _users(text: str, source: str, separator: str, order: Tuple[str, ...],
           ml_1m_codes: bool) -> UserTable:
  """A users file -> UserTable. `order` names the 4 fields after the user id."""
  users, no_id, repeated = {}, 0, 0
  for number, line in enumerate(text.splitlines(), 1):
    if not line.strip():
      continue
    fields = line.split(separator)
    try:
      user_id = parsing.parse_id(fields[0], events.USER_ID)
    except RowError:
      no_id += 1
      continue
    if user_id in users:
      repeated += 1
      continue
    where = f"{source} line {number}"
    if len(fields) != 1 + len(order):
      problem = Unusable(f"the user's row in {where} has {len(fields)} fields separated "
                         f"by {separator!r}, expected {1 + len(order)}")
      users[user_id] = {column: problem for column in USER_COLUMNS}
      continue
    raw = dict(zip(order, fields[1:]))
    zip_code = raw["zip"].strip()
    row = {AGE: _age_group(raw[AGE], ml_1m_codes),
           GENDER: raw[GENDER].strip() or None,
           OCCUPATION: (_occupation_name(raw[OCCUPATION]) if ml_1m_codes
                        else raw[OCCUPATION].strip() or None),
           ZIP_PREFIX: zip_code[:ZIP_PREFIX_LENGTH] or None}
    users[user_id] = {column: (Unusable(f"{value.detail} ({where})")
                               if isinstance(value, Unusable) else value)
                      for column, value in row.items()}
  if no_id or repeated:
    log.warning("%s: %d rows without a usable user id and %d repeated user ids skipped "
                "(a repeated id keeps its first row)", source, no_id, repeated)
  return users


def _users_from_100k(text: str) -> UserTable:
  """u.user: user id|age (years)|gender|occupation (name)|zip code."""
  return _users(text, "u.user", "|", (AGE, GENDER, OCCUPATION, "zip"), ml_1m_codes=False)


def _users_from_1m(text: str) -> UserTable:
  """users.dat: UserID::Gender::Age (group code)::Occupation (code 0-20)::Zip-code."""
  return _users(text, "users.dat", "::", (GENDER, AGE, OCCUPATION, "zip"), ml_1m_codes=True)


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
    item_genres: items file text -> {movie id: its genres, in order; () for none}.
    also_requires: further files that tell this layout from a later row with the
      same ratings file (ml-1m's users.dat; ml-10m has none).
    users_file: the file of user profiles (None: the layout has none).
    user_profiles: users file text -> UserTable (None without a users file).
  """
  name: str
  releases: Tuple[str, ...]
  ratings_file: str
  items_file: str
  separator: str
  encoding: str
  header: bool
  half_stars: bool
  item_genres: Callable[[str], Dict[str, Tuple[str, ...]]]
  also_requires: Tuple[str, ...] = ()
  users_file: Optional[str] = None
  user_profiles: Optional[Callable[[str], UserTable]] = None

  @property
  def files(self) -> Tuple[str, ...]:
    """Every file whose presence marks this layout."""
    return (self.ratings_file, self.items_file) + self.also_requires

  @property
  def ratings_header(self) -> Optional[str]:
    return "userId,movieId,rating,timestamp" if self.header else None


LAYOUTS: Tuple[Layout, ...] = (
    Layout("ml-100k", ("ml-100k",), "u.data", "u.item", "\t", "latin-1", header=False,
           half_stars=False, item_genres=_genres_from_flags, users_file="u.user",
           user_profiles=_users_from_100k),
    Layout("ml-1m", ("ml-1m",), "ratings.dat", "movies.dat", "::", "latin-1", header=False,
           half_stars=False, item_genres=_genres_from_dat, also_requires=("users.dat",),
           users_file="users.dat", user_profiles=_users_from_1m),
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
    log.warning("%s is not all %s (%s); undecodable bytes replaced (only ids, genres "
                "and user fields are used)", path, encoding, error)
    return data.decode(encoding, "replace")


class MovieLensRowParser:
  """One ratings row of a MovieLens layout -> an Event.

  Args:
    layout: the Layout the row comes from.
    item_genres: {movie id: its genres} from the layout's items file
      (Layout.item_genres).
    min_positive_rating: stars; a rating at or above it is label 1, below it 0.
    features: the declared side features (FeatureSpecs); each must be one of
      `provided_columns(layout, users is not None)` (see check_features).
    users: the layout's users file, read (Layout.user_profiles); None when the
      layout or the directory has none (no user columns are provided); {} when
      it is there but no user column is declared (make_parser does not read it).

  Raises (constructor):
    ValueError: min_positive_rating is not a number in (0, 5], or a declared
      feature is refused (check_features).

  A call takes a text_records.RawRecord (as every row parser) and raises
  RowError: malformed_row (not 4 fields), missing_field /
  invalid_field (ids), invalid_field (a rating off the layout's scale, a movie
  not in the items file, a declared user column whose users-file value is
  unusable or a value breaking its feature's rule), bad_timestamp. The event's
  `ignored` names the provided columns that are not declared.
  """

  def __init__(self, layout: Layout, item_genres: Mapping[str, Sequence[str]],
               min_positive_rating: float = DEFAULT_MIN_POSITIVE_RATING,
               features: Sequence[Any] = (), users: Optional[UserTable] = None):
    check_min_positive_rating(min_positive_rating)
    self.layout = layout
    self.categories = {item: first_genre(genres) for item, genres in item_genres.items()}
    self.min_positive_rating = float(min_positive_rating)
    self.features = tuple(features)
    columns = provided_columns(layout, users is not None)
    check_features(self.features, columns, layout)
    self.ignored = parsing.extra_columns(columns, self.features)
    user_specs = [s for s in self.features if s.entity == side_features.USER]
    item_specs = [s for s in self.features if s.entity == side_features.ITEM]
    # Each declared feature's place: (from the user's values?, index there).
    self._order = tuple((spec.entity == side_features.USER,
                         (user_specs if spec.entity == side_features.USER else item_specs
                          ).index(spec)) for spec in self.features)
    # Stored values per user / movie, parsed once (a str: why they are unusable).
    where = f" (in {layout.users_file})"
    self._user_side = {user: _stored_values(user_specs, row, where)
                       for user, row in (users or {}).items()} if user_specs else {}
    self._absent_user = _stored_values(user_specs, {}, where)
    self._item_side = {item: _stored_values(item_specs, {GENRES: genres},
                                            f" (in {layout.items_file})")
                       for item, genres in item_genres.items()} if item_specs else {}

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
    if item_id not in self.categories:
      raise RowError(events.INVALID_FIELD,
                     f"item {item_id!r} is not in {self.layout.items_file}")
    return Event(user_id=user_id, item_id=item_id, category=self.categories[item_id],
                 timestamp=parsing.parse_timestamp(timestamp),
                 label=int(stars >= self.min_positive_rating), raw=line,
                 side=self._side(user_id, item_id), ignored=self.ignored)

  def _side(self, user_id: str, item_id: str) -> Tuple[Any, ...]:
    """The declared features' stored values of a user's rating of a movie."""
    if not self.features:
      return ()
    user_side = self._user_side.get(user_id, self._absent_user)
    item_side = self._item_side.get(item_id, ())
    for problem in (user_side, item_side):
      if isinstance(problem, str):
        raise RowError(events.INVALID_FIELD, problem)
    return tuple(user_side[index] if of_user else item_side[index]
                 for of_user, index in self._order)

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


def _stored_values(specs: Sequence[Any], row: Mapping[str, Any], where: str) -> Any:
  """The specs' stored values (side_features.parse_value) of one user's or movie's
  row of columns (an absent column is missing), or why one is unusable (a str)."""
  stored = []
  for spec in specs:
    value = row.get(spec.name)
    if isinstance(value, Unusable):
      return value.detail
    try:
      stored.append(side_features.parse_value(spec, value))
    except RowError as error:
      return error.detail + where
  return tuple(stored)


def provided_columns(layout: Layout, with_users: bool) -> Tuple[str, ...]:
  """The side-feature columns the reader joins onto the layout's ratings rows:
  genres, and the user columns when `with_users` (its users file is there)."""
  return ITEM_COLUMNS + (USER_COLUMNS if with_users and layout.users_file else ())


def check_features(features: Sequence[Any], columns: Sequence[str], layout: Layout):
  """Raises ValueError, naming the feature and what to do, when a declared
  feature is not among the provided `columns`, has another entity than the
  column's (COLUMN_ENTITIES), or is `genres` of a kind other than categorical_list."""
  for spec in features:
    if spec.name not in columns:
      lacking = (f"; its user columns {', '.join(USER_COLUMNS)} need {layout.users_file}, "
                 "which the directory lacks" if layout.users_file
                 and spec.name in USER_COLUMNS else "")
      raise ValueError(f"feature {spec.name!r}: the {layout.name} MovieLens layout provides "
                       f"the feature columns {', '.join(columns)}{lacking}; remove the "
                       "declaration")
    if spec.entity != COLUMN_ENTITIES[spec.name]:
      raise ValueError(f"feature {spec.name!r}: a MovieLens {COLUMN_ENTITIES[spec.name]} "
                       f"column, declared as {spec.entity}; declare it with entity "
                       f"{COLUMN_ENTITIES[spec.name]}")
    if spec.name == GENRES and spec.kind != side_features.CATEGORICAL_LIST:
      raise ValueError(f"feature {GENRES!r}: a movie's genres are a list; declare it "
                       f"{side_features.CATEGORICAL_LIST}, not {spec.kind}")


def check_min_positive_rating(value) -> None:
  """Raises ValueError unless `value` is a number of stars in (0, 5]."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
      0 < value <= MAX_RATING):
    raise ValueError(f"min_positive_rating must be a number of stars in (0, {MAX_RATING:g}], "
                     f"got {value!r}")


def make_parser(path: str, files: Sequence[str],
                min_positive_rating: float = DEFAULT_MIN_POSITIVE_RATING,
                features: Sequence[Any] = ()) -> MovieLensRowParser:
  """The parser for the MovieLens directory `path` (the formats table's
  parser_factory): detects the layout, checks the ratings files' header where
  the layout has one, and reads the items file once (and the users file, once,
  when a user column is declared).

  Args:
    path: the directory.
    files: the ratings files the ingest reads (sources.input_files).
    min_positive_rating: stars (see MovieLensRowParser).
    features: the declared side features (FeatureSpecs; see the module docstring).

  Raises:
    FileNotFoundError, ValueError: see detect; ValueError also for a ratings
      header other than userId,movieId,rating,timestamp, an unreadable
      movies.csv header, or a refused feature (check_features).
  """
  layout = detect(path)
  if layout.ratings_header:
    for name in files:
      first = text_records.first_record(name, quoted_line_breaks=False)
      header = (first.text or "") if first is not None else ""
      header = header.replace(" ", "")
      if header != layout.ratings_header:
        raise ValueError(f"{name}: header {header[:80]!r} is not {layout.ratings_header!r}")
  item_genres = layout.item_genres(_read_text(path, layout.items_file, layout.encoding))
  users_path = _join(path, layout.users_file) if layout.users_file else None
  has_users = users_path is not None and _exists(users_path)
  check_features(features, provided_columns(layout, has_users), layout)
  users = None
  if has_users and any(spec.name in USER_COLUMNS for spec in features):
    users = layout.user_profiles(_read_text(path, layout.users_file, layout.encoding))
  elif has_users:
    users = {}  # the columns are there (reported as ignored); nothing declared reads them
  return MovieLensRowParser(layout, item_genres, min_positive_rating, features, users)


def _read_text(directory: str, name: str, encoding: str) -> str:
  path = _join(directory, name)
  with text_records.open_file(path) as handle:
    return _decode(handle.read(), encoding, path)
