"""The MovieLens family: each layout parses to the exact events, detection, the label rule."""

import os

import apache_beam as beam
from apache_beam.testing.util import assert_that, equal_to
import pytest

from components import events, movielens
from components.events import Event, RowError
from components.text_records import RawRecord

# Two ratings per layout (one positive at the default 4 stars), plus layout quirks.
ML_100K = {
    "u.data": "196\t242\t3\t881250949\n186\t302\t5\t891717742\n",
    "u.item": ("242|Kolya (1996)|24-Jan-1997||http://x|0|0|0|0|0|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"
               "302|L.A. Confidential (1997)|01-Jan-1997||http://x|0|0|0|0|0|0|1|0|0|0|1|0|0"
               "|1|0|0|1|0|0\n"
               "303|Café Flore (1997)|01-Jan-1997||http://x|" + "|".join(["0"] * 19) + "\n"),
}
ML_1M = {
    "ratings.dat": "1::1193::5::978300760\n2::3107::3::978299026\n",
    # Latin-1 titles, as GroupLens ships them.
    "movies.dat": ("1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
                   "3107::Backdraft (1991)::Action|Drama\n"
                   "3108::Misérables, Les (1995)::Drama|Musical\n"),
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
}
ML_10M = {
    "ratings.dat": "1::122::4.5::838985046\n1::185::3.5::838983525\n",
    "movies.dat": ("122::Boomerang (1992)::Comedy|Romance\n"
                   "185::Net, The (1995)::Action|Crime|Thriller\n"
                   "64976::Hexed (1993)::(no genres listed)\n"),
}
ML_LATEST = {
    "ratings.csv": ("userId,movieId,rating,timestamp\n"
                    "1,1,4.0,964982703\n"
                    "1,318,3.5,964983000\n"
                    "7,114335,0.5,1500000000\n"),
    "movies.csv": ("movieId,title,genres\n"
                   "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
                   "318,\"Shawshank Redemption, The (1994)\",Crime|Drama\n"
                   "114335,La cravate (1957),(no genres listed)\n"
                   "2,\"Amélie, \"\"Le fabuleux destin\"\" (2001)\",Comedy|Romance\n"),
    "links.csv": "movieId,imdbId,tmdbId\n1,0114709,862\n",
}
_ENCODINGS = {"u.item": "latin-1", "movies.dat": "latin-1"}


def _write(directory, files):
  os.makedirs(directory, exist_ok=True)
  for name, text in files.items():
    with open(os.path.join(directory, name), "wb") as handle:
      handle.write(text.encode(_ENCODINGS.get(name, "utf-8")))
  return str(directory)


def _events(directory, min_positive_rating=4.0):
  """Every event of the directory's ratings file, read line by line."""
  from components import sources
  from eta_ctr.config import SourceConfig
  source = SourceConfig(format="movielens", path=directory,
                        min_positive_rating=min_positive_rating)
  [ratings] = sources.input_files(source)
  parser = sources.make_parser(source)
  with open(ratings, encoding="utf-8") as handle:
    lines = handle.read().splitlines()
  if movielens.has_header([ratings]):
    lines = lines[1:]
  return [parser(RawRecord(ratings, number, text=line))._replace(raw="", ignored=())
          for number, line in enumerate(lines, 2 if movielens.has_header([ratings]) else 1)]


@pytest.mark.parametrize("files, layout, expected", [
    (ML_100K, "ml-100k", [Event("196", "242", "Comedy", 881250949, 0),
                          Event("186", "302", "Crime", 891717742, 1)]),
    (ML_1M, "ml-1m", [Event("1", "1193", "Drama", 978300760, 1),
                      Event("2", "3107", "Action", 978299026, 0)]),
    (ML_10M, "ml-10m", [Event("1", "122", "Comedy", 838985046, 1),
                        Event("1", "185", "Action", 838983525, 0)]),
    (ML_LATEST, "ml-latest", [Event("1", "1", "Adventure", 964982703, 1),
                              Event("1", "318", "Crime", 964983000, 0),
                              Event("7", "114335", "unknown", 1500000000, 0)]),
])
def test_each_layout_is_detected_and_parses_to_the_exact_events(tmp_path, files, layout,
                                                                  expected):
  directory = _write(tmp_path / layout, files)
  assert movielens.detect(directory).name == layout
  assert _events(directory) == expected


def test_items_files_quoted_commas_latin1_titles_and_no_genres():
  csv_genres = movielens.layout_named("ml-latest").item_genres(ML_LATEST["movies.csv"])
  assert csv_genres == {"1": ("Adventure", "Animation", "Children", "Comedy", "Fantasy"),
                        "318": ("Crime", "Drama"), "114335": (), "2": ("Comedy", "Romance")}
  latin1 = ML_1M["movies.dat"].encode("latin-1").decode("latin-1")
  assert movielens.layout_named("ml-1m").item_genres(latin1)["3108"] == ("Drama", "Musical")
  assert movielens.layout_named("ml-10m").item_genres(ML_10M["movies.dat"])["64976"] == ()
  assert movielens.layout_named("ml-100k").item_genres(ML_100K["u.item"]) == {
      "242": ("Comedy",), "302": ("Crime", "Film-Noir", "Mystery", "Thriller"), "303": ()}
  assert [movielens.first_genre(genres) for genres in csv_genres.values()] == [
      "Adventure", "Crime", "unknown", "Comedy"]


def test_the_label_threshold_is_the_configured_one(tmp_path):
  directory = _write(tmp_path / "ml-latest", ML_LATEST)
  assert [e.label for e in _events(directory)] == [1, 0, 0]
  assert [e.label for e in _events(directory, min_positive_rating=3.5)] == [1, 1, 0]
  assert [e.label for e in _events(directory, min_positive_rating=0.5)] == [1, 1, 1]
  assert [e.label for e in _events(directory, min_positive_rating=4.5)] == [0, 0, 0]


def test_min_positive_rating_flag_reaches_the_source(tmp_path):
  from eta_ctr import cli, flags
  directory = _write(tmp_path / "ml-latest", ML_LATEST)
  parser = cli.build_parser()
  args = parser.parse_args(["ingest", "--data", directory, "--format", "movielens",
                            "--min-positive-rating", "3.5", "--output", str(tmp_path / "o")])
  assert flags.ingest_config(args).source.min_positive_rating == 3.5
  # --format movielens --data-path DIR without --data: any layout in DIR.
  args = parser.parse_args(["ingest", "--format", "movielens", "--data-path", directory,
                            "--output", str(tmp_path / "o")])
  source = flags.ingest_config(args).source
  assert (source.format, source.path, source.min_positive_rating) == (
      "movielens", directory, 4.0)
  with pytest.raises(SystemExit):  # argparse: not a number of stars in (0, 5]
    parser.parse_args(["ingest", "--min-positive-rating", "6", "--output", "o"])
  from eta_ctr.config import SourceConfig
  with pytest.raises(ValueError, match="min_positive_rating"):
    SourceConfig(format="movielens", path=directory, min_positive_rating=0)


def test_detection_errors_name_what_was_looked_for(tmp_path):
  empty = tmp_path / "empty"
  empty.mkdir()
  with pytest.raises(FileNotFoundError) as error:
    movielens.detect(str(empty))
  message = str(error.value)
  for part in ("u.data + u.item (ml-100k)", "ratings.dat + movies.dat + users.dat (ml-1m)",
               "ratings.dat + movies.dat (ml-10m)",
               "ratings.csv + movies.csv (ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m)",
               "found none of them"):
    assert part in message
  half = _write(tmp_path / "half", {"ratings.csv": ML_LATEST["ratings.csv"]})
  with pytest.raises(FileNotFoundError, match="found ratings.csv$"):
    movielens.detect(half)
  both = _write(tmp_path / "both", {**ML_100K, **ML_LATEST})
  with pytest.raises(ValueError, match="several MovieLens layouts"):
    movielens.detect(both)
  from eta_ctr import cli
  with pytest.raises(SystemExit, match="looked for u.data"):
    cli.main(["ingest", "--format", "movielens", "--data-path", str(empty),
              "--output", str(tmp_path / "out")])


def _reason(parser, line):
  with pytest.raises(RowError) as error:
    parser(RawRecord("ratings", 1, text=line))
  return error.value.reason, error.value.detail


def test_bad_rows_get_their_reasons():
  whole = movielens.MovieLensRowParser(movielens.layout_named("ml-1m"), {"10": ("Drama",)})
  assert whole(RawRecord("ratings", 1, text="1::10::5::978300760")).label == 1
  assert _reason(whole, "1::10::4.5::978300760") == (
      events.INVALID_FIELD, "rating '4.5' is not a whole number 1-5")
  assert _reason(whole, "1::11::4::978300760") == (
      events.INVALID_FIELD, "item '11' is not in movies.dat")
  assert _reason(whole, "1::10::4")[0] == events.MALFORMED_ROW
  assert _reason(whole, "1::10::4::noon")[0] == events.BAD_TIMESTAMP
  half = movielens.MovieLensRowParser(movielens.layout_named("ml-latest"),
                                      {"10": ("Drama",)})
  assert half(RawRecord("ratings", 1, text="1,10,0.5,964982703")).label == 0
  for rating in ("0", "5.5", "4.25", "nan", "-1", "", "4,5"):
    reason, _ = _reason(half, f"1,10,{rating},964982703")
    assert reason in (events.INVALID_FIELD, events.MALFORMED_ROW), rating
  assert _reason(half, "1,10,4.25,964982703") == (
      events.INVALID_FIELD, "rating '4.25' is not 0.5-5 in steps of 0.5")
  assert _reason(half, ",10,4.0,964982703")[0] == events.MISSING_FIELD


def test_a_ratings_csv_with_another_header_is_refused(tmp_path):
  directory = _write(tmp_path / "swapped", {
      **ML_LATEST, "ratings.csv": "movieId,userId,rating,timestamp\n1,1,4.0,964982703\n"})
  from components import sources
  from eta_ctr.config import SourceConfig
  with pytest.raises(ValueError, match="is not 'userId,movieId,rating,timestamp'"):
    sources.make_parser(SourceConfig(format="movielens", path=directory))


def test_the_beam_reader_never_yields_the_header(tmp_path):
  """rows_read counts what the reader yields: a header is not a row."""
  from components import sources
  from eta_ctr.config import SourceConfig
  source = SourceConfig(format="movielens", path=_write(tmp_path / "ml", ML_LATEST))
  parser = sources.make_parser(source)
  with beam.Pipeline() as pipeline:
    parsed = (pipeline | sources.ReadRawRows(source)
              | beam.Map(lambda record: parser(record)[:5]))
    assert_that(parsed, equal_to([("1", "1", "Adventure", 964982703, 1),
                                  ("1", "318", "Crime", 964983000, 0),
                                  ("7", "114335", "unknown", 1500000000, 0)]))


def test_real_ml_latest_small_counts():
  directory = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "datasets", "ml-latest-small")
  if not os.path.isfile(os.path.join(directory, "ratings.csv")):
    pytest.skip("ml-latest-small not available")
  parsed = _events(directory)
  assert len(parsed) == 100_836
  assert len({event.user_id for event in parsed}) == 610
  assert sum(event.label for event in parsed) == 48_580  # ratings >= 4.0 stars


def test_real_ml_100k_counts():
  directory = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "datasets", "ml-100k")
  if not os.path.isfile(os.path.join(directory, "u.data")):
    pytest.skip("ml-100k not available")
  assert movielens.detect(directory).name == "ml-100k"
  parsed = _events(directory)
  assert len(parsed) == 100_000
  assert len({event.user_id for event in parsed}) == 943
  assert sum(event.label for event in parsed) == 55_375  # ratings >= 4
  toy_story = next(event for event in parsed if event.item_id == "1")
  assert toy_story.category == "Animation"  # Animation|Children's|Comedy: the first


def test_ml_100k_category_is_the_first_genre_flag_set():
  flags = ["0"] * 19
  flags[2] = flags[5] = "1"  # Adventure, Comedy
  text = "7|A film (1995)|01-Jan-1995||http://x|" + "|".join(flags) + "\n"
  text += "8|Nothing (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 19) + "\n"
  assert movielens._genres_from_flags(text) == {"7": ("Adventure", "Comedy"), "8": ()}
  unknown = ["0"] * 19
  unknown[0] = "1"  # u.item's `unknown` flag: no genre (ml-100k's movies 267 and 1373)
  text = "9|unknown|||http://x|" + "|".join(unknown) + "\n"
  assert movielens._genres_from_flags(text) == {"9": ()}


# ------------------------------------------------------------- side-feature columns

def _preset(*names):
  from eta_ctr.config import features_from_dicts
  return tuple(spec for name in names
               for spec in features_from_dicts(movielens.FEATURE_PRESETS[name]))


USERS_AND_GENRES = ("movielens-users", "movielens-genres")


def _parser(directory, features):
  from components import sources
  from eta_ctr.config import SourceConfig
  return sources.make_parser(SourceConfig(format="movielens", path=str(directory)), features)


def _side(parser, line):
  """{feature: stored value} of one ratings line."""
  event = parser(RawRecord("ratings", 1, text=line))
  return dict(zip((spec.name for spec in parser.features), event.side))


def _real(name, marker):
  directory = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "..", "shared", "datasets", name)
  if not os.path.isfile(os.path.join(directory, marker)):
    pytest.skip(f"{name} not available")
  return directory


def test_the_presets_declare_the_provided_columns_once():
  features = _preset(*USERS_AND_GENRES)
  assert [(f.name, f.entity, f.kind) for f in features] == [
      ("age", "user", "categorical"), ("gender", "user", "categorical"),
      ("occupation", "user", "categorical"), ("zip_prefix", "user", "categorical"),
      ("genres", "item", "categorical_list")]
  assert tuple(f.name for f in features) == movielens.USER_COLUMNS + movielens.ITEM_COLUMNS


def test_real_ml_100k_user_and_genre_columns():
  directory = _real("ml-100k", "u.user")
  parser = _parser(directory, _preset(*USERS_AND_GENRES))
  # u.user 1|24|M|technician|85711; u.item 1 Toy Story: Animation, Children's, Comedy.
  assert _side(parser, "1\t1\t5\t874965758") == {
      "age": "18", "gender": "M", "occupation": "technician", "zip_prefix": "8",
      "genres": ("Animation", "Children's", "Comedy")}
  # 2|53|F|other|94043 (50-55); 74|39|M|scientist|T8H1N (a Canadian postal code).
  assert _side(parser, "2\t1\t4\t888550871")["age"] == "50"
  assert [_side(parser, "74\t1\t4\t888550871")[name] for name in ("age", "zip_prefix")] == [
      "35", "T"]
  assert _side(parser, "1\t267\t4\t888550871")["genres"] == ()  # u.item's `unknown` flag
  # Every rating's user is in u.user: no missing value, 7 age groups, 19 zip areas.
  with open(os.path.join(directory, "u.data"), encoding="ascii") as handle:
    sides = [parser(RawRecord("u.data", n, text=line)).side
             for n, line in enumerate(handle.read().splitlines(), 1)]
  assert len(sides) == 100_000 and all(all(side[:4]) for side in sides)
  assert sorted({side[0] for side in sides}, key=int) == [
      str(group) for group in movielens.AGE_GROUPS]
  assert len({side[3] for side in sides}) == 19
  assert {side[2] for side in sides} >= {"student", "other", "none", "homemaker"}


def test_real_ml_latest_small_genres_are_the_full_list():
  directory = _real("ml-latest-small", "movies.csv")
  parser = _parser(directory, _preset("movielens-genres"))
  # movies.csv: 1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
  assert _side(parser, "1,1,4.0,964982703") == {
      "genres": ("Adventure", "Animation", "Children", "Comedy", "Fantasy")}
  assert _side(parser, "1,318,4.0,964982703") == {"genres": ("Crime", "Drama")}
  assert _side(parser, "50,114335,3.0,1522446443") == {"genres": ()}  # (no genres listed)
  with pytest.raises(ValueError, match="'age': the ml-latest MovieLens layout provides the "
                                       "feature columns genres; remove"):
    _parser(directory, _preset("movielens-users"))


USERS_DAT = ("1::F::1::10::48067\n"
             "2::M::56::16::70072\n"
             "3::M::30::5::12345\n"      # 30 is no age code
             "4::M::25\n"                # 3 fields
             "5::F::25::21::55455-1234\n"  # occupation code 21
             "::M::25::1::1\n"           # no user id: skipped, logged
             "2::F::18::1::99999\n")     # a repeated id: the first row stays


def test_ml_1m_users_dat_values_and_unusable_rows(tmp_path):
  files = {**ML_1M, "users.dat": USERS_DAT}
  directory = _write(tmp_path / "ml-1m", files)
  parser = _parser(directory, _preset(*USERS_AND_GENRES))
  assert _side(parser, "1::1193::5::978300760") == {
      "age": "1", "gender": "F", "occupation": "K-12 student", "zip_prefix": "4",
      "genres": ("Drama",)}
  assert _side(parser, "2::3107::3::978299026") == {
      "age": "56", "gender": "M", "occupation": "self-employed", "zip_prefix": "7",
      "genres": ("Action", "Drama")}
  assert _reason(parser, "3::1193::5::978300760") == (
      events.INVALID_FIELD,
      "age '30' is not an ml-1m age code (1, 18, 25, 35, 45, 50, 56) (users.dat line 3)")
  assert _reason(parser, "4::1193::5::978300760") == (
      events.INVALID_FIELD,
      "the user's row in users.dat line 4 has 3 fields separated by '::', expected 5")
  assert _reason(parser, "5::1193::5::978300760") == (
      events.INVALID_FIELD,
      "occupation '21' is not an ml-1m occupation code 0-20 (users.dat line 5)")
  # An unusable column that is not declared does not reject the rating.
  gender_only = _parser(directory, (_preset("movielens-users")[1],))
  assert _side(gender_only, "3::1193::5::978300760") == {"gender": "M"}
  assert gender_only(RawRecord("r", 1, text="5::1193::5::978300760")).ignored == (
      "age", "genres", "occupation", "zip_prefix")


def test_ml_100k_u_user_ages_go_into_ml_1m_groups():
  text = "".join(f"{n}|{age}|M|writer|0{n}\n" for n, age in enumerate(
      (7, 17, 18, 24, 25, 44, 45, 49, 50, 55, 56, 73), 1))
  users = movielens.layout_named("ml-100k").user_profiles(text)
  assert [users[str(n)]["age"] for n in range(1, 13)] == [
      "1", "1", "18", "18", "25", "35", "45", "45", "50", "50", "56", "56"]
  bad = movielens.layout_named("ml-100k").user_profiles("1|0|M|x|1\n2|forty|F|x|2\n3||F||\n")
  assert bad["1"]["age"] == movielens.Unusable(
      "age '0' is not a whole number of years 1-120 (u.user line 1)")
  assert isinstance(bad["2"]["age"], movielens.Unusable)
  assert bad["3"] == {"age": None, "gender": "F", "occupation": None, "zip_prefix": None}


def test_a_user_missing_from_u_user_gets_the_missing_values(tmp_path):
  """The join is by user id (one profile snapshot per user): every rating of a
  user in u.user gets that row's values; a user without a row gets missing ones
  ("" / no values, or the declared default when the example is written)."""
  from components import side_features
  from eta_ctr.config import FeatureSpec
  directory = _write(tmp_path / "ml-100k", {
      **ML_100K, "u.user": "196|49|M|writer|55105\n"})  # 186 has no row
  parser = _parser(directory, _preset(*USERS_AND_GENRES))
  profile = {"age": "45", "gender": "M", "occupation": "writer", "zip_prefix": "5"}
  assert _side(parser, "196\t242\t3\t881250949") == {**profile, "genres": ("Comedy",)}
  assert _side(parser, "196\t302\t5\t891717742") == {
      **profile, "genres": ("Crime", "Film-Noir", "Mystery", "Thriller")}
  assert _side(parser, "186\t302\t5\t891717742") == {
      "age": "", "gender": "", "occupation": "", "zip_prefix": "",
      "genres": ("Crime", "Film-Noir", "Mystery", "Thriller")}
  with_default = FeatureSpec("occupation", "user", "categorical", default="none")
  event = _parser(directory, (with_default,))(RawRecord("r", 1, text="186\t302\t5\t891717742"))
  assert side_features.example_value(with_default, event.side[0]) == b"none"
  assert side_features.is_missing_value(with_default, event.side[0])


def test_refused_declarations_name_the_feature(tmp_path):
  from eta_ctr.config import FeatureSpec
  no_users = _write(tmp_path / "ml-100k", ML_100K)  # no u.user
  with pytest.raises(ValueError, match="'age': the ml-100k MovieLens layout provides the "
                                       "feature columns genres; its user columns age, gender, "
                                       "occupation, zip_prefix need u.user"):
    _parser(no_users, _preset("movielens-users"))
  with pytest.raises(ValueError, match="'genres': a movie's genres are a list; declare it "
                                       "categorical_list, not categorical"):
    _parser(no_users, (FeatureSpec("genres", "item", "categorical"),))
  with pytest.raises(ValueError, match="'genres': a MovieLens item column, declared as user"):
    _parser(no_users, (FeatureSpec("genres", "user", "categorical_list"),))
  with pytest.raises(ValueError, match="'device': the ml-100k MovieLens layout provides"):
    _parser(no_users, (FeatureSpec("device", "context", "categorical"),))
