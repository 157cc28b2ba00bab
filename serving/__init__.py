"""Serving the pushed SavedModel: `eta serve` (TF Serving wire API) and `eta predict`.

The names of the ETA signatures' inputs and outputs live in models/signatures.py.

  errors.py          ServingError (a gRPC status code + message), HTTP mapping
  limits.py          what one request may ask for (the `eta serve` limit flags)
  validation.py      request checks against the signature specs, plus the ETA rules
  tensors.py         TensorProto <-> NumPy, bounded and total (never raises raw)
  json_codec.py      TF Serving REST JSON ("instances" / "inputs", {"b64": ...})
  protos.py          TF Serving's response protos, shared by gRPC and REST
  versions.py        numeric version directories and their on-disk fingerprint
  servable.py        one loaded version: signatures (called directly), specs, SignatureDefs
  warmup.py          one request through each signature before a version goes live
  manager.py         polls the model directory, loads + warms, switches, retires
  core.py            predict / metadata / status, independent of the transport
  batching.py        cross-request batching of serving_default (--enable-batching)
  request_profile.py one Predict request's time per stage, with the server's own functions
  grpc_service.py    PredictionService and ModelService on grpcio's generic handlers
  rest.py            the REST API on Tornado
  server.py          both transports + the poller + signal handling
  model_server.py    the real `tensorflow_model_server`: config files and argv
  requests.py        client side: history / example files -> request tensors
  explain.py         ranked candidates with the behaviours each one retrieved
  client.py          `eta predict` over the stock PredictionServiceStub
  cli.py             add_commands(subparsers): `serve` and `predict`
  loadtest.py        latency / throughput and malformed-request fuzzing of a running server
  testing.py         test support: a toy SavedModel, sample requests, a loopback server
"""
