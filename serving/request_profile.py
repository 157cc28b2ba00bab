"""Where `eta serve` spends one Predict request, stage by stage.

Runs the built-in server's own functions, in the order a gRPC Predict request
runs them (grpc_service.Predict -> ServingCore.predict), on the request's
serialized bytes, and times each:

  parse       bytes -> PredictRequest (the gRPC handler's deserializer)
  decode      declared sizes bounded, TensorProtos -> ndarrays
  validate    validation.check_request: specs, limits, the shared id / time rules
  to_tensors  ndarrays -> eager tensors (Servable.to_tensors)
  call        the signature itself: the Transform graph on the raw ids + the model
  fetch       output tensors -> ndarrays
  encode      ndarrays -> PredictResponse
  serialize   PredictResponse -> bytes

Left out is the transport: HTTP/2 framing, grpcio's thread hand-offs and the
client's own proto work; a benchmark reads it as the latency the client sees
minus the in-server total. Batching is left out too (it changes what one
request costs).
"""

import time
from typing import Dict, List, Mapping, Tuple

import numpy as np
from tensorflow_serving.apis import predict_pb2

from serving import grpc_service, protos, tensors, validation
from serving.core import Prediction
from serving.limits import Limits
from serving.servable import Servable

STAGES = ("parse", "decode", "validate", "to_tensors", "call", "fetch", "encode", "serialize")
TOTAL = "in-server total"


def run_stages(servable: Servable, data: bytes, limits: Limits, model_name: str = "eta"
               ) -> Tuple[Dict[str, float], bytes]:
  """One request through every stage: ({stage: seconds}, the response bytes)."""
  clock = time.perf_counter
  seconds = {}
  start = clock()
  request = grpc_service.deserializer(predict_pb2.PredictRequest)(data)
  if not isinstance(request, predict_pb2.PredictRequest):
    raise ValueError(f"not a PredictRequest: {request.error}")
  seconds["parse"], start = clock() - start, clock()
  tensors.check_total_elements(request.inputs.items(), limits.max_elements)
  signature = request.model_spec.signature_name or "serving_default"
  specs = servable.input_specs[signature]
  inputs = grpc_service.decode_inputs(request)
  seconds["decode"], start = clock() - start, clock()
  validation.check_request(specs, inputs, limits, servable.features)
  seconds["validate"], start = clock() - start, clock()
  feed = servable.to_tensors(signature, inputs)
  seconds["to_tensors"], start = clock() - start, clock()
  outputs = servable.call(signature, feed)
  seconds["call"], start = clock() - start, clock()
  arrays = servable.fetch(outputs)
  if request.output_filter:
    arrays = {name: arrays[name] for name in request.output_filter}
  seconds["fetch"], start = clock() - start, clock()
  response = protos.predict_response(model_name, Prediction(servable.version, signature, arrays))
  seconds["encode"], start = clock() - start, clock()
  serialized = response.SerializeToString()
  seconds["serialize"] = clock() - start
  return seconds, serialized


def profile_request(servable: Servable, data: bytes, limits: Limits, warmup: int = 3,
                    min_calls: int = 20, min_seconds: float = 1.0,
                    model_name: str = "eta") -> Dict[str, float]:
  """{stage: p50 ms, ..., TOTAL: p50 ms of the per-request sums} over repeated requests."""
  for _ in range(warmup):
    run_stages(servable, data, limits, model_name)
  samples: List[Mapping[str, float]] = []
  started = time.perf_counter()
  while len(samples) < min_calls or time.perf_counter() - started < min_seconds:
    samples.append(run_stages(servable, data, limits, model_name)[0])
  result = {stage: float(np.median([s[stage] for s in samples])) * 1e3 for stage in STAGES}
  result[TOTAL] = float(np.median([sum(s.values()) for s in samples])) * 1e3
  return result
