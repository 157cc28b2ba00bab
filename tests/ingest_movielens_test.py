"""`eta ingest` on the real MovieLens-100k: counts, point-in-time histories, bad rows."""

import json
import os
import random
import shutil

import pytest

from components import datasets, events, example_io
from eta_ctr import cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def movielens_dir():
  try:
    return datasets.locate_movielens_100k(download=False)
  except datasets.DatasetNotFound:
    pytest.skip("MovieLens-100k not available (set ETA_DATA_DIR)")


def _check_point_in_time(output_dir):
  seen = 0
  for split in events.SPLITS:
    for ex in example_io.read_examples(output_dir, split):
      timestamp = ex["timestamp"][0]
      hist = ex["hist_timestamps"]
      assert all(t < timestamp for t in hist), "history must be strictly earlier"
      assert hist == sorted(hist, reverse=True)
      assert len(ex["hist_item_ids"]) == len(ex["hist_categories"]) == len(hist)
      seen += 1
  return seen


def _ingest(data_dir, out):
  """`eta ingest --data movielens-100k` -> the ingest report."""
  assert cli.main(["ingest", "--data", "movielens-100k", "--data-path", str(data_dir),
                   "--output", out]) == 0
  with open(os.path.join(out, "ingest_report.json")) as handle:
    return json.load(handle)


def test_movielens_ingest_reads_every_row_and_histories_are_strictly_earlier(
    movielens_dir, tmp_path):
  out = str(tmp_path / "out")
  report = _ingest(movielens_dir, out)
  assert report["rows_read"] == 100_000
  assert report["rows_valid"] == 100_000
  assert report["rows_rejected"]["total"] == 0
  assert report["users"] == 943
  # Each user's last 20% of ratings in eval, the last 10% of the other 80% in valid.
  assert report["examples"] == {"train": 71_943, "valid": 8_057, "eval": 20_000}
  assert _check_point_in_time(out) == 100_000


# A malformed u.data row of each kind the adapter rejects.
_MALFORMED = [
    lambda rng: "garbage",
    lambda rng: f"{rng.randint(1, 943)}\t{rng.randint(1, 1682)}\t4",
    lambda rng: f"{rng.randint(1, 943)}\t{rng.randint(1, 1682)}\t9\t881250949",
    lambda rng: f"{rng.randint(1, 943)}\t{rng.randint(1, 1682)}\t4\tnot-a-time",
    lambda rng: f"\t{rng.randint(1, 1682)}\t4\t881250949",
    lambda rng: f"{rng.randint(1, 943)}\t99999\t4\t881250949",
]


def test_movielens_with_1000_injected_malformed_rows(movielens_dir, tmp_path):
  data_dir = tmp_path / "ml-100k"
  data_dir.mkdir()
  shutil.copy(os.path.join(movielens_dir, "u.item"), data_dir / "u.item")
  with open(os.path.join(movielens_dir, "u.data")) as handle:
    lines = handle.read().splitlines()
  rng = random.Random(0)
  for _ in range(1000):
    lines.insert(rng.randrange(len(lines)), rng.choice(_MALFORMED)(rng))
  (data_dir / "u.data").write_text("\n".join(lines) + "\n")

  out = str(tmp_path / "out")
  report = _ingest(data_dir, out)
  assert report["rows_read"] == 101_000
  assert report["rows_valid"] == 100_000
  assert report["rows_rejected"]["total"] == 1000
  dead = [json.loads(line) for name in os.listdir(os.path.join(out, "dead_letter"))
          for line in open(os.path.join(out, "dead_letter", name))]
  assert len(dead) == 1000
  assert {d["reason"] for d in dead} == {events.MALFORMED_ROW, events.INVALID_FIELD,
                                         events.BAD_TIMESTAMP, events.MISSING_FIELD}
