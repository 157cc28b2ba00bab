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


def test_report_states_each_target_as_met_or_missed():
  result = {"rows": ROWS, "ratios": serving_latency.ratios(ROWS), "breakdown": {},
            "hamming": None,
            "settings": {"target": (1024, 1024), "top_k": 48, "vocab": 100,
                         "timing": {"min_calls": 30}}}
  text = serving_latency.render(result)
  assert "ETA (fused) / din_long at L=1024, B=1024, in process: **0.15** (target <= 0.2): met" in text
  assert "ETA (stock) / din_long at L=1024, B=1024, in process: **0.60** (target <= 0.2): MISSED" in text
  assert "ETA (stock) / din at L=1024, B=1024, in process: **4.80** (target <= 1.5): MISSED" in text
  assert "| 1,024 | 1,024 | 3.00 / 4.50 |" in text  # the in-process table's first cell


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
