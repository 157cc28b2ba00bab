"""Load and fuzz a running server with the stock tensorflow-serving-api client.

  python -m serving.loadtest --server localhost:8500 --examples DIR [--clients 1,4,8]
      p50/p99 latency and throughput of `score` for one user (L behaviours) x B candidates
  python -m serving.loadtest ... --signature serving_default [--candidates 8]
      the same with B tf.Examples per request (what `eta serve --enable-batching` batches)
  python -m serving.loadtest --server localhost:8500 --examples DIR --fuzz 5000
      random malformed requests; counts status codes and checks the server still answers

DIR is an ingest output (Split-eval/*.gz): histories and candidates come from real
examples, so ids are in the vocabulary.
"""

import argparse
import collections
import json
import random
import threading
import time
from typing import Dict, List

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from components import example_io
from models import signatures
from serving import requests
from serving.requests import Behaviour, Candidate, ScoreQuery


def query_from_examples_dir(examples_dir: str, history_length: int,
                            candidates: int) -> ScoreQuery:
  """A load-test query from an ingest output's eval split: the longest real history,
  cut (or extended further back in time) to history_length behaviours, and
  `candidates` distinct real items. (requests.query_from_examples, by contrast,
  turns given tf.Examples into one query: the first one's history, every item.)"""
  examples = list(example_io.read_examples(examples_dir, "eval"))
  longest = max(examples, key=lambda ex: len(ex["hist_item_ids"]))
  history = [Behaviour(i, c, t) for i, c, t in zip(longest["hist_item_ids"],
                                                     longest["hist_categories"],
                                                     longest["hist_timestamps"])]
  while len(history) < history_length:  # repeat older behaviours further back in time
    oldest = history[-1].timestamp
    history += [Behaviour(b.item_id, b.category, oldest - 1 - k)
                for k, b in enumerate(history[:history_length - len(history)])]
  seen, items = set(), []
  for ex in examples:
    if ex["item_id"][0] not in seen:
      seen.add(ex["item_id"][0])
      items.append(Candidate(ex["item_id"][0], ex["category"][0]))
    if len(items) == candidates:
      break
  return ScoreQuery(history=history[:history_length], candidates=items,
                    request_time=longest["timestamp"][0])


def query_request(model_name: str, signature: str, query: ScoreQuery):
  """The PredictRequest of a query: `score` inputs, or for serving_default one
  tf.Example per candidate, each carrying the history."""
  if signature == signatures.DEFAULT_SIGNATURE:
    examples = np.empty(len(query.candidates), dtype=object)
    examples[:] = requests.examples_for_query(query)
    return requests.predict_request(model_name, signature, {signatures.EXAMPLES: examples})
  return requests.predict_request(model_name, signature, requests.score_inputs(query))


def _stub(target: str, max_mb: int = 64):
  options = [("grpc.max_send_message_length", max_mb << 20),
             ("grpc.max_receive_message_length", max_mb << 20)]
  return prediction_service_pb2_grpc.PredictionServiceStub(
      grpc.insecure_channel(target, options=options))


def measure(target: str, request, clients: int, seconds: float) -> Dict[str, float]:
  """Closed-loop load: `clients` threads send the request back to back for `seconds`."""
  latencies: List[float] = []
  failures = collections.Counter()
  lock = threading.Lock()
  deadline = time.time() + seconds

  def worker():
    stub = _stub(target)
    stub.Predict(request, timeout=60)  # warm this channel
    while time.time() < deadline:
      started = time.perf_counter()
      try:
        stub.Predict(request, timeout=60)
        elapsed = time.perf_counter() - started
        with lock:
          latencies.append(elapsed)
      except grpc.RpcError as error:
        with lock:
          failures[error.code().name] += 1

  threads = [threading.Thread(target=worker) for _ in range(clients)]
  started = time.time()
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  wall = time.time() - started
  ms = np.array(latencies) * 1000
  return {"clients": clients, "requests": len(latencies), "failed": sum(failures.values()),
          "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
          "requests_per_s": len(latencies) / wall}


def _mutations(good, rng: random.Random):
  """A random malformed variant of a good score request."""
  request = type(good)()
  request.CopyFrom(good)
  names = list(request.inputs.keys())
  kind = rng.randrange(10)
  if kind == 0:
    del request.inputs[rng.choice(names)]
  elif kind == 1:
    request.inputs[f"extra_{rng.randrange(99)}"].CopyFrom(tf.make_tensor_proto([1, 2]))
  elif kind == 2:
    name = rng.choice(names)
    request.inputs[name].CopyFrom(tf.make_tensor_proto(
        rng.choice([np.float32(1.5), np.array([1.0, 2.0]), np.array([[1, 2]], np.int32)])))
  elif kind == 3:
    proto = request.inputs[rng.choice(names)]
    proto.tensor_content = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
  elif kind == 4:
    proto = request.inputs[rng.choice(names)]
    proto.tensor_shape.dim.add().size = rng.choice([0, 3, 10**9])
  elif kind == 5:
    request.model_spec.name = rng.choice(["", "etaa", "\x00", "x" * 300])
  elif kind == 6:
    request.model_spec.signature_name = rng.choice(["scores", "predict", "\xff", "x" * 100])
  elif kind == 7:
    empty = np.array([], dtype=object)
    request.inputs[rng.choice([signatures.HIST_ITEM_IDS, signatures.ITEM_IDS])].CopyFrom(
        tf.make_tensor_proto(empty, dtype=tf.string))
  elif kind == 8:
    request.inputs[signatures.HIST_TIMESTAMPS].CopyFrom(tf.make_tensor_proto(
        np.array([rng.randrange(-10**12, 10**13) for _ in range(3)], np.int64)))
  else:
    request.model_spec.version.value = rng.randrange(1, 10**6)
  return request


def fuzz(target: str, good, count: int, seed: int = 0) -> Dict:
  """Sends `count` malformed requests (and a good one every 50); returns the tally."""
  rng = random.Random(seed)
  stub = _stub(target)
  codes = collections.Counter()
  good_failures = 0
  for index in range(count):
    try:
      stub.Predict(_mutations(good, rng), timeout=30)
      codes["OK"] += 1
    except grpc.RpcError as error:
      codes[error.code().name] += 1
    if index % 50 == 0:
      try:
        stub.Predict(good, timeout=30)
      except grpc.RpcError:
        good_failures += 1
  alive = True
  try:
    stub.Predict(good, timeout=30)
  except grpc.RpcError:
    alive = False
  return {"malformed_requests": count, "status_codes": dict(codes),
          "good_requests_failed_in_between": good_failures, "server_alive_after": alive,
          "crashes": 0 if alive else 1}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--server", default="localhost:8500")
  parser.add_argument("--model-name", default="eta")
  parser.add_argument("--examples", required=True, help="an ingest output directory")
  parser.add_argument("--history-length", type=int, default=256)
  parser.add_argument("--candidates", type=int, default=100)
  parser.add_argument("--clients", default="1,4,8")
  parser.add_argument("--seconds", type=float, default=20)
  parser.add_argument("--fuzz", type=int, default=0)
  parser.add_argument("--signature", default=signatures.SCORE_SIGNATURE,
                      choices=(signatures.SCORE_SIGNATURE, signatures.DEFAULT_SIGNATURE),
                      help="serving_default: the candidates as tf.Examples, each carrying the "
                           "history (what a batching server batches; see `eta serve "
                           "--enable-batching`)")
  args = parser.parse_args(argv)
  query = query_from_examples_dir(args.examples, args.history_length, args.candidates)
  request = query_request(args.model_name, args.signature, query)
  if args.fuzz:
    print(json.dumps(fuzz(args.server, request, args.fuzz), indent=2))
    return 0
  rows = [measure(args.server, request, int(n), args.seconds) for n in args.clients.split(",")]
  print(f"{args.signature}: 1 user, L={len(query.history)}, B={len(query.candidates)}")
  print("| clients | requests | failed | p50 ms | p99 ms | requests/s |\n|---|---|---|---|---|---|")
  for row in rows:
    print(f"| {row['clients']} | {row['requests']} | {row['failed']} | {row['p50_ms']:.1f} "
          f"| {row['p99_ms']:.1f} | {row['requests_per_s']:.1f} |")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
