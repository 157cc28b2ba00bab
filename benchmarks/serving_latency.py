"""Serving latency: one user x B candidates scored against a history of L behaviours.

For every model, L and B it times the same request three ways:
  in_process  the Keras model's candidate_logits (what `score` runs after Transform)
  savedmodel  the exported SavedModel's `score` signature, raw ids in (Transform included)
  grpc        `score` through `eta serve` (the built-in TF Serving-compatible server, in
              its own process) with the stock tensorflow-serving-api client
ETA runs with both retrieval kernels: `fused` (the compiled Hamming top-k; the default
in process) and `stock` (plain TF ops; what exports carry by default, so that stock
tensorflow_model_server can load them).

Writes DIR/serving.json (rows: model, retrieval_kernel, history_length, candidates,
path, p50_ms, p99_ms, calls), DIR/serving.md (tables, ratios against din_long and din,
the targets, the stage breakdown, the Hamming kernels against the hardware limit),
DIR/serving.png (p50 against L) and DIR/serving_breakdown.png.
"""

import dataclasses
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from benchmarks import report
from eta_ctr.config import KERNEL_AUTO, KERNEL_FUSED, KERNEL_STOCK

log = logging.getLogger(__name__)

PATHS = ("in_process", "savedmodel", "grpc")
# The targets at L = B = 1024, in process: ETA against the two references.
TARGETS = {"din_long": 0.20, "din": 1.5}
MODEL_NAME = "eta"


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


def _settings(args) -> Dict:
  if args.smoke:
    return {"lengths": [32], "candidates": [1, 8], "models": ["eta", "din"],
            "paths": list(PATHS), "vocab": 300, "top_k": 8, "grpc_once": True,
            "timing": {"warmup": 1, "min_calls": 3, "min_seconds": 0.0},
            "target": (32, 8)}
  return {"lengths": _ints(args.history_lengths), "candidates": _ints(args.candidates),
          "models": _names(args.models), "paths": _names(args.paths), "vocab": args.vocab,
          "top_k": args.top_k,
          "timing": {"warmup": 3, "min_calls": args.min_calls, "min_seconds": args.min_seconds},
          "target": (args.target_length, args.target_candidates)}


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
  if name != "eta":
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


def _start_server(model_dir: str, max_history: int, max_candidates: int):
  """`eta serve` in its own process; returns (process, target) once the model is AVAILABLE."""
  import grpc
  from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc
  port = _free_port()
  command = [sys.executable, "-m", "eta_ctr.cli", "serve", "--model-dir", model_dir,
             "--model-name", MODEL_NAME, "--grpc-port", str(port), "--rest-port", "0",
             "--backend", "builtin", "--max-history", str(max_history),
             "--max-candidates", str(max_candidates), "--workers", "2"]
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


def _grpc(export_dir, name, kernel, length, candidate_counts, vocab, timing) -> List[Dict]:
  from benchmarks.synthetic_requests import raw_request
  from models.signatures import SCORE_SIGNATURE
  from serving.loadtest import _stub
  from serving.requests import predict_request, score_inputs
  process, target = _start_server(os.path.dirname(export_dir), max(length, 4096),
                                   max(max(candidate_counts), 2048))
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
    process.terminate()
    process.wait(timeout=60)


def measure_latency(settings: Dict, work_dir: str) -> List[Dict]:
  from benchmarks.synthetic_requests import build_transform_graph
  rows: List[Dict] = []
  timing, vocab = settings["timing"], settings["vocab"]
  for length in settings["lengths"]:
    tft_dir = None
    for name in settings["models"]:
      config = model_config(name, length, settings["top_k"])
      model = build_model(config, vocab)
      for kernel in _kernels(name):
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
          rows += _grpc(export_dir, name, kernel, length, settings["candidates"], vocab, timing)
        shutil.rmtree(os.path.dirname(export_dir), ignore_errors=True)
  return rows


def ratios(rows: List[Dict]) -> List[Dict]:
  """p50 of ETA (each kernel) over din_long and din, per (path, L, B), where both exist."""
  index = {(r["model"], r["retrieval_kernel"], r["path"], r["history_length"], r["candidates"]):
           r["p50_ms"] for r in rows}
  result = []
  for (model, kernel, path, length, count), p50 in sorted(index.items(), key=str):
    if model != "eta":
      continue
    entry = {"retrieval_kernel": kernel, "path": path, "history_length": length,
             "candidates": count, "eta_p50_ms": p50}
    for reference in TARGETS:
      other = index.get((reference, None, path, length, count))
      entry[f"eta_over_{reference}"] = None if other is None else p50 / other
    result.append(entry)
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


def run(args) -> Dict:
  settings = _settings(args)
  os.makedirs(args.output, exist_ok=True)
  work_dir = tempfile.mkdtemp(prefix="serving-", dir=args.output)
  try:
    rows = measure_latency(settings, work_dir)
  finally:
    shutil.rmtree(work_dir, ignore_errors=True)
  length, count = settings["target"]
  from benchmarks import hamming_limit
  log.info("serving: Hamming kernels against the XOR + popcount limit at L=%d B=%d", length, count)
  hamming = hamming_limit.measure(length, count, min(settings["top_k"], length),
                                  **settings["timing"])
  stages = _breakdowns(settings)
  result = {"machine": report.machine_info(), "settings": {k: v for k, v in settings.items()},
            "rows": rows, "ratios": ratios(rows), "breakdown": stages, "hamming": hamming}
  report.write_json(os.path.join(args.output, "serving.json"), rows)
  report.write_json(os.path.join(args.output, "serving_details.json"), result)
  markdown = render(result)
  report.write_text(os.path.join(args.output, "serving.md"), markdown)
  _plots(result, args.output)
  result["markdown"] = markdown
  return result


def _label(row) -> str:
  return f"{row['model']} ({row['retrieval_kernel']})" if row["retrieval_kernel"] else row["model"]


def _target_lines(result) -> List[str]:
  length, count = result["settings"]["target"]
  lines = []
  for entry in result["ratios"]:
    if (entry["path"], entry["history_length"], entry["candidates"]) != ("in_process", length,
                                                                        count):
      continue
    for reference, bound in TARGETS.items():
      value = entry[f"eta_over_{reference}"]
      if value is None:
        continue
      verdict = "met" if value <= bound else "MISSED"
      lines.append(f"- ETA ({entry['retrieval_kernel']}) / {reference} at L={length}, B={count}, "
                   f"in process: **{value:.2f}** (target <= {bound}): {verdict}")
  return lines


def render(result) -> str:
  rows, settings = result["rows"], result["settings"]
  out = ["## Serving latency\n",
         f"One user x B candidates against a history of L; k={settings['top_k']}, "
         f"catalogue {settings['vocab']:,} items; p50 / p99 in ms over at least "
         f"{settings['timing']['min_calls']} calls per point (untrained weights: latency does "
         "not depend on them).\n"]
  out += _target_lines(result) + [""]
  for path in PATHS:
    path_rows = [r for r in rows if r["path"] == path]
    if not path_rows:
      continue
    labels = list(dict.fromkeys(_label(r) for r in path_rows))
    table = {}
    for r in path_rows:
      cell = table.setdefault((r["history_length"], r["candidates"]),
                              {"L": r["history_length"], "B": r["candidates"]})
      cell[_label(r)] = f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}"
    out.append(f"### {path}: p50 / p99 ms\n")
    out.append(report.markdown_table(table.values(), ["L", "B"] + labels))
  ratio_rows = [r for r in result["ratios"] if r["eta_over_din_long"] or r["eta_over_din"]]
  if ratio_rows:
    out.append("### ETA's p50 over the references (lower is better)\n")
    out.append(report.markdown_table(ratio_rows, ["path", "retrieval_kernel", "history_length",
                                                  "candidates", "eta_over_din_long",
                                                  "eta_over_din"],
                                     ["path", "kernel", "L", "B", "eta / din_long", "eta / din"]))
  if result["breakdown"]:
    length, count = settings["target"]
    stages = list(dict.fromkeys(s for times in result["breakdown"].values() for s in times))
    out.append(f"### Where the time goes (in process, L={length}, B={count})\n")
    out.append("From TensorFlow's profiler on the end-to-end call: op time per stage in ms (CPU "
               "time summed over threads), and the wall time not spent in ops (dispatch).\n")
    out.append(report.markdown_table(
        [{"model": label, **times} for label, times in result["breakdown"].items()],
        ["model"] + stages))
  hamming = result["hamming"]
  if hamming:
    out.append(f"### Hamming retrieval against the hardware limit (L={hamming['history_length']}, "
               f"B={hamming['candidates']}, k={hamming['k']}, {hamming['threads']} threads)\n")
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
  out.append("Files: serving.json (rows), serving_details.json (ratios, breakdown, Hamming), "
             "serving.png, serving_breakdown.png.\n")
  return "\n".join(out)


def _plots(result, output_dir: str) -> None:
  rows = [r for r in result["rows"] if r["path"] == "in_process"]
  if rows:
    count = max(r["candidates"] for r in rows)
    series = {}
    for r in rows:
      if r["candidates"] == count:
        xs, ys = series.setdefault(_label(r), ([], []))
        xs.append(r["history_length"])
        ys.append(r["p50_ms"])
    report.line_plot(os.path.join(output_dir, "serving.png"), series, "history length L",
                     "p50 latency, ms (log)", f"Scoring 1 user x {count} candidates, in process",
                     logx=True, logy=True)
  if result["breakdown"]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    stages = ["embed", "retrieval", "gather", "short_attention", "long_attention", "mlp",
              "other ops", "outside ops"]
    labels = list(result["breakdown"])
    figure, axes = plt.subplots(figsize=(10, 1.2 + 0.6 * len(labels)))
    left = [0.0] * len(labels)
    for stage in stages:
      widths = [result["breakdown"][label].get(stage, 0.0) for label in labels]
      axes.barh(labels, widths, left=left, label=stage)
      left = [a + b for a, b in zip(left, widths)]
    totals = [result["breakdown"][label]["wall p50"] for label in labels]
    axes.scatter(totals, labels, color="black", marker="|", s=400, label="end-to-end", zorder=3)
    length, count = result["settings"]["target"]
    axes.set_xlabel("ms per call: op time per stage (summed over threads) + dispatch")
    axes.set_title(f"Where the time goes, L={length}, B={count}, in process")
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(os.path.join(output_dir, "serving_breakdown.png"), dpi=110)
    plt.close(figure)
