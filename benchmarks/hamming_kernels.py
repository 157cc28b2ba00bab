"""ETA's Hamming top-k kernels side by side: old stock, new stock, fused, and the limit.

`python -m benchmarks.hamming_kernels [--threads 1,2] [--lengths ...] [--smoke]`

Per shape (B histories x C candidates x L behaviours, k, bits) and thread count it
prints the p50 milliseconds of
  old stock   XOR + popcount, then TopK over L (models.layers.hamming_topk._sort_top_k;
              still the stock path for short histories);
  new stock   what HammingTopK(kernel="stock") runs (stock_top_k: the level path
              for C >= 256 candidates per history of L >= 512, else the same TopK);
  fused       the compiled EtaHammingTopK op;
and the fused op's ns per (candidate, behaviour) pair against the XOR + popcount
limit: benchmarks/hamming_reference.c single-threaded (one call per code word),
divided by the thread count. Each thread count runs in a fresh process whose
TensorFlow is limited to that many intra- and inter-op threads before it runs
anything; within a shape the kernels are called in turn, so a noisy machine
slows them alike. All three kernels are first checked to agree bit for bit.
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from benchmarks import hamming_limit, report

log = logging.getLogger("benchmarks.hamming_kernels")
WORKER_MODULE = "benchmarks.hamming_kernels"
KERNELS = ("old_stock", "new_stock", "fused")
# (histories, candidates, length, k, bits) of one training step of the defaults.
TRAINING_SHAPE = (256, 1, 256, 16, 64)


def _ints(text: str) -> List[int]:
  try:
    values = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    values = []
  if not values or min(values) < 0:
    raise argparse.ArgumentTypeError(f"needs a comma-separated list of integers, got {text!r}")
  return values


def shapes(args) -> List[tuple]:
  """(histories, candidates, length, k, bits) to measure."""
  if args.smoke:
    return [(1, 256, 520, 4, 64), (2, 1, 40, 3, 100)]
  found = [(1, args.candidates, length, k, bits)
           for bits in args.bits for length in args.lengths for k in args.ks]
  return found + ([TRAINING_SHAPE] if args.training_shape else [])


def _codes(rng, shape, bits: int) -> np.ndarray:
  """Random int64 codes [*shape, W] with `bits` bits used, packed like SimHash."""
  words = -(-bits // 64)
  unpacked = np.zeros(shape + (64 * words,), np.uint8)
  unpacked[..., :bits] = rng.random(shape + (bits,)) < 0.5
  return np.ascontiguousarray(np.packbits(unpacked, axis=-1, bitorder="little")).view("<i8")


def measure_shape(histories: int, candidates: int, length: int, k: int, bits: int,
                  calls: int, min_seconds: float) -> Dict:
  """p50 ms of each kernel on one shape (in this process, its thread settings)."""
  import tensorflow as tf
  from models.layers import hamming_topk
  from models.layers.kernels import fused_ops

  rng = np.random.default_rng(length * 1000 + k + bits)
  inputs = [tf.constant(_codes(rng, (histories, candidates), bits)),
            tf.constant(_codes(rng, (histories, length), bits)),
            tf.ones([histories, length], tf.bool)]
  # Traced for these shapes, as a model serving one input size is.
  functions = {
      "old_stock": tf.function(lambda c, h, m: hamming_topk._sort_top_k(c, h, m, k)),
      "new_stock": tf.function(lambda c, h, m: hamming_topk.stock_top_k(c, h, m, k)),
  }
  fused = fused_ops.load()
  if fused is not None:
    functions["fused"] = tf.function(lambda c, h, m: fused.eta_hamming_top_k(c, h, m, k=k))
  reference = None
  for name, function in functions.items():
    outputs = [tensor.numpy() for tensor in function(*inputs)]
    if reference is None:
      reference = outputs
    elif any(not np.array_equal(a, b) for a, b in zip(outputs, reference)):
      raise AssertionError(f"{name} disagrees with old_stock on {histories}x{candidates}x"
                           f"{length}, k={k}, {bits} bits")
  for function in functions.values():  # warm up
    for _ in range(2):
      function(*inputs)[0].numpy()
  samples = {name: [] for name in functions}
  started = time.perf_counter()
  while (len(samples["old_stock"]) < calls or time.perf_counter() - started < min_seconds):
    for name, function in functions.items():  # in turn: noise hits all of them alike
      begin = time.perf_counter()
      function(*inputs)[0].numpy()
      samples[name].append(time.perf_counter() - begin)
    if len(samples["old_stock"]) >= 20 * calls:
      break
  row = {"histories": histories, "candidates": candidates, "length": length, "k": k,
         "bits": bits, "calls": len(samples["old_stock"])}
  for name in KERNELS:
    row[f"{name}_ms"] = (report.latency_ms(samples[name])["p50_ms"] if name in samples
                         else None)
    row[f"{name}_min_ms"] = 1e3 * min(samples[name]) if name in samples else None
  return row


def measure_all(settings: Dict, threads: Optional[int]) -> Dict:
  rows = []
  for shape in settings["shapes"]:
    row = measure_shape(*shape, calls=settings["calls"], min_seconds=settings["min_seconds"])
    row["threads"] = threads
    log.info("hamming kernels: %s", row)
    rows.append(row)
  return {"threads": threads, "rows": rows}


def limit_ns_per_pair(candidates: int, length: int, bits: int, work_dir: str,
                      **timing) -> Optional[float]:
  """Single-thread ns per (candidate, behaviour) pair of the C XOR + popcount loop,
  one call per code word; None without a C compiler."""
  rng = np.random.default_rng(0)
  words = -(-bits // 64)
  first = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, size=candidates,
                       dtype=np.int64).view(np.uint64)
  behaviours = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max,
                            size=length * words, dtype=np.int64).view(np.uint64)
  per_word = hamming_limit.reference_ns_per_pair(first, behaviours, work_dir, **timing)
  return None if per_word is None else per_word * words


def add_limits(rows: List[Dict], timing: Dict) -> None:
  with tempfile.TemporaryDirectory() as work_dir:
    limits = {}
    for row in rows:
      key = (row["histories"] * row["candidates"], row["length"], row["bits"])
      if key not in limits:
        limits[key] = limit_ns_per_pair(*key, work_dir, **timing)
      single, threads = limits[key], row["threads"] or report.usable_cpus()
      pairs = row["histories"] * row["candidates"] * row["length"]
      row["limit_ns_per_pair"] = None if single is None else single / threads
      row["fused_ns_per_pair"] = (None if row["fused_ms"] is None
                                  else row["fused_ms"] * 1e6 / pairs)
      row["fused_over_limit"] = (None if None in (row["fused_ns_per_pair"],
                                                  row["limit_ns_per_pair"])
                                 else row["fused_ns_per_pair"] / row["limit_ns_per_pair"])
      row["old_over_new_stock"] = row["old_stock_ms"] / row["new_stock_ms"]


COLUMNS = ["shape", "k", "bits", "threads", "old_stock_ms", "new_stock_ms",
           "old_over_new_stock", "fused_ms", "fused_ns_per_pair", "limit_ns_per_pair",
           "fused_over_limit"]
HEADERS = ["B x C x L", "k", "bits", "threads", "old stock ms", "new stock ms",
           "old / new", "fused ms", "fused ns/pair", "limit ns/pair", "fused / limit"]


def render(rows: Sequence[Dict]) -> str:
  table = [dict(row, shape=f"{row['histories']} x {row['candidates']} x {row['length']}",
                threads=row["threads"] or "default") for row in rows]
  return report.markdown_table(table, COLUMNS, HEADERS)


def _load_average() -> Optional[str]:
  try:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())
  except (AttributeError, OSError):
    return None


def _run_worker(settings: Dict, threads: int) -> Dict:
  payload = {"settings": settings, "threads": threads}
  return report.run_worker(WORKER_MODULE, ["--worker", json.dumps(payload)])


def run(args) -> Dict:
  settings = {"shapes": shapes(args), "calls": 3 if args.smoke else args.calls,
              "min_seconds": 0.0 if args.smoke else args.min_seconds}
  timing = ({"warmup": 1, "min_calls": 3, "min_seconds": 0.0} if args.smoke
            else {"min_calls": 20, "min_seconds": 0.5})
  if args.threads == [0]:  # TensorFlow's defaults, in this process
    parts = [measure_all(settings, None)]
  else:
    parts = []
    for threads in args.threads:
      log.info("hamming kernels: a worker with %d TensorFlow thread(s)", threads)
      parts.append(_run_worker(settings, threads))
  rows = [row for part in parts for row in part["rows"]]
  add_limits(rows, timing)
  machine = dict(report.machine_info(), load_average=_load_average())
  header = (f"Hamming top-k kernels on {machine.get('cpu', '?')}, {machine['cpus']} CPUs, "
            f"load average {machine['load_average'] or '?'} (others' work inflates p50s)\n\n")
  result = {"machine": machine, "rows": rows, "markdown": header + render(rows)}
  if args.json:
    report.write_json(args.json, result)
  return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
  parser.add_argument("--threads", type=_ints, default=[1, 2],
                      help="TensorFlow intra- and inter-op threads, one worker process "
                           "each; 0 = TensorFlow's default, in this process (default 1,2)")
  parser.add_argument("--candidates", type=int, default=1024,
                      help="candidates scored against one history (default 1024)")
  parser.add_argument("--lengths", type=_ints, default=[256, 1024, 4096],
                      help="history lengths L (default 256,1024,4096)")
  parser.add_argument("--ks", type=_ints, default=[16, 48], help="k (default 16,48)")
  parser.add_argument("--bits", type=_ints, default=[64, 128],
                      help="SimHash bits (default 64,128)")
  parser.add_argument("--no-training-shape", dest="training_shape", action="store_false",
                      help="skip the training step's shape, B=256 x C=1 x L=256, k=16")
  parser.add_argument("--calls", type=int, default=15,
                      help="at least this many calls of each kernel per shape (default 15)")
  parser.add_argument("--min-seconds", type=float, default=1.0,
                      help="and at least this long per shape (default 1.0)")
  parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
  parser.add_argument("--smoke", action="store_true",
                      help="two tiny shapes: checks the benchmark runs, measures nothing")


def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog=f"python -m {WORKER_MODULE}", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  add_arguments(parser)
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s",
                      datefmt="%H:%M:%S")
  logging.getLogger("benchmarks").setLevel(logging.INFO)
  if args.worker is not None:
    payload = json.loads(args.worker)
    import tensorflow as tf  # before TensorFlow runs anything in this process
    tf.config.threading.set_intra_op_parallelism_threads(payload["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(payload["threads"])
    settings = dict(payload["settings"], shapes=[tuple(s) for s in payload["settings"]["shapes"]])
    report.print_result(measure_all(settings, payload["threads"]))
    return 0
  result = run(args)
  print(result["markdown"])
  return 0


if __name__ == "__main__":
  from eta_ctr import runtime  # pylint: disable=g-import-not-at-top
  runtime.prepare()  # TensorFlow is not imported yet here
  sys.exit(main())
