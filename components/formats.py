"""The click-log formats: one table, one row per format.

Each `ClickLogFormat` says which files it reads, how Beam reads them and how a
raw record becomes an `Event`. Adding a format means adding a row to `FORMATS`
here (and a test in formats_test.py); the CLI, the config validation, the Beam
ingest, the TFX ExampleGen and the Kubeflow compile all read this table.

This module imports no Beam or TensorFlow at import time (the CLI reads it to
parse flags); a reader imports Beam when it is called.
"""

import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from components import movielens, parsing

# reader(pipeline, files) -> PCollection of text_records.RawRecord.
Reader = Callable[[Any, Sequence[str]], Any]
# parser_factory(path, files, **source options) -> callable(RawRecord) -> Event
# (raises RowError); see ClickLogFormat.make_parser.
ParserFactory = Callable[[str, Sequence[str]], Callable]


@dataclasses.dataclass(frozen=True)
class ClickLogFormat:
  """One click-log format.

  Attributes:
    name: the `--format` / `SourceConfig.format` value.
    description: one line for `--help` and the README.
    extensions: file-name endings of its files (lower case). In a directory only
      these files are read (all files when none has one).
    guessed_from_extension: whether a path ending in one of `extensions` means
      this format when no --format is given (False where another format shares
      the ending).
    reader: reads the files into raw records on any Beam runner.
    parser_factory: the row parser for the source path and its files (may read
      a header or a side file once, at pipeline construction).
    directory_source: the path names a directory that is one data set (MovieLens):
      ExampleGen fingerprints `input_pattern` under it and the ingest reads
      `rows_file(path)` there.
    input_pattern: the files under a directory path that ExampleGen fingerprints
      (and so decide its cache); fixed, as the pipeline is built before the
      path can be read.
    rows_file: for a directory_source, directory -> the name of the file holding
      the rows (it may look at the directory's files, e.g. MovieLens' layout).
    source_options: SourceConfig fields handed to parser_factory as keyword
      arguments (e.g. MovieLens' min_positive_rating).
    model_defaults: ModelConfig fields that suit this data (e.g. shorter
      sequences for MovieLens-100k).
    supports_features: its rows may carry declared side-feature columns
      (components/side_features.py); parser_factory then takes `features`.
  """
  name: str
  description: str
  extensions: Tuple[str, ...]
  guessed_from_extension: bool
  reader: Reader
  parser_factory: ParserFactory
  directory_source: bool = False
  input_pattern: str = "*"
  rows_file: Optional[Callable[[str], str]] = None
  source_options: Tuple[str, ...] = ()
  model_defaults: Dict[str, Any] = dataclasses.field(default_factory=dict)
  supports_features: bool = False

  def make_parser(self, source, files: Sequence[str], features: Sequence[Any] = ()) -> Callable:
    """The row parser for a SourceConfig `source` whose files are `files`:
    parser_factory(source.path, files, **the source_options fields of source),
    with `features=` the declared side features (FeatureSpecs) when there are any.

    Raises:
      ValueError: features are declared and this format carries none.
    """
    options = {name: getattr(source, name) for name in self.source_options}
    if features:
      if not self.supports_features:
        raise ValueError(f"the {self.name} format has no side-feature columns; declare "
                         f"features for {', '.join(feature_format_names())} logs")
      options["features"] = tuple(features)
    return self.parser_factory(source.path, files, **options)


def _read_text_records(pipeline, files: Sequence[str], quoted_line_breaks: bool,
                       skip_header: bool):
  import apache_beam as beam  # on use: the CLI imports this table
  from components import text_records  # pylint: disable=g-import-not-at-top
  return (pipeline
          | "Files" >> beam.Create(list(files))
          | "Records" >> beam.FlatMap(text_records.read_file, quoted_line_breaks,
                                      skip_first=skip_header)
          # A file is read by one worker; spread its records over the others.
          | "Spread" >> beam.Reshuffle())


def read_csv_records(pipeline, files: Sequence[str]):
  """RFC 4180 records of every file but each file's first (its header)."""
  return _read_text_records(pipeline, files, quoted_line_breaks=True, skip_header=True)


def read_csv_records_without_header(pipeline, files: Sequence[str]):
  """RFC 4180 records of every file (no header)."""
  return _read_text_records(pipeline, files, quoted_line_breaks=True, skip_header=False)


def read_lines(pipeline, files: Sequence[str]):
  """Every non-blank line of every file (JSON Lines, tab-separated)."""
  return _read_text_records(pipeline, files, quoted_line_breaks=False, skip_header=False)


def _parquet_rows(path: str):
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  from components.text_records import RawRecord  # pylint: disable=g-import-not-at-top
  with FileSystems.open(path) as handle:
    parquet = pq.ParquetFile(handle)
    number = 0
    for batch in parquet.iter_batches():
      for row in batch.to_pylist():
        number += 1
        yield RawRecord(path, number, fields=row)


def read_parquet_records(pipeline, files: Sequence[str]):
  """Every row of every Parquet file, each file with its own schema."""
  import apache_beam as beam  # on use: the CLI imports this table
  return (pipeline
          | "Files" >> beam.Create(list(files))
          | "Rows" >> beam.FlatMap(_parquet_rows)
          | "Spread" >> beam.Reshuffle())


def _csv_parser(path: str, files: Sequence[str], features: Sequence[Any] = ()):
  """Each file's own header governs that file (headers may order columns
  differently); a file without a usable header, or lacking a declared feature
  column, is an error naming it."""
  from components import text_records  # pylint: disable=g-import-not-at-top
  headers = {}
  for name in files:
    header = text_records.first_record(name, quoted_line_breaks=True)
    if header is None or header.text is None:
      raise ValueError(f"{name}: no CSV header (the file is empty or its first line is "
                       "not UTF-8 text)")
    headers[name] = parsing.split_csv_line(header.text)
  return parsing.CsvRowParser(headers, features)


def _parquet_schema_columns(path: str) -> List[str]:
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  with FileSystems.open(path) as handle:
    return list(pq.ParquetFile(handle).schema_arrow.names)


def _parquet_parser(path: str, files: Sequence[str], features: Sequence[Any] = ()):
  """Each file's own schema; with declared features, a file whose schema lacks
  one is an error naming the column and the file (its schema is read once)."""
  if features:
    for name in files:
      parsing.check_feature_columns(_parquet_schema_columns(name), name, features,
                                    "Parquet schema")
  return parsing.RecordRowParser(features)


def read_movielens_ratings(pipeline, files: Sequence[str]):
  """Every line of a MovieLens ratings file but its header (ratings.csv has one)."""
  return _read_text_records(pipeline, files, quoted_line_breaks=False,
                            skip_header=movielens.has_header(files))


FORMATS: Tuple[ClickLogFormat, ...] = (
    ClickLogFormat(
        name="csv", description="CSV with a header row naming the columns (any order)",
        extensions=(".csv", ".csv.gz"), guessed_from_extension=True,
        reader=read_csv_records, parser_factory=_csv_parser, supports_features=True),
    ClickLogFormat(
        name="jsonl", description="one JSON object per line",
        extensions=(".jsonl", ".json", ".jsonl.gz", ".json.gz"), guessed_from_extension=True,
        reader=read_lines, supports_features=True,
        parser_factory=lambda path, files, features=(): parsing.JsonLinesRowParser(features)),
    ClickLogFormat(
        name="parquet", description="Parquet files with the columns",
        extensions=(".parquet",), guessed_from_extension=True,
        reader=read_parquet_records, parser_factory=_parquet_parser,
        supports_features=True),
    ClickLogFormat(
        name="movielens", description="a MovieLens directory, its layout told from its "
        "files (ml-100k, ml-1m, ml-10m, ml-latest[-small], ml-20m/25m/32m); "
        "label = rating >= --min-positive-rating (4), category = first genre; feature "
        "columns genres (item) and, with u.user / users.dat, age, gender, occupation, "
        "zip_prefix (user): see --feature-preset",
        extensions=(), guessed_from_extension=False, reader=read_movielens_ratings,
        parser_factory=movielens.make_parser, directory_source=True,
        input_pattern=movielens.INPUT_PATTERN, rows_file=movielens.rows_file,
        source_options=("min_positive_rating",), supports_features=True,
        model_defaults=dict(long_seq_len=256, short_seq_len=16, top_k=16)),
    ClickLogFormat(
        name="taobao", description="Taobao UserBehavior CSV without header "
        "(user,item,category,behavior,timestamp); every row is a positive",
        extensions=(".csv", ".csv.gz"), guessed_from_extension=False,
        reader=read_csv_records_without_header,
        parser_factory=lambda path, files: parsing.TaobaoRowParser()),
)

FORMAT_NAMES: Tuple[str, ...] = tuple(f.name for f in FORMATS)
_BY_NAME = {f.name: f for f in FORMATS}


def feature_format_names() -> Tuple[str, ...]:
  """The formats whose rows may carry side features (supports_features)."""
  return tuple(f.name for f in FORMATS if f.supports_features)


def get(name: str) -> ClickLogFormat:
  """The format called `name`; raises ValueError naming the known ones."""
  if name not in _BY_NAME:
    raise ValueError(f"unknown format {name!r}; expected one of {FORMAT_NAMES}")
  return _BY_NAME[name]


def format_of_path(path: str) -> Optional[str]:
  """The format a file path's extension implies (longest matching ending), or None."""
  lower = path.lower().rstrip("/")
  best, best_length = None, 0
  for fmt in FORMATS:
    if not fmt.guessed_from_extension:
      continue
    for extension in fmt.extensions:
      if lower.endswith(extension) and len(extension) > best_length:
        best, best_length = fmt.name, len(extension)
  return best


def select_files(fmt: ClickLogFormat, files: List[str]) -> List[str]:
  """A directory's files that are this format's: hidden and `_`-prefixed files
  never; those with the format's extensions, or all when none has one."""
  files = [f for f in files if not os.path.basename(f).startswith((".", "_"))]
  if fmt.extensions:
    files = [f for f in files if f.lower().endswith(fmt.extensions)] or files
  return files
