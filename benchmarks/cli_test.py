"""`eta bench --smoke`: every suite runs end to end and writes its files (CI keeps it working)."""

import json
import os

import pytest

from eta_ctr import cli

SERVING_KEYS = {"model", "history_length", "candidates", "path", "p50_ms", "p99_ms"}


@pytest.mark.e2e
def test_eta_bench_smoke_writes_every_suite_report(tmp_path):
  output = str(tmp_path / "bench")
  assert cli.main(["bench", "--smoke", "--output", output]) == 0
  report = open(os.path.join(output, "report.md")).read()
  for section in ("## Serving latency", "## Training throughput", "## Ingest throughput",
                  "## Retrieval recall"):
    assert section in report
  rows = json.load(open(os.path.join(output, "serving.json")))
  assert {(r["model"], r["path"]) for r in rows} >= {
      ("eta", "in_process"), ("eta", "savedmodel"), ("eta", "grpc"), ("din", "in_process")}
  for row in rows:
    assert SERVING_KEYS <= set(row)
    assert 0 < row["p50_ms"] <= row["p99_ms"]
  for name in ("serving.png", "serving_breakdown.png", "train.png", "ingest.png",
               "retrieval.png"):
    assert os.path.getsize(os.path.join(output, name)) > 1000, name
