"""Side features end to end: a CSV click log with a user, an item and a context
column declared as features goes through `eta run`, `eta serve` (its own
process) and the stock TF Serving client's `score` request carrying them. The
served scores are the in-process SavedModel's; a feature's value moves them; a
bad value of each kind gets INVALID_ARGUMENT by the ingest's rule; `eta predict`
sends the features of a history file."""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from components import synth
from eta_ctr import cli, flags
from models import signatures
from serving import cli as serving_cli
from serving import requests
from serving.testing import output_lines

pytestmark = [pytest.mark.e2e]

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FEATURE_FLAGS = ("--feature", "segment:user:categorical", "--feature", "price:item:numeric",
                 "--feature", "device:context:categorical")
SPECS = tuple(flags.parse_feature(text) for text in FEATURE_FLAGS[1::2])
DEVICES = ("ios", "android", "web")
# The smallest run whose model is pushed: a tiny log and budget, and gates that
# bless any model (what is tested here is the serving of its features).
RUN_FLAGS = ("--long-seq-len", "32", "--short-seq-len", "4", "--top-k", "4",
             "--embedding-dim", "8", "--train-steps", "30", "--batch-size", "64",
             "--validate-every-steps", "30", "--auc-floor", "0",
             "--max-logloss-over-base-rate", "100", "--max-calibration-error", "0.99")


def _add_feature_columns(path: str):
  """The synthetic log with segment (per user), price (per item) and device (per row)."""
  with open(path, newline="") as handle:
    rows = list(csv.DictReader(handle))
  for number, row in enumerate(rows):
    row["segment"] = f"s{sum(map(ord, row['user_id'])) % 4}"
    row["price"] = f"{1.0 + sum(map(ord, row['item_id'])) % 50 / 10:.1f}"
    row["device"] = DEVICES[number % 3]
  with open(path, "w", newline="") as handle:
    writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
  """`eta run` on the log with features, then `eta serve` of its push (one process
  for the module). Yields {version_dir, eval_file, target}."""
  root = tmp_path_factory.mktemp("feature_run")
  log_path = str(root / "log.csv")
  synth.write(synth.SynthConfig(events=2500, mean_events_per_user=80, items=200,
                                categories=10, seed=5), log_path)
  _add_feature_columns(log_path)
  serving = str(root / "serving")
  assert cli.main(["run", "--data", log_path, "--pipeline-root", str(root / "pipeline"),
                   "--serving-dir", serving, *RUN_FLAGS, *FEATURE_FLAGS]) == 0
  (version_dir,) = glob.glob(os.path.join(serving, "*"))
  (eval_file,) = glob.glob(os.path.join(str(root / "pipeline"), "ClickLogExampleGen",
                                        "examples", "*", "Split-eval", "*.gz"))
  process = subprocess.Popen(
      [sys.executable, "-m", "eta_ctr.cli", "serve", "--model-dir", serving,
       "--grpc-port", "0", "--rest-port", "0"],
      cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    lines, seen = output_lines(process), []
    while not any("eta serve: model" in line for line in seen):
      line = lines.get(timeout=120)
      assert line is not None, "".join(seen)
      seen.append(line)
    ready = next(line for line in seen if "eta serve: model" in line)
    yield {"version_dir": version_dir, "eval_file": eval_file,
           "target": ready.split(" on gRPC ")[1].split()[0].rstrip(",")}
  finally:
    process.send_signal(signal.SIGTERM)
    try:
      process.wait(timeout=60)
    except subprocess.TimeoutExpired:
      process.kill()
      process.wait()


@pytest.fixture(scope="module")
def stub(feature_run):
  with grpc.insecure_channel(feature_run["target"]) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    _wait_until_loaded(stub)
    yield stub


def _request(inputs) -> predict_pb2.PredictRequest:
  """A `score` PredictRequest built the stock way (tf.make_tensor_proto)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "eta"
  request.model_spec.signature_name = "score"
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request


def _wait_until_loaded(stub):
  """Returns once a version answers (the ports open before it is loaded)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = "eta"
  for _ in range(600):
    try:
      stub.Predict(request, timeout=30)
      return
    except grpc.RpcError as error:
      if error.code() != grpc.StatusCode.UNAVAILABLE:
        return  # a loaded version refuses the empty request
      time.sleep(0.2)
  pytest.fail("the served process never loaded the model")


def _inputs(feature_run):
  """`score` inputs: an eval user's history and features, 6 eval items as candidates."""
  examples = requests.read_examples(feature_run["eval_file"], limit=256, specs=SPECS)
  start = next(i for i, e in enumerate(examples)
               if len(e.features.feature[signatures.HIST_ITEM_IDS].bytes_list.value) > 3)
  query = requests.query_from_examples(examples[start:start + 6], SPECS)
  assert query.features["segment"] and query.features["device"] in DEVICES
  assert all(c.features["price"] is not None for c in query.candidates)
  return requests.score_inputs(query, SPECS)


def _score(stub, inputs):
  response = stub.Predict(_request(inputs), timeout=30)
  return tf.make_ndarray(response.outputs["probabilities"])


def _refused(stub, inputs, *words):
  with pytest.raises(grpc.RpcError) as caught:
    stub.Predict(_request(inputs), timeout=30)
  assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
  for word in words:
    assert word in caught.value.details(), (word, caught.value.details())


def test_the_export_declares_its_features_and_score_takes_them(feature_run):
  assert signatures.read_features(feature_run["version_dir"]) == SPECS
  score = tf.saved_model.load(feature_run["version_dir"]).signatures["score"]
  assert sorted(score.structured_input_signature[1]) == sorted(signatures.score_inputs(SPECS))


def test_served_scores_are_the_in_process_scores_and_follow_the_features(feature_run, stub):
  inputs = _inputs(feature_run)
  assert inputs["segment"].shape == () and inputs["price"].shape == (6,)
  served = _score(stub, inputs)
  score = tf.saved_model.load(feature_run["version_dir"]).signatures["score"]
  expected = score(**{name: tf.constant(value) for name, value in inputs.items()})
  np.testing.assert_array_equal(served, expected["probabilities"].numpy())

  other_segment = b"s1" if inputs["segment"].item() != b"s1" else b"s2"
  moved = _score(stub, dict(inputs, segment=np.array(other_segment, dtype=object)))
  assert (moved != served).all()
  other_device = next(d for d in DEVICES if d.encode() != inputs["device"].item()).encode()
  moved = _score(stub, dict(inputs, device=np.array(other_device, dtype=object)))
  assert (moved != served).all()
  prices = inputs["price"].copy()
  prices[2] += 3.0
  moved = _score(stub, dict(inputs, price=prices))
  assert moved[2] != served[2]
  np.testing.assert_allclose(np.delete(moved, 2), np.delete(served, 2), atol=1e-7)
  # Missing values are valid: "" (the OOV bucket) and NaN (the train mean).
  missing = _score(stub, dict(inputs, device=np.array(b"", dtype=object),
                              price=np.full(6, np.nan, np.float32)))
  assert np.isfinite(missing).all()


def test_a_bad_value_of_each_kind_is_invalid_argument(feature_run, stub):
  inputs = _inputs(feature_run)
  prices = inputs["price"].copy()
  prices[1] = np.inf
  _refused(stub, dict(inputs, price=prices), "price[1]", "inf", "is not a finite number")
  _refused(stub, dict(inputs, segment=np.array(b"s\x01", dtype=object)),
           "segment", "'s\\x01'", "contains control characters")
  _refused(stub, dict(inputs, device=np.array(b"d" * 513, dtype=object)),
           "device", "longer than 512 characters")
  _refused(stub, dict(inputs, price=inputs["price"][:2]),
           "price has 2 values but item_ids has 6")
  assert np.isfinite(_score(stub, inputs)).all()  # and the server goes on


def test_eta_predict_sends_the_features_of_a_history_file(feature_run, stub, tmp_path,
                                                          capsys):
  inputs = _inputs(feature_run)
  path = tmp_path / "user.json"
  path.write_text(json.dumps({
      "history": [{"item_id": i.decode(), "category": c.decode(), "timestamp": int(t)}
                  for i, c, t in zip(inputs["hist_item_ids"], inputs["hist_categories"],
                                     inputs["hist_timestamps"])],
      "candidates": [{"item_id": i.decode(), "category": c.decode(), "price": float(p)}
                     for i, c, p in zip(inputs["item_ids"], inputs["categories"],
                                        inputs["price"])],
      "request_time": int(inputs["request_time"]),
      "segment": inputs["segment"].item().decode(), "device": inputs["device"].item().decode()}))
  assert serving_cli.main(["predict", "--server", feature_run["target"], "--history-file",
                           str(path), "--json", *FEATURE_FLAGS]) == 0
  ranking = json.loads(capsys.readouterr().out)["ranking"]
  served = _score(stub, inputs)
  # The ranking is by probability; the request eta predict built is the same.
  assert [entry["probability"] for entry in ranking] == sorted(served.tolist(), reverse=True)
