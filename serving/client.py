"""`eta predict`: a PredictRequest to a TF Serving-compatible server, ranked output.

It uses only the stock tensorflow-serving-api client (PredictionServiceStub,
PredictRequest, tf.make_tensor_proto), so it works against the real
tensorflow_model_server as well as the built-in one.
"""

import dataclasses
import json
import sys
from typing import Dict, List, Optional

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from eta_ctr import flags
from models import signatures
from serving import explain, requests


def call_predict(target: str, request: predict_pb2.PredictRequest, timeout: float = 30.0,
                 max_message_bytes: int = 64 << 20) -> predict_pb2.PredictResponse:
  options = [("grpc.max_receive_message_length", max_message_bytes),
             ("grpc.max_send_message_length", max_message_bytes)]
  with grpc.insecure_channel(target, options=options) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    return stub.Predict(request, timeout=timeout)


@dataclasses.dataclass
class Plan:
  """What to send and how to explain the answer."""
  signature: str
  inputs: Dict[str, np.ndarray]
  candidates: List[requests.Candidate]
  history: List[requests.Behaviour]   # the one shared history; empty if per example
  described: str


def build(args) -> Plan:
  """The request `eta predict` sends, from its files and flags (the declared side
  features' values included, --feature / --features-file).

  Raises:
    ValueError: a file or flag is malformed, or a feature value breaks the ingest's rule.
  """
  specs = flags.features_from_args(args)
  examples: Optional[List[tf.train.Example]] = None
  if args.history_file:
    query = requests.load_history_file(args.history_file, specs)
  else:
    examples = requests.read_examples(args.example_file, args.limit, specs)
    query = requests.query_from_examples(examples, specs)
  if args.candidates:
    query.candidates = requests.parse_candidates(args.candidates)
    examples = None  # the examples' own candidates are replaced
  if args.request_time is not None:
    query.request_time = args.request_time
  signature = args.signature or (signatures.DEFAULT_SIGNATURE if examples is not None
                                 else signatures.SCORE_SIGNATURE)
  if not query.candidates:
    raise ValueError("no candidates: list them in the file or with --candidates")
  shared = f"{len(query.candidates)} candidates, history of {len(query.history)}"
  if signature == signatures.SCORE_SIGNATURE:
    return Plan(signature, requests.score_inputs(query, specs), query.candidates,
                query.history, shared)
  if examples is not None:
    if args.request_time is not None:
      raise ValueError("--request-time does not apply to serving_default on --example-file "
                       "(each example has its own timestamp)")
    serialized = [e.SerializeToString() for e in examples]
    candidates, history = [requests.candidate_of(e) for e in examples], []
    described = f"{len(examples)} examples, each with its own history"
  else:
    serialized = requests.examples_for_query(query, specs)
    candidates, history, described = query.candidates, query.history, shared
  array = np.empty(len(serialized), dtype=object)
  array[:] = serialized
  return Plan(signature, {signatures.EXAMPLES: array}, candidates, history, described)


def run(args, out=None, err=None) -> int:
  out, err = out or sys.stdout, err or sys.stderr  # looked up per call (tests swap them)
  try:
    plan = build(args)
  except (ValueError, OSError, tf.errors.OpError) as error:
    print(f"eta predict: {error}", file=err)
    return 2
  request = requests.predict_request(args.model_name, plan.signature, plan.inputs)
  try:
    response = call_predict(args.server, request, args.timeout, args.max_message_mb << 20)
  except grpc.RpcError as error:
    print(f"eta predict: {error.code().name}: {error.details()}", file=err)
    return 1
  outputs = {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}
  probabilities = outputs.get(signatures.PROBABILITIES)
  if probabilities is None or probabilities.shape != (len(plan.candidates),):
    print(f"eta predict: the response has no '{signatures.PROBABILITIES}' of shape "
          f"[{len(plan.candidates)}]; outputs: {sorted(outputs)}", file=err)
    return 1
  ranked = explain.rank(plan.candidates, probabilities, plan.history,
                        outputs.get(signatures.RETRIEVED_POSITIONS),
                        outputs.get(signatures.RETRIEVED_DISTANCES))
  spec = response.model_spec
  if args.json:
    print(json.dumps({"model": spec.name, "version": spec.version.value,
                      "signature": plan.signature, "ranking": explain.as_json(ranked)}),
          file=out)
    return 0
  print(f"model '{spec.name}' version {spec.version.value}, signature {plan.signature}: "
        f"{plan.described}", file=out)
  print(explain.format_ranking(ranked), file=out)
  return 0
