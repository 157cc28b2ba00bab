"""The ingest benchmark: rows that reconcile with what the ingest wrote, cleanup, failures."""

import argparse
import glob
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from benchmarks import ingest_throughput
from components import example_io


def _args(output, *argv, smoke=True):
  parser = argparse.ArgumentParser()
  ingest_throughput.add_arguments(parser)
  args = parser.parse_args(list(argv))
  args.output, args.smoke, args.beam_args = str(output), smoke, []
  return args


def _count_tfrecords(pattern):
  """Records in gzipped TFRecord files (CRC-checked by TensorFlow's reader)."""
  return sum(1 for _ in example_io.read_tfrecords(sorted(glob.glob(pattern))))


def test_real_run_reconciles_with_the_ingest_outputs(tmp_path):
  work = tmp_path / "work"
  # One real size keeps this fast (a worker is ~10 s of imports and Beam start-up);
  # the exponent across sizes is checked below with a stand-in worker.
  args = _args(tmp_path / "out", "--events", "400", "--work-dir", str(work), "--keep")
  result = ingest_throughput.run(args)

  rows = json.loads((tmp_path / "out" / "ingest.json").read_text())["rows"]
  assert [row["events"] for row in rows] == [400]
  for row in rows:
    size_dir = work / f"events_{row['events']}"
    written = json.loads((size_dir / "ingest" / "ingest_report.json").read_text())
    assert row["examples"] == written["examples_total"] == row["events"]  # no negatives
    assert row["users"] == written["users"] > 0
    assert row["rows_read"] == row["rows_written"] == row["events"]
    assert row["wall_s"] == written["wall_time_s"] > 0
    assert row["events_per_s"] == pytest.approx(row["events"] / row["wall_s"])
    assert row["events_per_cpu_s"] == pytest.approx(row["events"] / row["cpu_s"])
    assert 0 < row["cpu_s"] < row["wall_s"] * os.cpu_count() + 1
    # The examples really are on disk, as many as the report says.
    assert _count_tfrecords(str(size_dir / "ingest" / "Split-*" / "*.gz")) == row["examples"]
    assert (size_dir / "log.csv").read_text().count("\n") == row["events"] + 1  # + header
    assert row["history_p90"] >= row["history_mean"] * 0.5 > 0
    assert row["peak_rss_mb"] > 50 and row["written_mb"] > 0
  assert "exponent" not in rows[0]

  assert result["markdown"].startswith("## Ingest throughput")
  assert "| 400 |" in result["markdown"]
  assert (tmp_path / "out" / "ingest.md").read_text() == result["markdown"]
  assert (tmp_path / "out" / "ingest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert os.path.getsize(tmp_path / "out" / "ingest.png") > 10_000


def _fake_worker(calls, fail_at=None):
  """Stands in for the worker process: makes its directory, returns a linear-cost row."""

  def run_worker(module, argv, timeout=None):
    assert module == "benchmarks.ingest_throughput"
    flags = dict(zip(argv[::2], argv[1::2]))
    events, work_dir = int(flags["--events"]), flags["--work-dir"]
    calls.append(argv)
    if events == fail_at:
      raise RuntimeError("worker failed (137):\nMemoryError")
    os.makedirs(work_dir)
    open(os.path.join(work_dir, "log.csv"), "w").close()
    wall = 2.0 + events / 1000.0  # a fixed start-up cost plus a linear one
    return {"events": events, "users": events // 100, "examples": events, "synth_s": 0.1,
            "wall_s": wall, "events_per_s": events / wall, "peak_rss_mb": 600.0,
            "written_mb": 1.0, "history_mean": 10.0, "history_p90": 20}

  return run_worker


def test_work_dirs_are_deleted_and_beam_args_reach_the_worker(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(ingest_throughput.report, "run_worker", _fake_worker(calls))
  args = _args(tmp_path, "--events", "1000,100000", "--work-dir", str(tmp_path / "w"),
               smoke=False)
  args.beam_args = ["--direct_num_workers=2"]
  result = ingest_throughput.run(args)
  assert len(calls) == 2 and "--beam-arg=--direct_num_workers=2" in calls[0]
  assert os.listdir(tmp_path / "w") == []  # each size's log and outputs are gone
  rows = result["rows"]
  # wall goes 3 s -> 102 s over 100x events: below linear because of the fixed cost.
  assert rows[1]["exponent"] == pytest.approx(math.log(102 / 3) / math.log(100))
  assert 0.5 < rows[1]["exponent"] < 1


def test_default_work_dir_is_removed_and_smoke_uses_tiny_sizes(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(ingest_throughput.report, "run_worker", _fake_worker(calls))
  ingest_throughput.run(_args(tmp_path))
  assert [int(dict(zip(c[::2], c[1::2]))["--events"]) for c in calls] == [2_000, 5_000]
  assert sorted(os.listdir(tmp_path)) == ["ingest.json", "ingest.md", "ingest.png"]


def test_a_failed_size_stops_larger_ones_and_keeps_earlier_results(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setattr(ingest_throughput.report, "run_worker",
                      _fake_worker(calls, fail_at=100_000))
  result = ingest_throughput.run(_args(tmp_path, "--events", "1000,100000,1000000",
                                       smoke=False))
  assert len(calls) == 2  # 10^6 never started
  assert [row["events"] for row in result["rows"]] == [1000, 100_000]
  assert "MemoryError" in result["rows"][1]["error"]
  assert "100,000 events failed" in result["markdown"]
  assert json.loads((tmp_path / "ingest.json").read_text())["rows"][0]["wall_s"] == 3.0
  # In smoke mode (CI) a failure is an error, not a quiet line in a report.
  monkeypatch.setattr(ingest_throughput.report, "run_worker", _fake_worker([], fail_at=2_000))
  with pytest.raises(RuntimeError, match="MemoryError"):
    ingest_throughput.run(_args(tmp_path))


def test_sigterm_kills_the_worker_and_removes_the_work_dir(tmp_path, monkeypatch):
  def run_worker(module, argv, timeout=None):
    os.makedirs(dict(zip(argv[::2], argv[1::2]))["--work-dir"])
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    # Stands in for the worker process: 30 s unless the SIGTERM kills it.
    subprocess.run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=timeout)
    return {}

  monkeypatch.setattr(ingest_throughput.report, "run_worker", run_worker)
  handler = signal.getsignal(signal.SIGTERM)
  started = time.monotonic()
  with pytest.raises(SystemExit):
    ingest_throughput.run(_args(tmp_path))
  assert time.monotonic() - started < 15
  assert os.listdir(tmp_path) == []  # the default work dir is gone
  assert signal.getsignal(signal.SIGTERM) is handler


def test_scaling_exponent_and_event_list():
  assert ingest_throughput.scaling_exponent(1e5, 20.0, 1e6, 200.0) == pytest.approx(1.0)
  assert ingest_throughput.scaling_exponent(1e5, 20.0, 1e6, 2000.0) == pytest.approx(2.0)
  assert math.isnan(ingest_throughput.scaling_exponent(1e5, 0.0, 1e6, 2.0))
  assert ingest_throughput._event_list("1e5, 1000000,100000") == [100_000, 1_000_000]
  with pytest.raises(argparse.ArgumentTypeError):
    ingest_throughput._event_list("0")
