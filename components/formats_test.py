"""The format table: names, extension guessing, directory selection, and every
format's reader + parser on a file of its own."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from components import events, formats


def test_names_are_unique_and_config_accepts_exactly_them():
  from eta_ctr.config import SourceConfig
  assert len(set(formats.FORMAT_NAMES)) == len(formats.FORMATS)
  for name in formats.FORMAT_NAMES:
    assert SourceConfig(format=name).format == name
    assert formats.get(name).name == name
  with pytest.raises(ValueError, match="unknown format 'xml'"):
    formats.get("xml")


@pytest.mark.parametrize("path,expected", [
    ("logs/a.csv", "csv"), ("gs://b/logs/a.CSV.gz", "csv"), ("a.jsonl", "jsonl"),
    ("a.json", "jsonl"), ("a.jsonl.gz", "jsonl"), ("part-0.parquet", "parquet"),
    ("logs/*.csv", "csv"), ("a.txt", None), ("dir/", None), ("a.gz", None)])
def test_format_from_extension(path, expected):
  assert formats.format_of_path(path) == expected


def test_extension_guess_is_unambiguous():
  """Two guessable formats never share an ending (taobao .csv is not guessed)."""
  seen = {}
  for fmt in formats.FORMATS:
    if fmt.guessed_from_extension:
      for extension in fmt.extensions:
        assert extension not in seen, (extension, seen.get(extension), fmt.name)
        seen[extension] = fmt.name


def test_directory_selection_keeps_the_format_files_and_skips_hidden_ones():
  csv = formats.get("csv")
  files = ["d/a.csv", "d/b.csv.gz", "d/notes.txt", "d/.hidden.csv", "d/_SUCCESS"]
  assert formats.select_files(csv, files) == ["d/a.csv", "d/b.csv.gz"]
  assert formats.select_files(csv, ["d/part-0", "d/_tmp"]) == ["d/part-0"]


ROW = {"user_id": "u1", "item_id": "i1", "category": "c1", "timestamp": 1_600_000_000,
       "label": 1}


def _write(tmp_path, name):
  """A one-event file in format `name`; returns its path (a directory for movielens)."""
  if name == "csv":
    path = tmp_path / "log.csv"
    path.write_text("label,timestamp,item_id,user_id,category\n1,1600000000,i1,u1,c1\r\n")
  elif name == "jsonl":
    path = tmp_path / "log.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
  elif name == "parquet":
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = tmp_path / "log.parquet"
    pq.write_table(pa.table({k: [v] for k, v in ROW.items()}), str(path))
  elif name == "taobao":
    path = tmp_path / "UserBehavior.csv"
    path.write_text("u1,i1,c1,pv,1600000000\n")
  elif name == "movielens":
    path = tmp_path / "ml"
    path.mkdir()
    (path / "u.data").write_text("u1\ti1\t5\t1600000000\n")
    (path / "u.item").write_text("i1|Film (1995)|01-Jan-1995||http://x|0|0|0|0|0|0|0|0|0|0|0|0|0"
                                 "|0|0|0|0|0|1\n", encoding="latin-1")
  else:
    raise AssertionError(f"no test file for the new format {name!r}: add one here")
  return str(path)


@pytest.mark.parametrize("name", formats.FORMAT_NAMES)
def test_every_format_reads_and_parses_one_event(tmp_path, name):
  from components import sources
  from eta_ctr.config import SourceConfig
  source = SourceConfig(format=name, path=_write(tmp_path, name))
  parser = sources.make_parser(source)
  with beam.Pipeline() as pipeline:
    parsed = (pipeline | sources.ReadRawRows(source)
              | beam.Map(lambda raw: parser(raw)._replace(raw="", ignored=())))
    category = "Western" if name == "movielens" else "c1"
    assert_that(parsed, equal_to([events.Event("u1", "i1", category, 1_600_000_000, 1)]))
