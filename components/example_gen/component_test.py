"""How a source path becomes the driver's input_base and pattern."""

from components.example_gen.component import _input_base_and_pattern


def test_files_globs_and_directories_local_or_bucket(tmp_path):
  assert _input_base_and_pattern("gs://b/logs/day1.csv", "csv") == ("gs://b/logs", "day1.csv")
  assert _input_base_and_pattern("gs://b/logs/*.csv", "csv") == ("gs://b/logs", "*.csv")
  assert _input_base_and_pattern("gs://b/logs/", "csv") == ("gs://b/logs", "*")
  assert _input_base_and_pattern(str(tmp_path), "jsonl") == (str(tmp_path), "*")
  assert _input_base_and_pattern("gs://b/ml-100k", "movielens") == ("gs://b/ml-100k", "[mru]*")
