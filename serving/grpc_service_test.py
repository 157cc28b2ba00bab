"""The gRPC API with the stock client stub over loopback: answers equal the model's,
and every malformed request gets its status code while the server keeps serving."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, predict_pb2, regression_pb2)

from serving import contract, protos, requests
from serving.conftest import start_server
from serving.limits import Limits

# The C++ protobuf parser warns about the garbage tf.Example (it is refused anyway).
pytestmark = pytest.mark.filterwarnings("ignore:Unexpected end-group tag")

QUERY = requests.ScoreQuery(
    history=[requests.Behaviour("h1", "c1", 90), requests.Behaviour("h2", "c2", 80)],
    candidates=[requests.Candidate("i1", "c1"), requests.Candidate("new-item", "c9")],
    request_time=100)


def score_request(**overrides) -> predict_pb2.PredictRequest:
  inputs = requests.score_inputs(QUERY)
  inputs.update(overrides)
  return requests.predict_request("eta", contract.SCORE_SIGNATURE, inputs)


def examples_request() -> predict_pb2.PredictRequest:
  examples = np.array(requests.examples_for_query(QUERY), dtype=object)
  return requests.predict_request("eta", "", {contract.EXAMPLES: examples})


def outputs(response):
  return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def test_predict_equals_the_in_process_model_on_both_signatures(stubs, model_dir):
  predict, _ = stubs
  model = tf.saved_model.load(f"{model_dir}/1")
  expected = model.signatures["score"](**{
      name: tf.constant(value) for name, value in requests.score_inputs(QUERY).items()})
  response = predict.Predict(score_request())
  assert response.model_spec.version.value == 1
  assert response.model_spec.signature_name == "score"
  got = outputs(response)
  assert sorted(got) == sorted(expected)
  for name, value in expected.items():
    np.testing.assert_allclose(got[name], value.numpy(), atol=1e-6)
  serialized = requests.examples_for_query(QUERY)
  default = model.signatures["serving_default"](examples=tf.constant(serialized))
  response = predict.Predict(examples_request())
  assert response.model_spec.signature_name == "serving_default"
  np.testing.assert_allclose(outputs(response)["probabilities"],
                             default["probabilities"].numpy(), atol=1e-6)
  np.testing.assert_allclose(got["probabilities"], default["probabilities"].numpy(), atol=1e-6)


def test_output_filter_and_specific_version(stubs):
  predict, _ = stubs
  request = score_request()
  request.output_filter.append("probabilities")
  request.model_spec.version.value = 1
  assert list(predict.Predict(request).outputs) == ["probabilities"]


def test_status_metadata_classify_regress(stubs):
  predict, model_service = stubs
  request = get_model_status_pb2.GetModelStatusRequest()
  request.model_spec.name = "eta"
  (status,) = model_service.GetModelStatus(request).model_version_status
  assert status.version == 1 and status.state == status.AVAILABLE
  request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
  request.model_spec.name = "eta"
  response = predict.GetModelMetadata(request)
  signatures = protos.unpack_signature_defs(response).signature_def
  assert {"serving_default", "score"} <= set(signatures)
  assert set(signatures["score"].inputs) == {
      "hist_item_ids", "hist_categories", "hist_timestamps", "item_ids", "categories",
      "request_time"}
  assert signatures["score"].inputs["request_time"].dtype == tf.int64.as_datatype_enum
  examples = [tf.train.Example.FromString(e) for e in requests.examples_for_query(QUERY)]
  probabilities = outputs(predict.Predict(examples_request()))["probabilities"]
  regress = regression_pb2.RegressionRequest()
  regress.model_spec.name = "eta"
  regress.input.example_list.examples.extend(examples)
  values = [r.value for r in predict.Regress(regress).result.regressions]
  np.testing.assert_allclose(values, probabilities, atol=1e-6)
  classify = classification_pb2.ClassificationRequest()
  classify.model_spec.name = "eta"
  classify.input.example_list.examples.extend(examples)
  result = predict.Classify(classify).result.classifications
  np.testing.assert_allclose([c.classes[1].score for c in result], probabilities, atol=1e-6)
  assert [c.label for c in result[0].classes] == ["0", "1"]


def _code(call, request):
  with pytest.raises(grpc.RpcError) as caught:
    call(request, timeout=10)
  return caught.value.code(), caught.value.details()


def _with(request, **changes):
  copy = type(request)()
  copy.CopyFrom(request)
  for field, value in changes.items():
    if field == "version":
      copy.model_spec.version.value = value
    else:
      setattr(copy.model_spec, field, value)
  return copy


def bad_requests():
  """(what, request, expected code, words in the message)."""
  nf, ia = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
  strings = lambda *v: np.array([x.encode() for x in v], dtype=object)  # noqa: E731
  extra = score_request()
  extra.inputs["user_id"].CopyFrom(tf.make_tensor_proto(strings("u")))
  missing = score_request()
  del missing.inputs["categories"]
  garbage_tensor = score_request()
  garbage_tensor.inputs["hist_timestamps"].tensor_content = b"\x01\x02\x03"
  bad_example = requests.predict_request("eta", "", {contract.EXAMPLES: strings("\x00garbage")})
  return [
      ("unknown model", _with(score_request(), name="other"), nf, "model 'other'"),
      ("unknown version", _with(score_request(), version=7), nf, "version 7"),
      ("version label", _with(score_request(), version_label="stable"), nf, "label"),
      ("unknown signature", _with(score_request(), signature_name="nope"), nf,
       "signature 'nope'"),
      ("missing input", missing, ia, "missing inputs ['categories']"),
      ("extra input", extra, ia, "unexpected inputs ['user_id']"),
      ("wrong dtype", score_request(request_time=np.array(100, np.int32)), ia, "int64"),
      ("wrong rank", score_request(request_time=np.array([100], np.int64)), ia, "rank 0"),
      ("empty history", score_request(
          hist_item_ids=strings(), hist_categories=strings(),
          hist_timestamps=np.array([], np.int64)), ia, "history is empty"),
      ("no candidates", score_request(item_ids=strings(), categories=strings()), ia,
       "no candidates"),
      ("inconsistent history", score_request(hist_categories=strings("c1")), ia,
       "same length"),
      ("garbage tensor", garbage_tensor, ia, "not a decodable TensorProto"),
      ("unparseable tf.Example", bad_example, ia, "not a serialized tf.Example"),
  ]


def test_every_bad_request_gets_its_code_and_the_server_keeps_serving(stubs):
  predict, _ = stubs
  for what, request, code, words in bad_requests():
    got, details = _code(predict.Predict, request)
    assert (got, words in details) == (code, True), (what, details)
  request = get_model_metadata_pb2.GetModelMetadataRequest()
  request.model_spec.name = "eta"
  assert _code(predict.GetModelMetadata, request)[0] == grpc.StatusCode.INVALID_ARGUMENT
  assert outputs(predict.Predict(score_request()))["probabilities"].shape == (2,)


def test_undecodable_request_bytes_are_invalid_argument(server):
  with grpc.insecure_channel(server.grpc_target) as channel:
    raw = channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                              request_serializer=lambda data: data,
                              response_deserializer=lambda data: data)
    code, details = _code(raw, b"\xff\xff\xff garbage")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a parseable" in details
    assert raw(score_request().SerializeToString(), timeout=10)


def test_limits_are_enforced(model_dir):
  server = start_server(model_dir, limits=Limits(max_candidates=3, max_history=2,
                                                 max_message_bytes=4096))
  try:
    with grpc.insecure_channel(server.grpc_target) as channel:
      from tensorflow_serving.apis import prediction_service_pb2_grpc
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      many = np.array([f"i{i}".encode() for i in range(4)], dtype=object)
      code, details = _code(stub.Predict, score_request(item_ids=many, categories=many))
      assert code == grpc.StatusCode.INVALID_ARGUMENT and "--max-candidates" in details
      long = np.array([b"h"] * 3, dtype=object)
      code, details = _code(stub.Predict, score_request(
          hist_item_ids=long, hist_categories=long,
          hist_timestamps=np.array([3, 2, 1], np.int64)))
      assert code == grpc.StatusCode.INVALID_ARGUMENT and "--max-history" in details
      huge = np.array([b"x" * 5000], dtype=object)
      code, _ = _code(stub.Predict, score_request(item_ids=huge, categories=huge))
      assert code == grpc.StatusCode.RESOURCE_EXHAUSTED  # grpc's own message-size limit
      assert stub.Predict(score_request(), timeout=10).outputs
  finally:
    server.stop()


def test_no_version_yet_is_unavailable_and_status_unknown(tmp_path):
  from serving.server import ModelServer, ServerConfig
  from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc
  server = ModelServer(ServerConfig(str(tmp_path), grpc_port=0, rest_port=None,
                                    poll_seconds=0.1)).start()
  try:
    with grpc.insecure_channel(server.grpc_target) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      assert _code(stub.Predict, score_request())[0] == grpc.StatusCode.UNAVAILABLE
      request = get_model_status_pb2.GetModelStatusRequest()
      request.model_spec.name = "eta"
      (status,) = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
          request).model_version_status
      assert status.state == status.UNKNOWN
  finally:
    server.stop()
