"""`eta serve` on a model pushed by the real pipeline: the stock TF Serving client
over loopback gets what the SavedModel computes in process, on gRPC and REST; a
version pushed non-atomically under load is picked up with no failed request;
malformed requests get their status codes; SIGTERM stops the server cleanly."""

import base64
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc)

from serving import cli as serving_cli
from models import signatures
from serving import protos, requests
from serving.testing import bad_requests, outputs, rest_call, start_server

pytestmark = [pytest.mark.e2e,
              pytest.mark.filterwarnings("ignore:Unexpected end-group tag")]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def pushed(pipeline_run):
  """The session pipeline's first pushed version directory and some raw eval tf.Examples."""
  return {"version_dir": pipeline_run["first_version_dir"],
          "version": pipeline_run["version"], "eval_file": pipeline_run["eval_file"],
          "examples": requests.read_examples(pipeline_run["eval_file"], limit=256)}


def _serving_dir(root, pushed) -> str:
  """A serving directory of our own holding the pushed version (we push more into it)."""
  base = root / "models"
  base.mkdir()
  shutil.copytree(pushed["version_dir"], base / str(pushed["version"]))
  return str(base)


@pytest.fixture
def model_dir(tmp_path, pushed):
  return _serving_dir(tmp_path, pushed)


@pytest.fixture(scope="module")
def server(tmp_path_factory, pushed):
  """One server for the tests that do not change its model directory."""
  running = start_server(_serving_dir(tmp_path_factory.mktemp("shared"), pushed),
                         wait_seconds=120)
  yield running
  running.stop()


@pytest.fixture
def stub(server):
  with grpc.insecure_channel(server.grpc_target) as channel:
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _query(pushed, candidates=8) -> requests.ScoreQuery:
  """A user's history from the first eval example that has one; eval items as candidates."""
  examples = pushed["examples"]
  start = next(i for i, e in enumerate(examples)
               if len(e.features.feature[signatures.HIST_ITEM_IDS].bytes_list.value) > 3)
  return requests.query_from_examples(examples[start:start + candidates])


def test_predict_on_both_signatures_equals_the_in_process_savedmodel(pushed, stub):
  model = tf.saved_model.load(pushed["version_dir"])
  serialized = [e.SerializeToString() for e in pushed["examples"][:64]]
  response = stub.Predict(requests.predict_request(
      "eta", "", {signatures.EXAMPLES: np.array(serialized, dtype=object)}))
  assert response.model_spec.version.value == pushed["version"]
  expected = model.signatures["serving_default"](examples=tf.constant(serialized))
  np.testing.assert_allclose(outputs(response)["probabilities"],
                             expected["probabilities"].numpy(), atol=1e-6)

  inputs = requests.score_inputs(_query(pushed))
  got = outputs(stub.Predict(requests.predict_request("eta", "score", inputs)))
  expected = model.signatures["score"](**{n: tf.constant(v) for n, v in inputs.items()})
  assert sorted(got) == sorted(expected) == [
      "probabilities", "retrieved_distances", "retrieved_positions"]
  np.testing.assert_allclose(got["probabilities"], expected["probabilities"].numpy(), atol=1e-6)
  for name in ("retrieved_positions", "retrieved_distances"):
    np.testing.assert_array_equal(got[name], expected[name].numpy())
  assert (got["retrieved_positions"] >= 0).any()


def test_status_metadata_and_rest_forms_equal_grpc(pushed, server, stub):
  with grpc.insecure_channel(server.grpc_target) as channel:
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "eta"
    (status,) = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        request).model_version_status
  assert (status.version, status.state) == (pushed["version"], status.AVAILABLE)
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = "eta"
  signature_defs = protos.unpack_signature_defs(stub.GetModelMetadata(request)).signature_def
  assert {"serving_default", "score"} <= set(signature_defs)
  assert set(signature_defs["score"].outputs) == {
      "probabilities", "retrieved_positions", "retrieved_distances"}

  serialized = [e.SerializeToString() for e in pushed["examples"][:16]]
  via_grpc = outputs(stub.Predict(requests.predict_request(
      "eta", "", {signatures.EXAMPLES: np.array(serialized, dtype=object)})))["probabilities"]
  b64 = [{"b64": base64.b64encode(s).decode()} for s in serialized]
  status, rows = rest_call(server, "POST", "/v1/models/eta:predict", {"instances": b64})
  assert status == 200
  np.testing.assert_allclose(rows["predictions"], via_grpc, atol=1e-6)
  status, columns = rest_call(server, "POST", "/v1/models/eta:predict",
                              {"inputs": {"examples": b64}})
  assert status == 200
  np.testing.assert_allclose(columns["outputs"], via_grpc, atol=1e-6)

  inputs = requests.score_inputs(_query(pushed))
  via_grpc = outputs(stub.Predict(requests.predict_request("eta", "score", inputs)))
  as_json = {n: v.tolist() if v.dtype != object else [x.decode() for x in v]
             for n, v in inputs.items()}
  status, scored = rest_call(server, "POST", "/v1/models/eta:predict",
                             {"signature_name": "score", "inputs": as_json})
  assert status == 200
  for name, value in via_grpc.items():
    np.testing.assert_allclose(scored["outputs"][name], value, atol=1e-6)


def _push_non_atomically(source: str, target: str, delay: float):
  """Like the Pusher's file-by-file copy: saved_model.pb and assets first, the
  variables only after `delay` seconds."""
  os.makedirs(target)
  for name in os.listdir(source):
    if name != "variables":
      copy = shutil.copytree if os.path.isdir(os.path.join(source, name)) else shutil.copy
      copy(os.path.join(source, name), os.path.join(target, name))
  time.sleep(delay)
  shutil.copytree(os.path.join(source, "variables"), os.path.join(target, "variables"))


def test_new_version_under_load_switches_with_no_failed_request(pushed, model_dir, caplog):
  server = start_server(model_dir, wait_seconds=120)
  try:
    _switch_under_load(pushed, model_dir, server, caplog)
  finally:
    server.stop()


def _switch_under_load(pushed, model_dir, server, caplog):
  old, new = pushed["version"], pushed["version"] + 1
  inputs = requests.score_inputs(_query(pushed))
  request = requests.predict_request("eta", "score", inputs)
  stop = threading.Event()
  seen = [[] for _ in range(4)]     # per thread: (version or error) in order
  deadline = time.monotonic() + 120

  def client(log):
    with grpc.insecure_channel(server.grpc_target) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      while not stop.is_set() and time.monotonic() < deadline:
        try:
          log.append(stub.Predict(request, timeout=30).model_spec.version.value)
        except grpc.RpcError as error:
          log.append(f"{error.code().name}: {error.details()}")
        time.sleep(0.02)  # steady traffic that leaves the 2 cores some room to load

  threads = [threading.Thread(target=client, args=(log,)) for log in seen]
  for thread in threads:
    thread.start()
  try:
    while min(len(log) for log in seen) < 3 and time.monotonic() < deadline:
      time.sleep(0.05)
    _push_non_atomically(pushed["version_dir"], os.path.join(model_dir, str(new)), delay=1.5)
    assert server.manager.wait_until_available(90, version=new)
    marks = [len(log) for log in seen]
    while any(len(log) < mark + 3 for log, mark in zip(seen, marks)) and (
        time.monotonic() < deadline):
      time.sleep(0.05)
  finally:
    stop.set()
    for thread in threads:
      thread.join(timeout=60)
  failures = [entry for log in seen for entry in log if isinstance(entry, str)]
  assert failures == []
  for log in seen:
    assert log[0] == old and log[-1] == new
    assert log == sorted(log), "a client went back to the old version"
  # The half-written version was tried (saved_model.pb without variables) and
  # refused, or seen to change while loading and discarded; loaded once complete.
  assert any(f"version {new}" in r.getMessage() and (
      "did not load" in r.getMessage() or "changed while" in r.getMessage())
             for r in caplog.records), [r.getMessage() for r in caplog.records]
  assert [(s.version, s.state) for s in server.manager.statuses()] == [(new, "AVAILABLE")]


def test_malformed_requests_get_their_codes_and_serving_goes_on(pushed, server, stub):
  for what, request, code, words in bad_requests():
    with pytest.raises(grpc.RpcError) as caught:
      stub.Predict(request, timeout=30)
    assert (caught.value.code(), words in caught.value.details()) == (code, True), (
        what, caught.value.details())
  many = np.array([b"i"] * 2049, dtype=object)
  inputs = requests.score_inputs(_query(pushed))
  inputs.update({signatures.ITEM_IDS: many, signatures.CATEGORIES: many})
  with pytest.raises(grpc.RpcError, match="--max-candidates"):
    stub.Predict(requests.predict_request("eta", "score", inputs), timeout=30)
  unknown = requests.score_inputs(_query(pushed))
  unknown[signatures.ITEM_IDS] = np.array(
      [b"never-seen-item"] * len(unknown[signatures.ITEM_IDS]), dtype=object)
  probabilities = outputs(stub.Predict(requests.predict_request("eta", "score", unknown)))
  assert np.isfinite(probabilities["probabilities"]).all()   # OOV ids are scored, not refused
  assert server.manager.current_version == pushed["version"]


def test_eta_predict_explains_the_ranking(pushed, server, tmp_path, capsys):
  query = _query(pushed)
  path = tmp_path / "user.json"
  path.write_text(json.dumps({
      "history": [vars(b) for b in query.history],
      "candidates": [f"{c.item_id}:{c.category}" for c in query.candidates],
      "request_time": query.request_time}))
  args = ["predict", "--server", server.grpc_target, "--history-file", str(path)]
  assert serving_cli.main(args) == 0
  out = capsys.readouterr().out
  assert f"signature score: {len(query.candidates)} candidates" in out
  assert "retrieved: #" in out
  assert serving_cli.main(["predict", "--server", server.grpc_target, "--example-file",
                   pushed["eval_file"], "--limit", "8"]) == 0
  assert "signature serving_default: 8 examples, each with its own history" in (
      capsys.readouterr().out)


def _pump(stream, lines: queue.Queue):
  for line in stream:
    lines.put(line)
  lines.put(None)


def test_sigterm_stops_a_serving_process_cleanly(model_dir, pushed):
  process = subprocess.Popen(
      [sys.executable, "-m", "serving.cli", "serve", "--model-dir", model_dir,
       "--grpc-port", "0", "--rest-port", "0"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = queue.Queue()
  threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True).start()
  try:
    seen = []
    while not any("eta serve: model" in line for line in seen):
      line = lines.get(timeout=120)
      assert line is not None, "".join(seen)
      seen.append(line)
    ready = next(line for line in seen if "eta serve: model" in line)
    target = ready.split(" on gRPC ")[1].split()[0].rstrip(",")
    with grpc.insecure_channel(target) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      request = requests.predict_request("eta", "score", requests.score_inputs(_query(pushed)))
      for _ in range(100):  # the version loads after the ports open
        try:
          assert stub.Predict(request, timeout=30).outputs
          break
        except grpc.RpcError as error:
          assert error.code() == grpc.StatusCode.UNAVAILABLE
          time.sleep(0.2)
      else:
        pytest.fail("the served process never loaded the model")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
  finally:
    if process.poll() is None:
      process.kill()
      process.wait()


def test_ids_the_ingest_accepts_are_scored_by_both_signatures(pushed, stub):
  """One id rule (components/rules.py): a 300-character CJK id (900 bytes of
  UTF-8) is a valid id for the ingest, so `score` and `serving_default` both
  score it; a history event at the request's own second is refused, since the
  ingest never puts one in a history."""
  cjk = "\u5546" * 300
  query = _query(pushed)
  inputs = requests.score_inputs(query)
  inputs[signatures.ITEM_IDS] = np.array([cjk.encode()] * len(inputs[signatures.ITEM_IDS]),
                                         dtype=object)
  scored = outputs(stub.Predict(requests.predict_request("eta", "score", inputs), timeout=30))
  assert np.isfinite(scored["probabilities"]).all()
  example = tf.train.Example.FromString(pushed["examples"][0].SerializeToString())
  example.features.feature[signatures.ITEM_ID].bytes_list.value[:] = [cjk.encode()]
  served = outputs(stub.Predict(requests.predict_request("eta", "", {
      signatures.EXAMPLES: np.array([example.SerializeToString()], dtype=object)}),
      timeout=30))
  assert np.isfinite(served["probabilities"]).all()

  same_second = requests.score_inputs(query)
  same_second[signatures.REQUEST_TIME] = np.array(
      int(same_second[signatures.HIST_TIMESTAMPS][0]), np.int64)
  with pytest.raises(grpc.RpcError) as caught:
    stub.Predict(requests.predict_request("eta", "score", same_second), timeout=30)
  assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert "is not before request_time" in caught.value.details()
