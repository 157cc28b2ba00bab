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

from components import parsing

MOVIELENS_RATINGS = "u.data"
MOVIELENS_ITEMS = "u.item"

# reader(pipeline, files) -> PCollection of raw records (str lines, or dicts).
Reader = Callable[[Any, Sequence[str]], Any]
# parser_factory(path, files) -> callable(raw record) -> Event (raises RowError).
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
      `rows_file` there.
    input_pattern: the files under a directory path that ExampleGen fingerprints
      (and so decide its cache).
    rows_file: for a directory_source, the file holding the rows.
    model_defaults: ModelConfig fields that suit this data (e.g. shorter
      sequences for MovieLens-100k).
  """
  name: str
  description: str
  extensions: Tuple[str, ...]
  guessed_from_extension: bool
  reader: Reader
  parser_factory: ParserFactory
  directory_source: bool = False
  input_pattern: str = "*"
  rows_file: Optional[str] = None
  model_defaults: Dict[str, Any] = dataclasses.field(default_factory=dict)


def _read_text_lines(pipeline, files: Sequence[str], skip_header_lines: int = 0):
  import apache_beam as beam  # on use: the CLI imports this table
  reads = [pipeline | f"Read[{i}]" >> beam.io.ReadFromText(
      path, skip_header_lines=skip_header_lines, strip_trailing_newlines=True)
           for i, path in enumerate(files)]
  lines = reads | "MergeFiles" >> beam.Flatten()
  # Windows line ends: ReadFromText strips "\n" only.
  return lines | "StripCR" >> beam.Map(lambda line: line[:-1] if line.endswith("\r") else line)


def read_lines(pipeline, files: Sequence[str]):
  """Every line of every file."""
  return _read_text_lines(pipeline, files)


def read_lines_after_header(pipeline, files: Sequence[str]):
  """Every line of every file but its first (the header)."""
  return _read_text_lines(pipeline, files, skip_header_lines=1)


def read_parquet_records(pipeline, files: Sequence[str]):
  """Every row of every Parquet file, as a dict."""
  import apache_beam as beam  # on use: the CLI imports this table
  reads = [pipeline | f"Read[{i}]" >> beam.io.ReadFromParquet(path)
           for i, path in enumerate(files)]
  return reads | "MergeFiles" >> beam.Flatten()


def _read_text(path: str, encoding: str = "utf-8") -> str:
  from apache_beam.io.filesystems import FileSystems  # any filesystem Beam knows
  with FileSystems.open(path) as handle:
    return handle.read().decode(encoding)


def _first_line(path: str) -> str:
  from apache_beam.io.filesystems import FileSystems
  with FileSystems.open(path) as handle:
    return handle.readline().decode("utf-8-sig").rstrip("\r\n")


def _csv_parser(path: str, files: Sequence[str]):
  return parsing.CsvRowParser(parsing.split_csv_line(_first_line(files[0])))


def _movielens_parser(path: str, files: Sequence[str]):
  # u.item is Latin-1 (accented film titles).
  items = _read_text(os.path.join(path, MOVIELENS_ITEMS), "latin-1")
  return parsing.MovieLensRowParser(parsing.movielens_item_genres(items))


FORMATS: Tuple[ClickLogFormat, ...] = (
    ClickLogFormat(
        name="csv", description="CSV with a header row naming the columns (any order)",
        extensions=(".csv", ".csv.gz"), guessed_from_extension=True,
        reader=read_lines_after_header, parser_factory=_csv_parser),
    ClickLogFormat(
        name="jsonl", description="one JSON object per line",
        extensions=(".jsonl", ".json", ".jsonl.gz", ".json.gz"), guessed_from_extension=True,
        reader=read_lines, parser_factory=lambda path, files: parsing.JsonLinesRowParser()),
    ClickLogFormat(
        name="parquet", description="Parquet files with the columns",
        extensions=(".parquet",), guessed_from_extension=True,
        reader=read_parquet_records,
        parser_factory=lambda path, files: parsing.RecordRowParser()),
    ClickLogFormat(
        name="movielens", description="a MovieLens-100k directory (u.data + u.item); "
        "label = rating >= 4, category = first genre",
        extensions=(), guessed_from_extension=False, reader=read_lines,
        parser_factory=_movielens_parser, directory_source=True, input_pattern="u.*",
        rows_file=MOVIELENS_RATINGS,
        model_defaults=dict(long_seq_len=256, short_seq_len=16, top_k=16)),
    ClickLogFormat(
        name="taobao", description="Taobao UserBehavior CSV without header "
        "(user,item,category,behavior,timestamp); every row is a positive",
        extensions=(".csv", ".csv.gz"), guessed_from_extension=False, reader=read_lines,
        parser_factory=lambda path, files: parsing.TaobaoRowParser()),
)

FORMAT_NAMES: Tuple[str, ...] = tuple(f.name for f in FORMATS)
_BY_NAME = {f.name: f for f in FORMATS}


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
