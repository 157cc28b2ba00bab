"""The REST API: both request forms equal gRPC; status, metadata; 400/404 with reasons."""

import base64

import numpy as np

from serving import requests
from serving.limits import Limits
from serving.testing import QUERY, examples_request, outputs, score_request, start_server
from serving.testing import rest_call as call


def _b64(data: bytes):
  return {"b64": base64.b64encode(data).decode()}


def test_rest_predict_in_both_forms_equals_grpc(server, stubs):
  predict, _ = stubs
  grpc_default = outputs(predict.Predict(examples_request()))["probabilities"]
  serialized = requests.examples_for_query(QUERY)
  status, rows = call(server, "POST", "/v1/models/eta:predict",
                      {"instances": [_b64(e) for e in serialized]})
  assert status == 200
  np.testing.assert_allclose(rows["predictions"], grpc_default, atol=1e-6)
  status, columns = call(server, "POST", "/v1/models/eta/versions/1:predict",
                         {"signature_name": "serving_default",
                          "inputs": {"examples": [_b64(e) for e in serialized]}})
  assert status == 200
  np.testing.assert_allclose(columns["outputs"], grpc_default, atol=1e-6)
  grpc_score = outputs(predict.Predict(score_request()))
  inputs = {name: (value.tolist() if value.dtype != object else [v.decode() for v in value])
            for name, value in requests.score_inputs(QUERY).items()}
  status, scored = call(server, "POST", "/v1/models/eta:predict",
                        {"signature_name": "score", "inputs": inputs})
  assert status == 200
  for name, value in grpc_score.items():
    np.testing.assert_allclose(scored["outputs"][name], value, atol=1e-6)


def test_status_and_metadata(server):
  status, body = call(server, "GET", "/v1/models/eta")
  assert status == 200
  assert body["model_version_status"] == [
      {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
                                                        "error_message": ""}}]
  status, body = call(server, "GET", "/v1/models/eta/versions/1/metadata")
  assert status == 200 and body["model_spec"]["version"] == "1"
  signatures = body["metadata"]["signature_def"]["signature_def"]
  assert {"serving_default", "score"} <= set(signatures)
  assert signatures["score"]["inputs"]["request_time"]["dtype"] == "DT_INT64"


def test_bad_rest_requests_are_400_or_404_and_serving_goes_on(server):
  score = {"signature_name": "score", "inputs": {
      "hist_item_ids": ["h"], "hist_categories": ["c"], "hist_timestamps": [1],
      "item_ids": ["i"], "categories": ["c"], "request_time": 5}}
  cases = [
      ("POST", "/v1/models/other:predict", score, 404, "model 'other'"),
      ("POST", "/v1/models/eta/versions/9:predict", score, 404, "version 9"),
      ("POST", "/v1/models/eta/versions/x:predict", score, 400, "version must be"),
      ("POST", "/v1/models/eta/labels/canary:predict", score, 404, "label"),
      ("POST", "/v1/models/eta:predict", {**score, "signature_name": "nope"}, 404,
       "signature 'nope'"),
      ("POST", "/v1/models/eta:predict", b"{oops", 400, "not valid JSON"),
      ("POST", "/v1/models/eta:predict", {"signature_name": "score", "inputs": {
          **score["inputs"], "item_ids": [], "categories": []}}, 400, "no candidates"),
      ("POST", "/v1/models/eta:predict", {"signature_name": "score", "inputs": {
          **score["inputs"], "request_time": "soon"}}, 400, "expected a number"),
      ("POST", "/v1/models/eta:predict", {"instances": [_b64(b"\xff\xff\xff")]}, 400,
       "not a serialized tf.Example"),
      ("GET", "/v1/models/other", None, 404, "model 'other'"),
      ("GET", "/v2/whatever", None, 404, "no such resource"),
  ]
  for method, path, body, expected, words in cases:
    status, reply = call(server, method, path, body)
    assert (status, words in reply.get("error", "")) == (expected, True), (path, reply)
  status, reply = call(server, "POST", "/v1/models/eta:predict", score)
  assert status == 200 and len(reply["outputs"]["probabilities"]) == 1


def test_oversize_body_is_refused_before_reading(model_dir):
  server = start_server(model_dir, limits=Limits(max_message_bytes=1024))
  try:
    status, reply = call(server, "POST", "/v1/models/eta:predict",
                         {"instances": ["x" * 2000]})
    assert status == 413 and "--max-message-mb" in reply["error"]
  finally:
    server.stop()
