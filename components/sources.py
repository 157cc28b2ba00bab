"""Click-log sources: which files a SourceConfig names, and how to read and parse them.

`read_raw_rows` gives a PCollection of raw records (text lines, or dicts for
Parquet) and `make_parser` the matching row parser; both run on any Beam runner.
"""

import os
from typing import Callable, List

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components import parsing
from eta_ctr.config import SourceConfig

MOVIELENS_RATINGS = "u.data"
MOVIELENS_ITEMS = "u.item"
_EXTENSIONS = {"csv": (".csv", ".csv.gz"), "jsonl": (".jsonl", ".json", ".jsonl.gz"),
               "parquet": (".parquet",), "taobao": (".csv", ".csv.gz")}


def input_files(source: SourceConfig) -> List[str]:
  """The files the source names (a file, a directory or a glob), sorted.

  A directory contributes its files with the format's extension (all its files
  if none has one); hidden and `_`-prefixed files are skipped.
  """
  if not source.path:
    raise ValueError(f"no path given for the {source.format} click log")
  if source.format == "movielens":
    pattern = os.path.join(source.path, MOVIELENS_RATINGS)
  elif os.path.isdir(source.path):
    pattern = os.path.join(source.path, "*")
  else:
    pattern = source.path
  files = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
  files = [f for f in files if not os.path.basename(f).startswith((".", "_"))]
  whole_directory = os.path.isdir(source.path) or source.path.endswith("/*")
  if whole_directory and source.format in _EXTENSIONS:
    files = [f for f in files if f.endswith(_EXTENSIONS[source.format])] or files
  if not files:
    raise FileNotFoundError(f"no {source.format} click-log files match {pattern!r}")
  return files


def _read_text(path: str, encoding: str = "utf-8") -> str:
  with FileSystems.open(path) as handle:
    return handle.read().decode(encoding)


def _first_line(path: str) -> str:
  with FileSystems.open(path) as handle:
    return handle.readline().decode("utf-8-sig").rstrip("\r\n")


def make_parser(source: SourceConfig) -> Callable:
  """The row parser of the source's format (reads the CSV header or u.item once)."""
  if source.format == "csv":
    return parsing.CsvRowParser(
        parsing._split_csv_line(_first_line(input_files(source)[0])))
  if source.format == "jsonl":
    return parsing.JsonLinesRowParser()
  if source.format == "parquet":
    return parsing.RecordRowParser()
  if source.format == "taobao":
    return parsing.TaobaoRowParser()
  if source.format == "movielens":
    items_path = os.path.join(source.path, MOVIELENS_ITEMS)
    # u.item is Latin-1 (accented film titles).
    return parsing.MovieLensRowParser(
        parsing.movielens_item_genres(_read_text(items_path, "latin-1")))
  raise ValueError(f"unknown format {source.format!r}")


class ReadRawRows(beam.PTransform):
  """Reads every row of the source's files: str lines, or dicts for Parquet."""

  def __init__(self, source: SourceConfig):
    super().__init__()
    self.source = source

  def expand(self, pipeline):
    files = input_files(self.source)
    if self.source.format == "parquet":
      reads = [pipeline | f"Read[{i}]" >> beam.io.ReadFromParquet(path)
               for i, path in enumerate(files)]
      return reads | "MergeFiles" >> beam.Flatten()
    skip_header = 1 if self.source.format == "csv" else 0
    reads = [pipeline | f"Read[{i}]" >> beam.io.ReadFromText(
        path, skip_header_lines=skip_header, strip_trailing_newlines=True)
             for i, path in enumerate(files)]
    lines = reads | "MergeFiles" >> beam.Flatten()
    # Windows line ends: ReadFromText strips "\n" only.
    return lines | "StripCR" >> beam.Map(lambda line: line[:-1] if line.endswith("\r") else line)
