"""ETA's retrieval against the hardware limit of one 64-bit XOR + popcount per pair.

The limit is measured, not assumed: hamming_reference.c (distances only, no
selection) is compiled with the local C compiler and run single-threaded; the
ideal wall time on T threads is that divided by T. The TensorFlow kernels
(`fused` and `stock`, both computing distances AND the k-nearest selection) are
timed on the same codes. Where no compiler exists the limit is reported as None.
"""

import ctypes
import os
import shutil
import subprocess
import tempfile
from typing import Dict, Optional

import numpy as np

from benchmarks import report
from eta_ctr.config import KERNEL_FUSED, KERNEL_STOCK

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hamming_reference.c")


def _reference_library(work_dir: str):
  compiler = shutil.which("gcc") or shutil.which("cc")
  if not compiler:
    return None
  path = os.path.join(work_dir, "hamming_reference.so")
  flags = ["-O3", "-shared", "-fPIC"] + (["-mpopcnt"] if os.uname().machine == "x86_64" else [])
  subprocess.run([compiler, *flags, SOURCE, "-o", path], check=True, capture_output=True)
  library = ctypes.CDLL(path)
  library.hamming_reference.restype = ctypes.c_int64
  library.hamming_reference.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_void_p,
                                        ctypes.c_int64, ctypes.c_void_p]
  return library


def reference_ns_per_pair(candidates: np.ndarray, behaviours: np.ndarray,
                          work_dir: str, **timing) -> Optional[float]:
  """Single-thread ns per pair of the C XOR + popcount loop (None without a compiler)."""
  library = _reference_library(work_dir)
  if library is None:
    return None
  out = np.empty((candidates.size, behaviours.size), np.uint8)
  call = lambda: library.hamming_reference(candidates.ctypes.data, candidates.size,
                                           behaviours.ctypes.data, behaviours.size,
                                           out.ctypes.data)
  p50 = report.latency_ms(report.time_calls(call, **timing))["p50_ms"]
  return p50 * 1e6 / out.size


def measure(history_length: int, candidates: int, k: int, **timing) -> Dict:
  """ns per (candidate, behaviour) pair: C reference, fused and stock kernels."""
  import tensorflow as tf
  from models.layers.hamming_topk import HammingTopK
  from models.layers.kernels import fused_ops

  rng = np.random.default_rng(0)
  candidate_codes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max,
                                 size=candidates, dtype=np.int64)
  behaviour_codes = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max,
                                 size=history_length, dtype=np.int64)
  pairs = candidates * history_length
  threads = report.usable_cpus()
  with tempfile.TemporaryDirectory() as work_dir:
    single = reference_ns_per_pair(candidate_codes.view(np.uint64),
                                   behaviour_codes.view(np.uint64), work_dir, **timing)
  result = {"history_length": history_length, "candidates": candidates, "k": k,
            "threads": threads, "reference_ns_per_pair_1_thread": single,
            "limit_ns_per_pair": None if single is None else single / threads}
  c = tf.constant(candidate_codes.reshape(1, candidates, 1))
  h = tf.constant(behaviour_codes.reshape(1, history_length, 1))
  mask = tf.ones([1, history_length], tf.bool)
  kernels = [KERNEL_STOCK] + ([KERNEL_FUSED] if fused_ops.available() else [])
  for kernel in kernels:
    layer = HammingTopK(k, kernel=kernel)
    fn = tf.function(lambda: layer([c, h], behaviour_mask=mask))
    p50 = report.latency_ms(report.time_calls(lambda: fn()[0].numpy(), **timing))["p50_ms"]
    result[f"{kernel}_ns_per_pair"] = p50 * 1e6 / pairs
    if result["limit_ns_per_pair"]:
      result[f"{kernel}_vs_limit"] = result[f"{kernel}_ns_per_pair"] / result["limit_ns_per_pair"]
  return result
