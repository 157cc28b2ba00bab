"""Click-log sources: which files a SourceConfig names, and how Beam reads them.

The per-format facts (extensions, reader, parser) are rows of
`components.formats.FORMATS`; this module applies them to a path. Both
transforms run on any Beam runner.
"""

import os
from typing import Any, Callable, List, Sequence

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from components import formats
from eta_ctr.config import SourceConfig


def input_files(source: SourceConfig) -> List[str]:
  """The files the source names (a file, a directory or a glob), sorted.

  A directory contributes its files with the format's extension (all its files
  if none has one); hidden and `_`-prefixed files are skipped.

  Raises:
    ValueError: no path.
    FileNotFoundError: nothing matches.
  """
  fmt = formats.get(source.format)
  if not source.path:
    raise ValueError(f"no path given for the {source.format} click log")
  if fmt.directory_source:
    pattern = os.path.join(source.path, fmt.rows_file(source.path))  # movielens: by layout
  elif _is_directory(source.path):
    pattern = source.path.rstrip("/") + "/*"
  else:
    pattern = source.path
  files = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
  whole_directory = pattern.endswith("/*") or source.path.endswith("/*")
  files = formats.select_files(fmt, files) if whole_directory else [
      f for f in files if not os.path.basename(f).startswith((".", "_"))]
  if not files:
    raise FileNotFoundError(f"no {source.format} click-log files match {pattern!r}")
  return files


def _is_directory(path: str) -> bool:
  """A local directory, or a bucket "directory" written with a trailing '/'."""
  return path.endswith("/") or os.path.isdir(path)


def make_parser(source: SourceConfig, features: Sequence[Any] = ()) -> Callable:
  """The row parser of the source's format (reads a CSV header or u.item once),
  reading the declared side `features` too (a file lacking one of their columns
  raises ValueError naming the column and the file)."""
  return formats.get(source.format).make_parser(source, input_files(source), features)


class ReadRawRows(beam.PTransform):
  """Reads every row of the source's files: str lines, or dicts for Parquet."""

  def __init__(self, source: SourceConfig):
    super().__init__()
    self.source = source

  def expand(self, pipeline):
    return formats.get(self.source.format).reader(pipeline, input_files(self.source))
