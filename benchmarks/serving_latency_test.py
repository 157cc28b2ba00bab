"""Unit tests of the serving benchmark's arithmetic, report and C reference."""

import numpy as np
import pytest

from benchmarks import hamming_limit, serving_latency


def _row(model, kernel, path, length, count, p50):
  return {"model": model, "retrieval_kernel": kernel, "path": path, "history_length": length,
          "candidates": count, "p50_ms": p50, "p99_ms": p50 * 1.5, "calls": 30}


ROWS = [
    _row("eta", "fused", "in_process", 1024, 1024, 3.0),
    _row("eta", "stock", "in_process", 1024, 1024, 12.0),
    _row("din_long", None, "in_process", 1024, 1024, 20.0),
    _row("din", None, "in_process", 1024, 1024, 2.5),
    _row("eta", "stock", "grpc", 1024, 1024, 30.0),  # no reference on this path
]


def test_ratios_divide_eta_by_each_reference_on_the_same_path_and_sizes():
  ratios = {(r["retrieval_kernel"], r["path"]): r for r in serving_latency.ratios(ROWS)}
  assert ratios[("fused", "in_process")]["eta_over_din_long"] == pytest.approx(0.15)
  assert ratios[("fused", "in_process")]["eta_over_din"] == pytest.approx(1.2)
  assert ratios[("stock", "in_process")]["eta_over_din_long"] == pytest.approx(0.6)
  assert ratios[("stock", "grpc")]["eta_over_din"] is None
  assert ratios[("fused", "in_process")]["summary_over_eta"] is None  # not measured


def test_summary_over_eta_pairs_the_same_kernel_and_is_reported_against_its_target():
  rows = ROWS + [_row("eta_summary", "fused", "in_process", 1024, 1024, 3.6),
                 _row("eta_summary", "stock", "in_process", 1024, 1024, 12.6)]
  ratios = {(r["retrieval_kernel"], r["path"]): r for r in serving_latency.ratios(rows)}
  assert ratios[("fused", "in_process")]["summary_over_eta"] == pytest.approx(1.2)
  assert ratios[("stock", "in_process")]["summary_over_eta"] == pytest.approx(1.05)
  assert {r["retrieval_kernel"] for r in serving_latency.ratios(rows)} == {"fused", "stock"}
  text = serving_latency.render(_result(rows))
  assert ("ETA (fused) eta_summary / eta at L=1024, B=1024, in process: **1.20** "
          "(target <= 1.1): MISSED") in text
  assert serving_latency._kernels("eta_summary") == serving_latency._kernels("eta")
  assert serving_latency._kernels("din_long") == [None]


def test_long_branch_cost_is_eta_s_extra_over_full_attention_s_per_path_and_threads():
  rows = ROWS + [_row("din_long", None, "grpc", 1024, 1024, 26.0),
                 _row("din", None, "grpc", 1024, 1024, 8.0)]
  rows += [dict(r, threads=1, p50_ms=r["p50_ms"] * 2) for r in ROWS[:4]]
  ratios = {(r["threads"], r["retrieval_kernel"], r["path"]): r
            for r in serving_latency.ratios(rows)}
  # (eta - din) / (din_long - din): the paper's 0.33 is (19 - 11) / (35 - 11).
  assert ratios[(None, "fused", "in_process")]["long_branch_cost"] == pytest.approx(0.5 / 17.5)
  assert ratios[(None, "stock", "in_process")]["long_branch_cost"] == pytest.approx(9.5 / 17.5)
  assert ratios[(None, "stock", "grpc")]["long_branch_cost"] == pytest.approx(22.0 / 18.0)
  # Thread counts never mix: each has its own references.
  assert ratios[(1, "fused", "in_process")]["long_branch_cost"] == pytest.approx(1.0 / 35.0)
  assert serving_latency._long_branch_cost(3.0, 2.5, 2.5) is None
  overheads = {(r["threads"], r["model"]): r for r in serving_latency.overheads(rows)}
  assert overheads[(None, "eta (stock)")]["grpc_minus_in_process_ms"] == pytest.approx(18.0)
  assert overheads[(None, "din")]["grpc_minus_in_process_ms"] == pytest.approx(5.5)
  assert overheads[(None, "din")]["grpc_minus_savedmodel_ms"] is None


def _result(rows, **parts):
  return {"rows": rows, "ratios": serving_latency.ratios(rows),
          "overheads": serving_latency.overheads(rows),
          "parts": parts or {"default": {"breakdown": {}, "hamming": None,
                                         "request_breakdown": {}, "batching": []}},
          "settings": {"target": (1024, 1024), "top_k": 48, "vocab": 100,
                       "timing": {"min_calls": 30}}}


def test_report_states_each_target_as_met_or_missed():
  text = serving_latency.render(_result(ROWS))
  assert ("ETA (fused) long-branch cost (eta - din) / (din_long - din) at L=1024, B=1024, "
          "in process: **0.03** (target <= 0.2): met") in text
  assert ("ETA (fused) eta / din at L=1024, B=1024, in process: **1.20** (target <= 1.5): "
          "met") in text
  assert "| 1,024 | 1,024 | 3.00 / 4.50 |" in text  # the in-process table's first cell
  rows = [dict(r, p50_ms=r["p50_ms"] * (2.0 if r["model"] == "eta" else 1.0)) for r in ROWS]
  rows.append(_row("din_long", None, "savedmodel", 1024, 1024, 21.0))
  rows.append(_row("din", None, "savedmodel", 1024, 1024, 3.0))
  rows.append(_row("eta", "stock", "savedmodel", 1024, 1024, 14.0))
  text = serving_latency.render(_result(rows))
  assert "eta / din at L=1024, B=1024, in process: **2.40** (target <= 1.5): MISSED" in text
  assert ("ETA (stock) long-branch cost (eta - din) / (din_long - din) at L=1024, B=1024, "
          "savedmodel: **0.61** (target <= 0.5): MISSED") in text


def test_report_has_the_per_request_stages_batching_and_a_column_per_thread_count():
  from serving import request_profile as profile
  rows = [dict(r, threads=t) for t in (1, 2) for r in ROWS]
  stages = {stage: 0.5 for stage in profile.STAGES}
  stages.update({"transform ops": 1.5, "model ops": 9.0, profile.TOTAL: 14.0})
  batching = [{"batching": b, "clients": 8, "requests": 100, "failed": 0, "requests_per_s": r,
               "examples_per_s": r * 8, "p50_ms": 9.0, "p99_ms": 20.0, "examples": 8,
               "history_length": 1024} for b, r in (("off", 50.0), ("on", 80.0))]
  part = {"breakdown": {}, "hamming": None, "request_breakdown": {"eta (stock)": stages},
          "batching": batching}
  text = serving_latency.render(_result(rows, **{"1": part, "2": part}))
  assert "Threads: 1 thread, 2 threads." in text
  assert "| threads | L | B |" in text and "| 1 | 1,024 | 1,024 | 3.00 / 4.50 |" in text
  assert "in process, 1 thread: **0.03** (target <= 0.2): met" in text
  assert "### A `score` request inside `eta serve` (L=1024, B=1024, 2 threads)" in text
  # gRPC p50 30 ms of which 14 in the server: 16 ms of transport and client.
  assert "| eta (stock) | 0.500 |" in text and "| 14.0 | 30.0 | 16.0 |" in text
  assert "| 8 | on | 8 | 100 | 0 | 80.0 | 640.0 | 9.000 | 20.0 |" in text


def test_threads_flag_runs_a_worker_per_thread_count(monkeypatch, tmp_path):
  import argparse
  parser = argparse.ArgumentParser()
  serving_latency.add_arguments(parser)
  args = parser.parse_args(["--threads", "1,2", "--models", "eta,din"])
  args.smoke, args.output = False, str(tmp_path)
  assert serving_latency._settings(args)["threads"] == [1, 2]
  calls = []

  def worker(settings, threads, output):
    calls.append(threads)
    return {"threads": threads, "rows": [dict(r, threads=threads) for r in ROWS],
            "request_breakdown": {}, "batching": [], "breakdown": {}, "hamming": None}

  monkeypatch.setattr(serving_latency, "_run_worker", worker)
  monkeypatch.setattr(serving_latency, "_plots", lambda result, output: None)
  result = serving_latency.run(args)
  assert calls == [1, 2] and set(result["parts"]) == {"1", "2"}
  assert {r["threads"] for r in result["ratios"]} == {1, 2}
  with pytest.raises(ValueError, match="--threads"):
    serving_latency._settings(parser.parse_args(["--threads", "0"]))


def test_c_reference_computes_the_hamming_distances(tmp_path):
  library = hamming_limit._reference_library(str(tmp_path))
  if library is None:
    pytest.skip("no C compiler")
  rng = np.random.default_rng(3)
  candidates = rng.integers(0, 2**63, size=7, dtype=np.int64).view(np.uint64) ^ np.uint64(2**63)
  behaviours = rng.integers(0, 2**63, size=13, dtype=np.int64).view(np.uint64)
  out = np.zeros((7, 13), np.uint8)
  library.hamming_reference(candidates.ctypes.data, 7, behaviours.ctypes.data, 13,
                            out.ctypes.data)
  expected = [[bin(int(c) ^ int(b)).count("1") for b in behaviours] for c in candidates]
  np.testing.assert_array_equal(out, expected)
