"""The REST API: both request forms equal gRPC; status, metadata; 400/404/413/503 with
reasons; chunked bodies, keep-alive, the concurrency bound and a graceful stop."""

import base64
import http.client
import json
import socket
import threading
import time
import urllib.parse

import numpy as np
import tensorflow as tf

from serving import requests
from serving.core import Prediction
from serving.limits import Limits
from serving.rest import RestServer
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


def test_oversize_body_is_413(model_dir):
  server = start_server(model_dir, limits=Limits(max_message_bytes=1024))
  try:
    status, reply = call(server, "POST", "/v1/models/eta:predict",
                         {"instances": ["x" * 2000]})
    assert status == 413 and "--max-message-mb" in reply["error"]
    # Far over the limit: answered from the headers alone, before any body byte,
    # and the connection is closed.
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=30) as raw:
      raw.sendall(b"POST /v1/models/eta:predict HTTP/1.1\r\nHost: x\r\n"
                  b"Content-Length: 50000000\r\n\r\n")
      answer = b""
      while True:
        data = raw.recv(65536)
        if not data:
          break
        answer += data
    assert answer.startswith(b"HTTP/1.1 413") and b"--max-message-mb" in answer
  finally:
    server.stop()


def _connection(server) -> http.client.HTTPConnection:
  url = urllib.parse.urlparse(server.rest_url)
  return http.client.HTTPConnection(url.hostname, url.port, timeout=30)


def _exchange(connection, method, path, body=None, headers=None):
  connection.request(method, path, body=body, headers=headers or {})
  response = connection.getresponse()
  return response.status, json.loads(response.read()), response


def test_chunked_bodies_are_accepted_and_connections_kept_alive(server):
  payload = json.dumps({"instances": [_b64(e) for e in requests.examples_for_query(QUERY)]})
  expected = call(server, "POST", "/v1/models/eta:predict", json.loads(payload))[1]
  connection = _connection(server)
  try:
    pieces = (payload[i:i + 50].encode() for i in range(0, len(payload), 50))
    status, body, response = _exchange(  # an iterable body: http.client sends it chunked
        connection, "POST", "/v1/models/eta:predict", pieces)
    assert status == 200 and not response.will_close
    np.testing.assert_allclose(body["predictions"], expected["predictions"], atol=1e-6)
    sock = connection.sock
    for method, path, data, code in [("GET", "/v1/models/eta", None, 200),
                                     ("GET", "/nowhere", None, 404),
                                     ("GET", "/v1/models/eta", b"ignored body", 200),
                                     ("POST", "/v1/models/eta:predict", payload.encode(), 200),
                                     ("POST", "/v1/models/eta:predict", b"{oops", 400)]:
      status, body, response = _exchange(connection, method, path, data)
      assert status == code and not response.will_close, (path, body)
      assert connection.sock is sock  # the same connection throughout
  finally:
    connection.close()


def test_oversize_chunked_body_is_413_and_serving_goes_on(model_dir):
  server = start_server(model_dir, limits=Limits(max_message_bytes=1024))
  try:
    connection = _connection(server)
    status, reply, response = _exchange(connection, "POST", "/v1/models/eta:predict",
                                        (b"x" * 400 for _ in range(10)))
    assert status == 413 and "--max-message-mb" in reply["error"]
    assert not response.will_close  # the body was read: the connection serves on
    assert _exchange(connection, "GET", "/v1/models/eta")[0] == 200
    connection.close()
    assert call(server, "GET", "/v1/models/eta")[0] == 200
  finally:
    server.stop()


def test_other_methods_get_json_errors(server):
  status, reply = call(server, "OPTIONS", "/v1/models/eta")
  assert status == 405 and reply["error"]
  status, reply = call(server, "DELETE", "/v1/models/eta")
  assert status == 501 and "not supported" in reply["error"]


class _BlockingCore:
  """Just enough of a ServingCore for RestServer: predictions wait for `release`."""

  limits = Limits()

  def __init__(self):
    self.started = threading.Semaphore(0)
    self.release = threading.Event()

  def predict(self, name, version, signature_name, decode):
    decode({"x": tf.TensorSpec([None], tf.float32)})
    self.started.release()
    self.release.wait(20)
    return Prediction(1, "serving_default", {"y": np.array([0.5], np.float32)})


def _post_in_background(port, results):
  def post():
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
      status, body, _ = _exchange(connection, "POST", "/v1/models/eta:predict",
                                  b'{"instances": [1.0]}')
      results.append((status, body))
    except OSError as error:
      results.append((None, str(error)))
    finally:
      connection.close()
  thread = threading.Thread(target=post)
  thread.start()
  return thread


def test_concurrency_is_bounded_and_stop_lets_predictions_finish():
  core = _BlockingCore()
  rest = RestServer(core, "127.0.0.1", 0, max_concurrent=1)
  rest.start()
  results = []
  running = _post_in_background(rest.port, results)
  assert core.started.acquire(timeout=10)        # one prediction runs
  queued = _post_in_background(rest.port, results)  # one waits for the thread
  deadline = time.time() + 10
  while rest._state.in_flight < 2 and time.time() < deadline:  # pylint: disable=protected-access
    time.sleep(0.01)
  assert rest._state.in_flight == 2  # pylint: disable=protected-access
  third = http.client.HTTPConnection("127.0.0.1", rest.port, timeout=30)
  status, body, _ = _exchange(third, "POST", "/v1/models/eta:predict", b'{"instances": [1]}')
  third.close()
  assert status == 503 and "busy" in body["error"]
  stopper = threading.Thread(target=rest.stop, kwargs={"grace": 10})
  stopper.start()
  time.sleep(0.3)
  assert stopper.is_alive()  # waiting for the predictions in flight
  core.release.set()
  for thread in (running, queued, stopper):
    thread.join(15)
  assert [status for status, _ in results] == [200, 200]
  assert results[0][1] == {"predictions": [0.5]}
  try:
    http.client.HTTPConnection("127.0.0.1", rest.port, timeout=2).request("GET", "/")
    raise AssertionError("still accepting after stop")
  except OSError:
    pass


def test_stop_gives_up_on_a_stuck_prediction_after_the_grace():
  core = _BlockingCore()
  rest = RestServer(core, "127.0.0.1", 0, max_concurrent=2)
  rest.start()
  results = []
  thread = _post_in_background(rest.port, results)
  assert core.started.acquire(timeout=10)
  started = time.time()
  rest.stop(grace=0.5)
  assert time.time() - started < 5
  core.release.set()
  thread.join(10)
  assert results and results[0][0] != 200  # the connection was closed under it
