"""Serving latency: one user x B candidates scored against a history of L behaviours.

For every model, L and B it times the same request three ways:
  in_process  the Keras model's candidate_logits (what `score` runs after Transform)
  savedmodel  the exported SavedModel's `score` signature, raw ids in (Transform included)
  grpc        `score` through `eta serve` (the built-in TF Serving-compatible server, in
              its own process) with the stock tensorflow-serving-api client
ETA runs with both retrieval kernels: `fused` (the compiled Hamming top-k; the default
in process) and `stock` (plain TF ops; what exports carry by default, so that stock
tensorflow_model_server can load them).

At the target L and B it also reports, per model, where a gRPC request's time goes
inside `eta serve` (serving/request_profile.py: parse, decode, validate, to_tensors, the
signature call split into its Transform and model ops, fetch, encode, serialize) and
what is left for the transport; and, under --batching-clients concurrent clients,
serving_default with and without the server's cross-request batching.

--threads 1,2 runs the whole suite once per thread count, each in its own process with
TensorFlow's intra- and inter-op threads (and the server's) set to it; without it the
suite runs here with TensorFlow's default (every core).

Writes DIR/serving.json (rows: threads, model, retrieval_kernel, history_length,
candidates, path, p50_ms, p99_ms, calls), DIR/serving.md (tables, the long-branch cost
(eta - din) / (din_long - din) and the other ratios per path, the targets, the stage
breakdowns, batching, the Hamming kernels against the hardware limit), DIR/serving.png
(p50 against L) and DIR/serving_breakdown.png.
"""

import argparse
import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence

from benchmarks import report
from eta_ctr.config import KERNEL_AUTO, KERNEL_FUSED, KERNEL_STOCK

log = logging.getLogger("benchmarks.serving_latency")  # also when run as __main__ (a worker)

PATHS = ("in_process", "savedmodel", "grpc")
REFERENCES = ("din_long", "din")
# The targets, at B = the target B: (measure, kernel, path, L, bound); a
# None L means the target L. long_branch_cost = (eta - din) / (din_long - din).
TARGETS = (
    ("long_branch_cost", KERNEL_FUSED, "in_process", None, 0.20),
    ("long_branch_cost", KERNEL_FUSED, "in_process", 4096, 0.05),
    ("long_branch_cost", KERNEL_STOCK, "savedmodel", None, 0.5),
    ("eta_over_din", KERNEL_FUSED, "in_process", None, 1.5),
    # ETA plus its long-term summary at most 1.1x plain ETA (issue 13, section 4).
    ("summary_over_eta", KERNEL_FUSED, "in_process", None, 1.1),
)
MEASURE_NAMES = {"long_branch_cost": "long-branch cost (eta - din) / (din_long - din)",
                 "eta_over_din": "eta / din", "eta_over_din_long": "eta / din_long",
                 "summary_over_eta": "eta_summary / eta"}
SUMMARY_MODEL = "eta_summary"
MODEL_NAME = "eta"
WORKER_MODULE = "benchmarks.serving_latency"


def _ints(text: str) -> List[int]:
  return [int(v) for v in str(text).split(",") if v.strip()]


def _names(text: str) -> List[str]:
  return [v.strip() for v in str(text).split(",") if v.strip()]


def add_arguments(parser) -> None:
  parser.add_argument("--history-lengths", default="256,1024,4096", help="L values")
  parser.add_argument("--candidates", default="1,100,1024", help="B values")
  parser.add_argument("--models", default="eta,din_long,din,sim_hard,avg_pool")
  parser.add_argument("--paths", default=",".join(PATHS), help=f"any of {PATHS}")
  parser.add_argument("--top-k", type=int, default=48, help="k (ETA, SIM)")
  parser.add_argument("--vocab", type=int, default=20_000, help="items in the catalogue")
  parser.add_argument("--min-calls", type=int, default=30, help="timed calls per point (at least)")
  parser.add_argument("--min-seconds", type=float, default=1.0, help="timed seconds per point")
  parser.add_argument("--target-length", type=int, default=1024,
                      help="L of the targets, the breakdown and the Hamming measurement")
  parser.add_argument("--target-candidates", type=int, default=1024, help="B of the same")
  parser.add_argument("--threads", default="",
                      help="e.g. 1,2: run everything once per thread count, each in its own "
                           "process with TensorFlow's intra- and inter-op threads (and the "
                           "server's) set to it (default: here, TensorFlow's default)")
  parser.add_argument("--batching-clients", type=int, default=8,
                      help="concurrent clients of the serving_default batching comparison at "
                           "the target L (0: skip it)")
  parser.add_argument("--batching-examples", default="1,8",
                      help="tf.Examples (candidates) per serving_default request there, one "
                           "comparison per value")
  parser.add_argument("--batching-seconds", type=float, default=10.0,
                      help="seconds of load per batching setting")


def _settings(args) -> Dict:
  threads = _ints(getattr(args, "threads", "") or "")
  if any(n < 1 for n in threads):
    raise ValueError(f"--threads takes thread counts of at least 1, got {args.threads!r}")
  if args.smoke:
    return {"lengths": [32], "candidates": [1, 8], "models": ["eta", "din"],
            "paths": list(PATHS), "vocab": 300, "top_k": 8, "grpc_once": True,
            "timing": {"warmup": 1, "min_calls": 3, "min_seconds": 0.0},
            "target": (32, 8), "threads": threads,
            "batching": {"clients": 2, "examples": [2], "seconds": 0.5}}
  return {"lengths": _ints(args.history_lengths), "candidates": _ints(args.candidates),
          "models": _names(args.models), "paths": _names(args.paths), "vocab": args.vocab,
          "top_k": args.top_k,
          "timing": {"warmup": 3, "min_calls": args.min_calls, "min_seconds": args.min_seconds},
          "target": (args.target_length, args.target_candidates), "threads": threads,
          "batching": {"clients": args.batching_clients,
                       "examples": _ints(args.batching_examples),
                       "seconds": args.batching_seconds}}


def model_config(name: str, history_length: int, top_k: int, kernel: str = KERNEL_AUTO):
  from eta_ctr.config import ModelConfig
  return ModelConfig(name=name, top_k=top_k, retrieval_kernel=kernel).replace_clamped(
      long_seq_len=history_length)


def build_model(config, vocab: int):
  """An untrained model over `vocab` items (+ OOV + padding), built and, for ETA, with
  its code table frozen as at export."""
  from benchmarks.synthetic_requests import CATEGORIES, transformed_request
  from models.architectures.eta import EtaModel
  from models.architectures.registry import build_model as build
  model = build(config, vocab + 2, CATEGORIES + 2)
  model.candidate_logits(transformed_request(config, config.long_seq_len, 2, vocab))
  if isinstance(model, EtaModel):
    model.freeze_item_codes()
  return model


def _row(name, kernel, length, candidates, path, stats) -> Dict:
  return {"model": name, "retrieval_kernel": kernel, "history_length": length,
          "candidates": candidates, "path": path, **stats}


def _kernels(name: str) -> List[Optional[str]]:
  """Both retrieval kernels for the models that retrieve (eta and its subclasses, e.g.
  eta_summary), so that their in-process and exported rows time the same kernel; None
  (no kernel) for the others."""
  from models.architectures.eta import EtaModel
  from models.architectures.registry import MODELS
  if not issubclass(MODELS[name], EtaModel):
    return [None]
  from models.layers.kernels import fused_ops
  return [KERNEL_FUSED, KERNEL_STOCK] if fused_ops.available() else [KERNEL_STOCK]


def _in_process(model, name, kernel, length, candidate_counts, vocab, timing) -> List[Dict]:
  import tensorflow as tf
  from benchmarks.synthetic_requests import transformed_request
  if kernel:
    model.top_k.kernel = kernel
  logits = tf.function(model.candidate_logits)  # a fresh trace per kernel
  rows = []
  for count in candidate_counts:
    inputs = transformed_request(model.config, length, count, vocab, seed=count)
    samples = report.time_calls(lambda: logits(inputs).numpy(), **timing)
    rows.append(_row(name, kernel, length, count, "in_process", report.latency_ms(samples)))
    log.info("serving: %-8s %-5s L=%-5d B=%-5d in_process p50 %.2f ms", name, kernel or "",
             length, count, rows[-1]["p50_ms"])
  return rows


def _export(model, config, tft_dir: str, export_dir: str) -> str:
  import tensorflow_transform as tft
  from eta_ctr.config import EtaConfig
  from models.export import export_serving_model
  export_serving_model(model, tft.TFTransformOutput(tft_dir), EtaConfig(model=config), export_dir)
  return export_dir


def _savedmodel(export_dir, name, kernel, length, candidate_counts, vocab, timing) -> List[Dict]:
  import tensorflow as tf
  from benchmarks.synthetic_requests import raw_request
  from models.layers.kernels import fused_ops
  from models.signatures import PROBABILITIES, SCORE_SIGNATURE
  from serving.requests import score_inputs
  if kernel == KERNEL_FUSED:
    fused_ops.load()
  score = tf.saved_model.load(export_dir).signatures[SCORE_SIGNATURE]
  rows = []
  for count in candidate_counts:
    inputs = {key: tf.constant(value) for key, value in
              score_inputs(raw_request(length, count, vocab, seed=count)).items()}
    samples = report.time_calls(lambda: score(**inputs)[PROBABILITIES].numpy(), **timing)
    rows.append(_row(name, kernel, length, count, "savedmodel", report.latency_ms(samples)))
    log.info("serving: %-8s %-5s L=%-5d B=%-5d savedmodel p50 %.2f ms", name, kernel or "",
             length, count, rows[-1]["p50_ms"])
  return rows


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def _start_server(model_dir: str, max_history: int, max_candidates: int,
                  threads: Optional[int] = None, workers: int = 2,
                  extra: Sequence[str] = ()):
  """`eta serve` in its own process; returns (process, target) once the model is AVAILABLE."""
  import grpc
  from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
  port = _free_port()
  command = [sys.executable, "-m", "eta_ctr.cli", "serve", "--model-dir", model_dir,
             "--model-name", MODEL_NAME, "--grpc-port", str(port), "--rest-port", "0",
             "--backend", "builtin", "--max-history", str(max_history),
             "--max-candidates", str(max_candidates), "--workers", str(workers), *extra]
  if threads:
    command += ["--intra-op-threads", str(threads), "--inter-op-threads", str(threads)]
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
  target = f"127.0.0.1:{port}"
  stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(target))
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = MODEL_NAME
  deadline = time.time() + 180
  while time.time() < deadline:
    if process.poll() is not None:
      raise RuntimeError(f"eta serve exited ({process.returncode}): {process.stderr.read()[-3000:]}")
    try:
      status = stub.GetModelStatus(request, timeout=5)
      if any(v.state == v.AVAILABLE for v in status.model_version_status):
        return process, target
    except grpc.RpcError:
      pass
    time.sleep(0.5)
  process.terminate()
  raise RuntimeError("eta serve did not make the model AVAILABLE within 180 s")


def _stop_server(process):
  process.terminate()
  process.wait(timeout=60)


def _grpc(export_dir, name, kernel, length, candidate_counts, vocab, timing,
          threads: Optional[int] = None) -> List[Dict]:
  from benchmarks.synthetic_requests import raw_request
  from models.signatures import SCORE_SIGNATURE
  from serving.loadtest import _stub
  from serving.requests import predict_request, score_inputs
  process, target = _start_server(os.path.dirname(export_dir), max(length, 4096),
                                   max(max(candidate_counts), 2048), threads)
  try:
    stub = _stub(target)
    rows = []
    for count in candidate_counts:
      request = predict_request(MODEL_NAME, SCORE_SIGNATURE,
                                score_inputs(raw_request(length, count, vocab, seed=count)))
      samples = report.time_calls(lambda: stub.Predict(request, timeout=120), **timing)
      rows.append(_row(name, kernel, length, count, "grpc", report.latency_ms(samples)))
      log.info("serving: %-8s %-5s L=%-5d B=%-5d grpc p50 %.2f ms", name, kernel or "",
               length, count, rows[-1]["p50_ms"])
    return rows
  finally:
    _stop_server(process)


def _request_breakdown(export_dir: str, kernel, length: int, count: int, vocab: int,
                       timing: Dict) -> Dict[str, float]:
  """Where a `score` request's time goes inside `eta serve` (serving/request_profile.py), wall ms
  per stage, and the signature call's op time split into Transform and model."""
  from benchmarks import breakdown
  from benchmarks.synthetic_requests import raw_request
  from models.signatures import SCORE_SIGNATURE
  from serving import request_profile as profile
  from serving.grpc_service import decode_inputs
  from serving.limits import Limits
  from serving.requests import predict_request, score_inputs
  from serving.servable import Servable
  del kernel  # the export says which kernel it calls; Servable.load builds the fused op
  servable = Servable.load(export_dir, 1)
  request = predict_request(MODEL_NAME, SCORE_SIGNATURE,
                            score_inputs(raw_request(length, count, vocab, seed=count)))
  limits = Limits(max_history=max(length, 4096), max_candidates=max(count, 2048))
  stages = profile.profile_request(servable, request.SerializeToString(), limits,
                                   model_name=MODEL_NAME, **timing)
  feed = servable.to_tensors(SCORE_SIGNATURE, decode_inputs(request))
  stages.update(breakdown.signature_split(lambda: servable.call(SCORE_SIGNATURE, feed)))
  return stages


def _batching(export_dir: str, label: str, length: int, vocab: int, batching: Dict,
              threads: Optional[int]) -> List[Dict]:
  """serving_default under `clients` concurrent stock clients, each request `examples`
  tf.Examples carrying a history of `length`, without and with `--enable-batching`."""
  from benchmarks.synthetic_requests import raw_request
  from models.signatures import DEFAULT_SIGNATURE
  from serving import loadtest
  clients = batching["clients"]
  rows = []
  for enabled in (False, True):
    extra = ["--enable-batching"] if enabled else []
    process, target = _start_server(os.path.dirname(export_dir), max(length, 4096),
                                     max(max(batching["examples"]), 2048), threads,
                                     workers=clients, extra=extra)
    try:
      for examples in batching["examples"]:
        request = loadtest.query_request(MODEL_NAME, DEFAULT_SIGNATURE,
                                         raw_request(length, examples, vocab, seed=examples))
        row = loadtest.measure(target, request, clients, batching["seconds"])
        row.update(batching="on" if enabled else "off", model=label, examples=examples,
                   history_length=length, examples_per_s=row["requests_per_s"] * examples)
        log.info("serving: batching %-3s %d clients x %d examples, L=%d: %.1f requests/s, "
                 "p50 %.1f ms, p99 %.1f ms", row["batching"], clients, examples, length,
                 row["requests_per_s"], row["p50_ms"], row["p99_ms"])
        rows.append(row)
    finally:
      _stop_server(process)
  return sorted(rows, key=lambda row: (row["examples"], row["batching"]))


def measure_latency(settings: Dict, work_dir: str, threads: Optional[int] = None) -> Dict:
  """{"rows": latency rows, "request_breakdown": {label: stages}, "batching": rows}."""
  from benchmarks.synthetic_requests import build_transform_graph
  rows: List[Dict] = []
  stages: Dict[str, Dict[str, float]] = {}
  batching: List[Dict] = []
  timing, vocab = settings["timing"], settings["vocab"]
  target_length, target_count = settings["target"]
  for length in settings["lengths"]:
    tft_dir = None
    for name in settings["models"]:
      config = model_config(name, length, settings["top_k"])
      model = build_model(config, vocab)
      for kernel in _kernels(name):
        label = f"{name} ({kernel})" if kernel else name
        if "in_process" in settings["paths"]:
          rows += _in_process(model, name, kernel, length, settings["candidates"], vocab, timing)
        if not {"savedmodel", "grpc"} & set(settings["paths"]):
          continue
        if tft_dir is None:
          log.info("serving: Transform graph for L=%d over %d items", length, vocab)
          tft_dir = build_transform_graph(config, vocab, os.path.join(work_dir, f"tft_{length}"))
        export_dir = os.path.join(work_dir, f"{name}_{kernel or 'model'}_{length}", "1")
        _export(model, dataclasses.replace(config, retrieval_kernel=kernel or KERNEL_AUTO), tft_dir,
                export_dir)
        if "savedmodel" in settings["paths"]:
          rows += _savedmodel(export_dir, name, kernel, length, settings["candidates"], vocab,
                              timing)
        if "grpc" in settings["paths"] and not (settings.get("grpc_once") and
                                                any(r["path"] == "grpc" for r in rows)):
          rows += _grpc(export_dir, name, kernel, length, settings["candidates"], vocab, timing,
                        threads)
        if length == target_length:
          log.info("serving: per-request stages of %s at L=%d B=%d", label, length, target_count)
          stages[label] = _request_breakdown(export_dir, kernel, length, target_count, vocab,
                                             timing)
          # ETA's default export (stock ops), as a stock tensorflow_model_server would
          # load it; without ETA, the first model measured.
          if (not batching and settings["batching"]["clients"] and "grpc" in settings["paths"]
              and (kernel == KERNEL_STOCK or "eta" not in settings["models"])):
            batching = _batching(export_dir, label, length, vocab, settings["batching"],
                                 threads)
        shutil.rmtree(os.path.dirname(export_dir), ignore_errors=True)
  return {"rows": rows, "request_breakdown": stages, "batching": batching}


def _long_branch_cost(eta: float, din: Optional[float], din_long: Optional[float]):
  if din is None or din_long is None or din_long == din:
    return None
  return (eta - din) / (din_long - din)


def ratios(rows: List[Dict]) -> List[Dict]:
  """Per (threads, path, L, B) where they exist: ETA's (each kernel) long-branch cost
  (eta - din) / (din_long - din), its p50 over din_long and over din, and eta_summary's
  p50 over ETA's (same kernel)."""
  index = {(r.get("threads"), r["model"], r["retrieval_kernel"], r["path"], r["history_length"],
            r["candidates"]): r["p50_ms"] for r in rows}
  result = []
  for (threads, model, kernel, path, length, count), p50 in sorted(index.items(), key=str):
    if model != "eta":
      continue
    entry = {"threads": threads, "retrieval_kernel": kernel, "path": path,
             "history_length": length, "candidates": count, "eta_p50_ms": p50}
    reference = {name: index.get((threads, name, None, path, length, count))
                 for name in REFERENCES}
    for name, other in reference.items():
      entry[f"eta_over_{name}"] = None if other is None else p50 / other
    entry["long_branch_cost"] = _long_branch_cost(p50, reference["din"], reference["din_long"])
    summary = index.get((threads, SUMMARY_MODEL, kernel, path, length, count))
    entry["summary_over_eta"] = None if summary is None else summary / p50
    result.append(entry)
  return result


def overheads(rows: List[Dict]) -> List[Dict]:
  """Per model, threads, L and B: what gRPC adds over the in-process model and over the
  SavedModel call (the serving overhead the per-request stages break down)."""
  index = {}
  for r in rows:
    index.setdefault((r.get("threads"), _label(r), r["history_length"], r["candidates"]),
                     {})[r["path"]] = r["p50_ms"]
  result = []
  for (threads, label, length, count), paths in index.items():
    if "grpc" not in paths:
      continue
    result.append({"threads": threads, "model": label, "history_length": length,
                   "candidates": count, "grpc_p50_ms": paths["grpc"],
                   "grpc_minus_in_process_ms": (paths["grpc"] - paths["in_process"]
                                                if "in_process" in paths else None),
                   "grpc_minus_savedmodel_ms": (paths["grpc"] - paths["savedmodel"]
                                                if "savedmodel" in paths else None)})
  return result


def _breakdowns(settings: Dict) -> Dict[str, Dict[str, float]]:
  from benchmarks import breakdown
  from benchmarks.synthetic_requests import transformed_request
  length, count = settings["target"]
  result = {}
  for name in [m for m in ("eta", "din_long", "din") if m in settings["models"]]:
    config = model_config(name, length, settings["top_k"])
    model = build_model(config, settings["vocab"])
    inputs = transformed_request(config, length, count, settings["vocab"], seed=count)
    for kernel in _kernels(name):
      if kernel:
        model.top_k.kernel = kernel
      label = f"{name} ({kernel})" if kernel else name
      log.info("serving: breakdown of %s at L=%d B=%d", label, length, count)
      result[label] = breakdown.stage_times(model, inputs, **settings["timing"])
  return result


def _hamming(settings: Dict, threads: Optional[int]) -> Dict:
  from benchmarks import hamming_limit
  length, count = settings["target"]
  log.info("serving: Hamming kernels against the XOR + popcount limit at L=%d B=%d", length, count)
  hamming = hamming_limit.measure(length, count, min(settings["top_k"], length),
                                  **settings["timing"])
  if threads and hamming.get("reference_ns_per_pair_1_thread"):
    # The limit on the threads TensorFlow was given, not on every usable CPU.
    hamming["threads"] = threads
    hamming["limit_ns_per_pair"] = hamming["reference_ns_per_pair_1_thread"] / threads
    for kernel in (KERNEL_FUSED, KERNEL_STOCK):
      if f"{kernel}_ns_per_pair" in hamming:
        hamming[f"{kernel}_vs_limit"] = (hamming[f"{kernel}_ns_per_pair"] /
                                         hamming["limit_ns_per_pair"])
  return hamming


def measure_all(settings: Dict, output_dir: str, threads: Optional[int] = None) -> Dict:
  """Everything the suite measures, on this process's TensorFlow threads (`threads`:
  what they were set to, None for TensorFlow's default)."""
  work_dir = tempfile.mkdtemp(prefix="serving-", dir=output_dir)
  try:
    measured = measure_latency(settings, work_dir, threads)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  for row in measured["rows"]:
    row["threads"] = threads
  import tensorflow as tf
  configured = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
  return {"threads": threads, "tensorflow_threads": configured, **measured,
          "breakdown": _breakdowns(settings), "hamming": _hamming(settings, threads)}


def _run_worker(settings: Dict, threads: int, output_dir: str) -> Dict:
  """measure_all in a fresh process whose TensorFlow uses `threads` threads; its
  log goes to this process's stderr, its result comes back as JSON."""
  payload = json.dumps({"settings": settings, "threads": threads, "output": output_dir})
  command = [sys.executable, "-m", WORKER_MODULE, "--worker", payload]
  log.info("serving: a worker with %d TensorFlow thread(s)", threads)
  completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
  lines = [line for line in completed.stdout.splitlines() if line.strip()]
  if completed.returncode != 0 or not lines:
    raise RuntimeError(f"the serving benchmark worker for --threads {threads} failed "
                       f"({completed.returncode}); its log is above")
  return json.loads(lines[-1])


def worker_main(argv: Sequence[str]) -> int:
  parser = argparse.ArgumentParser(prog=f"python -m {WORKER_MODULE}")
  parser.add_argument("--worker", required=True, help="JSON: settings, threads, output")
  payload = json.loads(parser.parse_args(argv).worker)
  # As `eta` logs: our progress at INFO, the libraries' (Beam, absl, TF) errors only.
  logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: "
                      "%(message)s", datefmt="%H:%M:%S")
  for ours in ("benchmarks", "serving"):
    logging.getLogger(ours).setLevel(logging.INFO)
  for noisy in ("absl", "apache_beam", "tensorflow", "root"):
    logging.getLogger(noisy).setLevel(logging.ERROR)
  from serving.server import configure_threads  # before TensorFlow runs anything
  configure_threads(payload["threads"], payload["threads"])
  settings = dict(payload["settings"], target=tuple(payload["settings"]["target"]))
  report.print_result(measure_all(settings, payload["output"], payload["threads"]))
  return 0


def run(args) -> Dict:
  settings = _settings(args)
  os.makedirs(args.output, exist_ok=True)
  if settings["threads"]:
    parts = [_run_worker(settings, threads, args.output) for threads in settings["threads"]]
  else:
    parts = [measure_all(settings, args.output)]
  rows = [row for part in parts for row in part["rows"]]
  result = {"machine": report.machine_info(), "settings": {k: v for k, v in settings.items()},
            "rows": rows, "ratios": ratios(rows), "overheads": overheads(rows),
            "parts": {_threads_key(part["threads"]): {key: part[key] for key in (
                "tensorflow_threads", "request_breakdown", "batching", "breakdown", "hamming")
                if key in part} for part in parts}}
  report.write_json(os.path.join(args.output, "serving.json"), rows)
  report.write_json(os.path.join(args.output, "serving_details.json"), result)
  markdown = render(result)
  report.write_text(os.path.join(args.output, "serving.md"), markdown)
  _plots(result, args.output)
  result["markdown"] = markdown
  return result


def _threads_key(threads: Optional[int]) -> str:
  return "default" if threads is None else str(threads)


def _threads_text(threads) -> str:
  if threads in (None, "default"):
    return f"TensorFlow's default threads ({report.usable_cpus()} usable CPUs)"
  return f"{threads} thread{'s' if int(threads) != 1 else ''}"


def _label(row) -> str:
  return f"{row['model']} ({row['retrieval_kernel']})" if row["retrieval_kernel"] else row["model"]


def _target_lines(result) -> List[str]:
  target_length, count = result["settings"]["target"]
  entries = {(r["threads"], r["retrieval_kernel"], r["path"], r["history_length"],
              r["candidates"]): r for r in result["ratios"]}
  lines = []
  for threads in dict.fromkeys(r["threads"] for r in result["ratios"]):
    for measure, kernel, path, length, bound in TARGETS:
      length = length or target_length
      entry = entries.get((threads, kernel, path, length, count))
      value = entry.get(measure) if entry else None
      if value is None:
        continue
      verdict = "met" if value <= bound else "MISSED"
      on = "" if threads is None else f", {_threads_text(threads)}"
      lines.append(f"- ETA ({kernel}) {MEASURE_NAMES[measure]} at L={length}, B={count}, "
                   f"{path.replace('_', ' ')}{on}: **{value:.2f}** (target <= {bound}): {verdict}")
  return lines


def _cell_key(r) -> tuple:
  return (r.get("threads"), r["history_length"], r["candidates"])


def render(result) -> str:
  rows, settings = result["rows"], result["settings"]
  several = len({r.get("threads") for r in rows}) > 1
  key_columns = (["threads"] if several else []) + ["L", "B"]
  out = ["## Serving latency\n",
         f"One user x B candidates against a history of L; k={settings['top_k']}, "
         f"catalogue {settings['vocab']:,} items; p50 / p99 in ms over at least "
         f"{settings['timing']['min_calls']} calls per point (untrained weights: latency does "
         "not depend on them). Threads: "
         + ", ".join(_threads_text(t) for t in dict.fromkeys(r.get("threads") for r in rows))
         + ".\n"]
  out += _target_lines(result) + [""]
  for path in PATHS:
    path_rows = [r for r in rows if r["path"] == path]
    if not path_rows:
      continue
    labels = list(dict.fromkeys(_label(r) for r in path_rows))
    table = {}
    for r in path_rows:
      cell = table.setdefault(_cell_key(r), {"threads": _threads_key(r.get("threads")),
                                             "L": r["history_length"], "B": r["candidates"]})
      cell[_label(r)] = f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
    out.append(f"### {path}: p50 / p99 ms\n")
    out.append(report.markdown_table(table.values(), key_columns + labels))
  ratio_rows = [dict(r, threads=_threads_key(r["threads"])) for r in result["ratios"]
                if r["eta_over_din_long"] or r["eta_over_din"]]
  if ratio_rows:
    out.append("### ETA against the references, per path (lower is better)\n")
    out.append("Long-branch cost = (eta - din) / (din_long - din): what ETA's long-sequence "
               "branch costs as a share of full attention's (the paper: 0.33 at L=1024).\n")
    out.append(report.markdown_table(
        ratio_rows, (["threads"] if several else []) + [
            "path", "retrieval_kernel", "history_length", "candidates", "long_branch_cost",
            "eta_over_din_long", "eta_over_din"],
        (["threads"] if several else []) + [
            "path", "kernel", "L", "B", "long-branch cost", "eta / din_long", "eta / din"]))
  if result.get("overheads"):
    out.append("### What gRPC adds (p50 ms)\n")
    out.append(report.markdown_table(
        [dict(r, threads=_threads_key(r["threads"])) for r in result["overheads"]],
        (["threads"] if several else []) + [
            "model", "history_length", "candidates", "grpc_p50_ms", "grpc_minus_in_process_ms",
            "grpc_minus_savedmodel_ms"],
        (["threads"] if several else []) + [
            "model", "L", "B", "gRPC p50", "gRPC - in process", "gRPC - SavedModel"]))
  for threads, part in result["parts"].items():
    out += _render_part(result, threads, part, several)
  out.append("Files: serving.json (rows), serving_details.json (ratios, overheads, stages, "
             "breakdown, batching, Hamming), serving.png, serving_breakdown.png.\n")
  return "\n".join(out)


def _render_part(result, threads: str, part: Dict, several: bool) -> List[str]:
  settings = result["settings"]
  length, count = settings["target"]
  on = f", {_threads_text(threads)}" if several or threads != "default" else ""
  out = []
  if part.get("request_breakdown"):
    from serving import request_profile as profile  # pylint: disable=g-import-not-at-top
    grpc = {(_label(r)): r["p50_ms"] for r in result["rows"]
            if r["path"] == "grpc" and _threads_key(r.get("threads")) == threads
            and (r["history_length"], r["candidates"]) == (length, count)}
    table = []
    for label, stages in part["request_breakdown"].items():
      row = {"model": label, **stages}
      if label in grpc:
        row["gRPC p50"] = grpc[label]
        row["transport + client"] = grpc[label] - stages[profile.TOTAL]
      table.append(row)
    out.append(f"### A `score` request inside `eta serve` (L={length}, B={count}{on}): "
               "p50 ms per stage\n")
    out.append("The server's own functions, in a request's order, timed in process "
               "(serving/request_profile.py). `call` is the signature: its op time (CPU time, "
               "summed over threads) splits into the Transform graph on the raw ids and the model. "
               "`transport + client` is the stock client's gRPC p50 less the in-server total: "
               "HTTP/2, grpcio's threads and the client's own proto work.\n")
    columns = (["model"] + list(profile.STAGES) + ["transform ops", "model ops", profile.TOTAL,
                                                    "gRPC p50", "transport + client"])
    out.append(report.markdown_table(table, columns))
  if part.get("batching"):
    batching = part["batching"]
    first = batching[0]
    out.append(f"### serving_default under {first['clients']} concurrent clients, with and "
               f"without `--enable-batching`{on}\n")
    out.append(f"Each request: B tf.Examples carrying a history of {first['history_length']} "
               f"({first.get('model', 'eta (stock)')}); the batching defaults otherwise "
               "(max_batch_size 256, batch_timeout_micros 2000, 4 batch threads); "
               f"{first['clients']} gRPC workers.\n")
    out.append(report.markdown_table(batching, ["examples", "batching", "clients", "requests",
                                                "failed", "requests_per_s", "examples_per_s",
                                                "p50_ms", "p99_ms"],
                                     ["B", "batching", "clients", "requests", "failed",
                                      "requests/s", "examples/s", "p50 ms", "p99 ms"]))
  if part.get("breakdown"):
    stages = list(dict.fromkeys(s for times in part["breakdown"].values() for s in times))
    out.append(f"### Where the model's time goes (in process, L={length}, B={count}{on})\n")
    out.append("From TensorFlow's profiler on the end-to-end call: op time per stage in ms (CPU "
               "time summed over threads), and the wall time not spent in ops (dispatch).\n")
    out.append(report.markdown_table(
        [{"model": label, **times} for label, times in part["breakdown"].items()],
        ["model"] + stages))
  hamming = part.get("hamming")
  if hamming:
    out.append(f"### Hamming retrieval against the hardware limit (L={hamming['history_length']}, "
               f"B={hamming['candidates']}, k={hamming['k']}, "
               f"{_threads_text(hamming['threads'])})\n")
    out.append("The limit: one 64-bit XOR + popcount per pair in C, single thread, divided by "
               "the thread count; the kernels also select the k nearest.\n")
    kernel_rows = [{"what": "XOR + popcount limit (C)", "ns/pair": hamming["limit_ns_per_pair"],
                    "x limit": 1.0 if hamming["limit_ns_per_pair"] else None}]
    for kernel in (KERNEL_FUSED, KERNEL_STOCK):
      if f"{kernel}_ns_per_pair" in hamming:
        kernel_rows.append({"what": f"{kernel} kernel (distances + top-k)",
                            "ns/pair": hamming[f"{kernel}_ns_per_pair"],
                            "x limit": hamming.get(f"{kernel}_vs_limit")})
    out.append(report.markdown_table(kernel_rows, ["what", "ns/pair", "x limit"]))
  return out


def _plots(result, output_dir: str) -> None:
  threads = list(result["parts"])
  first = threads[0]
  rows = [r for r in result["rows"] if r["path"] == "in_process"]
  if rows:
    count = max(r["candidates"] for r in rows)
    series = {}
    for r in rows:
      if r["candidates"] == count:
        name = _label(r) if len(threads) == 1 else f"{_label(r)}, {_threads_key(r['threads'])} thr"
        xs, ys = series.setdefault(name, ([], []))
        xs.append(r["history_length"])
        ys.append(r["p50_ms"])
    report.line_plot(os.path.join(output_dir, "serving.png"), series, "history length L",
                     "p50 latency, ms (log)", f"Scoring 1 user x {count} candidates, in process",
                     logx=True, logy=True)
  breakdown = {(label if len(threads) == 1 else f"{label}, {key} thr"): times
               for key in threads for label, times in result["parts"][key]["breakdown"].items()}
  if breakdown:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stages = ["embed", "retrieval", "gather", "short_attention", "long_attention", "mlp",
              "other ops", "outside ops"]
    labels = list(breakdown)
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.6 * len(labels)))
    left = [0.0] * len(labels)
    for stage in stages:
      widths = [breakdown[label].get(stage, 0.0) for label in labels]
      axes.barh(labels, widths, left=left, label=stage)
      left = [a + b for a, b in zip(left, widths)]
    totals = [breakdown[label]["wall p50"] for label in labels]
    axes.scatter(totals, labels, color="black", marker="|", s=400, label="end-to-end", zorder=3)
    length, count = result["settings"]["target"]
    axes.set_xlabel("ms per call: op time per stage (summed over threads) + dispatch")
    axes.set_title(f"Where the time goes, L={length}, B={count}, in process"
                   + ("" if first == "default" and len(threads) == 1 else
                      f" ({', '.join(threads)} threads)"))
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "serving_breakdown.png"), dpi=110)
    plt.close(figure)


if __name__ == "__main__":
  from eta_ctr import runtime  # pylint: disable=g-import-not-at-top
  runtime.prepare()  # TensorFlow is not imported yet here
  sys.exit(worker_main(sys.argv[1:]))
