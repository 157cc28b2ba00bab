"""The built-in server with a model that takes side features (the toy export with
TOY_FEATURES): gRPC and REST carry them to both signatures, a bad value is
INVALID_ARGUMENT, and the client's request builders put them where they belong."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_service_pb2_grpc

from models import signatures
from serving import requests, testing
from serving.testing import TOY_FEATURES, outputs, rest_call

QUERY = requests.ScoreQuery(
    history=[requests.Behaviour("h1", "c1", 90, {"price": 2.0}),
             requests.Behaviour("h2", "c2", 80, {})],
    candidates=[requests.Candidate("i1", "c1", {"price": 3.5, "genres": "drama|comedy"}),
                requests.Candidate("new-item", "c9", {"price": "7"})],
    request_time=100, features={"segment": "s1", "device": "ios"})


@pytest.fixture(scope="module")
def feature_server(tmp_path_factory):
  base = tmp_path_factory.mktemp("feature_models")
  path = testing.export_toy_model(str(base / "1"), features=TOY_FEATURES)
  server = testing.start_server(str(base))
  yield server, path
  server.stop()


@pytest.fixture(scope="module")
def stub(feature_server):
  with grpc.insecure_channel(feature_server[0].grpc_target) as channel:
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)


def _score(stub, inputs):
  return outputs(stub.Predict(requests.predict_request("eta", "score", inputs), timeout=30))


def test_the_server_reads_the_declared_features(feature_server):
  server, path = feature_server
  assert signatures.read_features(path) == TOY_FEATURES
  with server.manager.acquire(None) as servable:
    assert servable.features == TOY_FEATURES


def test_score_over_grpc_is_the_in_process_score_and_follows_each_feature(feature_server, stub):
  inputs = requests.score_inputs(QUERY, TOY_FEATURES)
  served = _score(stub, inputs)["probabilities"]
  score = tf.saved_model.load(feature_server[1]).signatures["score"]
  expected = score(**{name: tf.constant(value) for name, value in inputs.items()})
  np.testing.assert_array_equal(served, expected["probabilities"].numpy())
  for change in (dict(segment=np.array(b"s2", dtype=object)),
                 dict(device=np.array(b"android", dtype=object)),
                 dict(hist_price=np.array([5.0, 1.0], np.float32))):
    assert (_score(stub, dict(inputs, **change))["probabilities"] != served).all(), change
  moved = _score(stub, dict(inputs, price=np.array([3.5, 8.0], np.float32)))["probabilities"]
  assert moved[0] == served[0] and moved[1] != served[1]
  # "" is the missing device, which the model reads as its declared default (web).
  np.testing.assert_array_equal(
      _score(stub, dict(inputs, device=np.array(b"", dtype=object)))["probabilities"],
      _score(stub, dict(inputs, device=np.array(b"web", dtype=object)))["probabilities"])


def test_serving_default_examples_built_by_the_client_score_as_score_does(stub):
  examples = np.array(requests.examples_for_query(QUERY, TOY_FEATURES), dtype=object)
  served = outputs(stub.Predict(requests.predict_request("eta", "", {
      signatures.EXAMPLES: examples}), timeout=30))["probabilities"]
  scored = _score(stub, requests.score_inputs(QUERY, TOY_FEATURES))["probabilities"]
  np.testing.assert_allclose(served, scored, atol=1e-6)


@pytest.mark.parametrize("change, words", [
    (dict(price=np.array([np.inf, 1.0], np.float32)), "price[0] = inf: price 'inf' is not a "
                                                      "finite number"),
    (dict(segment=np.array(b"s\x01", dtype=object)), "segment = 's\\x01': segment value "
                                                     "contains control characters"),
    (dict(genres=np.array([b"a", b"b" * 513], dtype=object)), "longer than 512 characters"),
    (dict(price=np.array([1.0], np.float32)), "price has 1 values but item_ids has 2"),
])
def test_a_bad_feature_value_is_invalid_argument_over_grpc_and_rest(feature_server, stub,
                                                                      change, words):
  inputs = dict(requests.score_inputs(QUERY, TOY_FEATURES), **change)
  with pytest.raises(grpc.RpcError) as caught:
    stub.Predict(requests.predict_request("eta", "score", inputs), timeout=30)
  assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
  assert words in caught.value.details()
  status, body = rest_call(feature_server[0], "POST", "/v1/models/eta:predict", {
      "signature_name": "score", "inputs": _as_json(inputs)})
  assert status == 400 and words in body["error"], body


def _as_json(inputs):
  """`score` inputs -> REST's columnar JSON: text as strings, NaN (a missing number)
  as null; infinity stays a float (Python's json writes it as Infinity)."""
  def value(array):
    if array.dtype == object:
      return array.item().decode() if array.ndim == 0 else [v.decode() for v in array]
    if array.dtype.kind == "f":
      return np.where(np.isnan(array), None, array).tolist()
    return array.tolist()
  return {name: value(array) for name, array in inputs.items()}


def test_rest_takes_the_features_and_null_is_a_missing_number(feature_server, stub):
  inputs = requests.score_inputs(QUERY, TOY_FEATURES)
  missing = dict(inputs, price=np.array([np.nan, 7.0], np.float32))
  status, body = rest_call(feature_server[0], "POST", "/v1/models/eta:predict", {
      "signature_name": "score", "inputs": _as_json(missing)})
  assert status == 200, body
  assert _as_json(missing)["price"] == [None, 7.0]
  np.testing.assert_allclose(body["outputs"]["probabilities"],
                             _score(stub, missing)["probabilities"], atol=1e-7)
