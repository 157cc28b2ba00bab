"""The gRPC API with the stock client stub over loopback: answers equal the model's,
and every malformed request gets its status code while the server keeps serving."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2,
                                     model_management_pb2, model_service_pb2_grpc,
                                     prediction_service_pb2_grpc, regression_pb2)

from serving import protos, requests
from serving.limits import Limits
from serving.server import ModelServer, ServerConfig
from serving.testing import (QUERY, bad_requests, examples_request, outputs, score_request,
                             start_server)


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
    for garbage in (b"\xff\xff\xff garbage", b"\x00garbage"):
      code, details = _code(raw, garbage)
      assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a parseable" in details
    assert raw(score_request().SerializeToString(), timeout=10)


def test_unserved_methods_are_unimplemented_and_garbage_there_invalid(server, stubs):
  predict, model_service = stubs
  code, details = _code(predict.MultiInference, inference_pb2.MultiInferenceRequest())
  assert code == grpc.StatusCode.UNIMPLEMENTED and "MultiInference" in details
  code, _ = _code(model_service.HandleReloadConfigRequest,
                  model_management_pb2.ReloadConfigRequest())
  assert code == grpc.StatusCode.UNIMPLEMENTED
  with grpc.insecure_channel(server.grpc_target) as channel:
    for method in ("/tensorflow.serving.PredictionService/NoSuchMethod",
                   "/tensorflow.serving.NoSuchService/Predict"):
      raw = channel.unary_unary(method, request_serializer=lambda data: data,
                                response_deserializer=lambda data: data)
      assert _code(raw, b"")[0] == grpc.StatusCode.UNIMPLEMENTED
    raw = channel.unary_unary("/tensorflow.serving.ModelService/GetModelStatus",
                              request_serializer=lambda data: data,
                              response_deserializer=lambda data: data)
    code, details = _code(raw, b"\xff\xff\xff garbage")
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a parseable" in details


def test_limits_are_enforced(model_dir):
  server = start_server(model_dir, limits=Limits(max_candidates=3, max_history=2,
                                                 max_message_bytes=4096))
  try:
    with grpc.insecure_channel(server.grpc_target) as channel:
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
