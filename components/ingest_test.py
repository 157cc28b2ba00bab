"""The Beam ingest on small logs: counts reconcile, dead letters, formats, determinism."""

import glob
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from components import events, example_io, synth
from components.ingest_job import run_ingest
from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig

HEADER = "user_id,item_id,category,timestamp,label"
# One bad row per rejection reason (duplicates are added separately).
BAD_ROWS = {
    events.MALFORMED_ROW: ["u1,i1,c1,100", "", 'u1,"i1,c1,100,1'],
    events.MISSING_FIELD: [",i1,c1,100,1", "u1,,c1,100,1", "u1,i1,c1,,1", "u1,i1,c1,100,"],
    events.INVALID_FIELD: ["u1,i1\x07,c1,100,1"],
    events.BAD_TIMESTAMP: ["u1,i1,c1,last tuesday,1", "u1,i1,c1,1700000000000,1"],
    events.BAD_LABEL: ["u1,i1,c1,100,2", "u1,i1,c1,100,yes"],
}


@pytest.fixture(scope="module")
def small_log(tmp_path_factory):
  directory = tmp_path_factory.mktemp("log")
  rows = list(synth.generate(synth.SynthConfig(events=3000, mean_events_per_user=100,
                                               items=300, categories=12, seed=5)))
  return directory, rows


def _write_csv(path, rows, extra_lines=()):
  with open(path, "w") as handle:
    handle.write(HEADER + "\n")
    for row in rows:
      handle.write(",".join(map(str, row)) + "\n")
    for line in extra_lines:
      handle.write(line + "\n")


def _ingest(path, fmt, out, **ingest):
  config = EtaConfig(source=SourceConfig(format=fmt, path=str(path)),
                     ingest=IngestConfig(**ingest))
  return run_ingest(config, str(out))


def _records(out):
  return {split: sorted(example_io.read_records(str(out), split)) for split in events.SPLITS}


def test_counts_reconcile_with_bad_rows_of_every_kind(small_log, tmp_path):
  _, rows = small_log
  duplicates = [",".join(map(str, row)) for row in rows[:7]]
  bad = [line for lines in BAD_ROWS.values() for line in lines]
  path = tmp_path / "log.csv"
  _write_csv(path, rows, bad + duplicates)
  report = _ingest(path, "csv", tmp_path / "out")

  assert report["rows_read"] == len(rows) + len(bad) + len(duplicates)
  assert report["rows_valid"] == len(rows)
  rejected = report["rows_rejected"]
  for reason, lines in BAD_ROWS.items():
    assert rejected[reason] == len(lines), reason
  assert rejected[events.DUPLICATE] == len(duplicates)
  assert rejected["total"] == len(bad) + len(duplicates)
  assert report["rows_read"] == report["rows_valid"] + rejected["total"]
  assert sum(report["examples"].values()) == len(rows)

  dead = [json.loads(line) for f in glob.glob(str(tmp_path / "out/dead_letter/*.jsonl"))
          for line in open(f)]
  assert len(dead) == rejected["total"]
  assert sorted(d["row"] for d in dead) == sorted(bad + duplicates)
  assert all(d["reason"] in events.REJECTION_REASONS and d["detail"] for d in dead)
  with open(tmp_path / "out/ingest_report.json") as handle:
    assert json.load(handle)["rows_read"] == report["rows_read"]


def test_formats_give_identical_examples_and_runs_are_deterministic(small_log, tmp_path):
  _, rows = small_log
  _write_csv(tmp_path / "log.csv", rows)
  with open(tmp_path / "log.jsonl", "w") as handle:
    for row in rows:
      handle.write(json.dumps(dict(zip(synth.COLUMNS, row))) + "\n")
  pq.write_table(pa.table({c: list(v) for c, v in zip(synth.COLUMNS, zip(*rows))}),
                 tmp_path / "log.parquet")
  results = {}
  for fmt in ("csv", "jsonl", "parquet"):
    _ingest(tmp_path / f"log.{fmt}", fmt, tmp_path / fmt)
    results[fmt] = _records(tmp_path / fmt)
  _ingest(tmp_path / "log.csv", "csv", tmp_path / "csv_again")
  assert _records(tmp_path / "csv_again") == results["csv"]  # byte-identical examples
  assert results["jsonl"] == results["csv"]
  assert results["parquet"] == results["csv"]
  assert len(results["csv"]["train"]) + len(results["csv"]["eval"]) == len(rows)


def test_taobao_positive_only_log_with_negative_sampling(tmp_path):
  lines = [f"{u},{i},{i % 5},{b},{1511544070 + 60 * k}"
           for k, (u, i, b) in enumerate((u, (u * 7 + k) % 40, "pv")
                                         for u in range(6) for k in range(12))]
  path = tmp_path / "UserBehavior.csv"
  path.write_text("\n".join(lines + ["1,2,3,click,1511544070"]) + "\n")
  report = _ingest(path, "taobao", tmp_path / "out", negatives_per_positive=2)
  assert report["rows_read"] == len(lines) + 1
  assert report["rows_rejected"]["invalid_field"] == 1
  valid = report["rows_valid"]
  assert report["negatives_sampled"] == 2 * valid
  examples = [ex for split in events.SPLITS
              for ex in example_io.read_examples(str(tmp_path / "out"), split)]
  assert len(examples) == 3 * valid
  assert sum(ex["label"][0] for ex in examples) == valid
