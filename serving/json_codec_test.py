"""REST JSON: the row and columnar forms, b64 bytes, dtype conversion, clear errors."""

import base64
import json

import numpy as np
import pytest
import tensorflow as tf

from serving import json_codec
from serving.errors import ServingError
from serving.validation_test import SCORE_SPECS

EXAMPLES = {"examples": tf.TensorSpec([None], tf.string)}


def _body(data) -> bytes:
  return json.dumps(data).encode()


def test_row_form_with_b64_bytes_and_named_rows():
  raw = b"\x00\xffbytes"
  b64 = {"b64": base64.b64encode(raw).decode()}
  for instances in ([b64, "text"], [{"examples": b64}, {"examples": "text"}]):
    form, inputs = json_codec.request_inputs(
        json_codec.parse_body(_body({"instances": instances})), EXAMPLES)
    assert form == json_codec.ROW
    assert inputs["examples"].tolist() == [raw, b"text"]


def test_columnar_form_converts_to_the_signature_dtypes():
  body = {"signature_name": "score", "inputs": {
      "hist_item_ids": ["a"], "hist_categories": ["c"], "hist_timestamps": [5.0],
      "item_ids": ["x", "y"], "categories": ["c", "d"], "request_time": 9}}
  form, inputs = json_codec.request_inputs(json_codec.parse_body(_body(body)), SCORE_SPECS)
  assert form == json_codec.COLUMNAR
  assert inputs["hist_timestamps"].dtype == np.int64 and inputs["hist_timestamps"].tolist() == [5]
  assert inputs["request_time"].shape == () and inputs["request_time"] == 9
  assert inputs["item_ids"].tolist() == [b"x", b"y"]


def _bad(data, match, specs=SCORE_SPECS):
  with pytest.raises(ServingError, match=match) as caught:
    body = data if isinstance(data, bytes) else _body(data)
    json_codec.request_inputs(json_codec.parse_body(body), specs)
  assert caught.value.http_status == 400


def test_bad_bodies_are_400_with_a_reason():
  _bad(b"{not json", "not valid JSON")
  _bad(b"\xff\xfe", "not valid JSON")
  _bad([1, 2], "must be a JSON object")
  _bad({"instance": []}, r"unknown keys \['instance'\]")
  _bad({"inputs": {}, "instances": []}, "exactly one of")
  _bad({"instances": [{"item_ids": "x"}]}, r"\['request_time'\] are scalars")
  _bad({"inputs": {"hist_timestamps": [1.5]}}, "1.5 is not an integer")
  _bad({"inputs": {"hist_timestamps": ["1"]}}, "expected a number for int64")
  _bad({"inputs": {"hist_timestamps": [2**70]}}, "out of range for int64")
  _bad({"inputs": {"item_ids": [1]}}, "expected a string")
  _bad({"inputs": {"item_ids": [{"b64": "***"}]}}, "not valid base64")
  _bad({"inputs": {"item_ids": [["a"], "b"]}}, "ragged")
  _bad({"inputs": {"item_ids": [["a"], ["b", "c"]]}}, "ragged")
  _bad({"inputs": ["a"]}, "'inputs' must be an object naming the inputs")
  _bad({"instances": ["a", {"examples": "b"}, {"other": "c"}]}, r"instances\[2\] has inputs",
       EXAMPLES)


def test_responses_have_tf_serving_shapes():
  probabilities = np.array([0.25, 0.5], np.float32)
  positions = np.array([[0, -1], [1, 0]], np.int32)
  assert json_codec.response_body(json_codec.ROW, {"probabilities": probabilities}) == {
      "predictions": [0.25, 0.5]}
  assert json_codec.response_body(json_codec.ROW, {"p": probabilities, "r": positions}) == {
      "predictions": [{"p": 0.25, "r": [0, -1]}, {"p": 0.5, "r": [1, 0]}]}
  assert json_codec.response_body(json_codec.COLUMNAR, {"p": probabilities, "r": positions}) == {
      "outputs": {"p": [0.25, 0.5], "r": [[0, -1], [1, 0]]}}
  strings = np.array([b"ok", b"\xff"], dtype=object)
  assert json_codec.response_body(json_codec.COLUMNAR, {"s": strings}) == {
      "outputs": ["ok", {"b64": "/w=="}]}
