"""TensorProto decoding: round trips, and every bad proto is INVALID_ARGUMENT."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving import tensors
from serving.errors import ServingError


def test_round_trip_keeps_values_dtypes_and_shapes():
  for value in (np.array([b"a", b"\xff\x00"], dtype=object), np.array(7, np.int64),
                np.arange(6, dtype=np.float32).reshape(2, 3), np.array([], np.int64)):
    decoded = tensors.to_ndarray("x", tensors.to_proto(value))
    assert decoded.shape == value.shape and decoded.dtype == value.dtype
    assert decoded.tolist() == value.tolist()


def _bad(proto, match):
  with pytest.raises(ServingError, match=match) as caught:
    tensors.to_ndarray("x", proto)
  assert caught.value.code.name == "INVALID_ARGUMENT"


def test_undecodable_protos_are_invalid_argument():
  proto = tf.make_tensor_proto(np.arange(3, dtype=np.float32))
  proto.tensor_content = proto.tensor_content[:5]   # not a whole number of floats
  _bad(proto, "input 'x' is not a decodable TensorProto")
  _bad(tensor_pb2.TensorProto(dtype=types_pb2.DT_INVALID), "unsupported dtype DT_INVALID")
  _bad(tensor_pb2.TensorProto(dtype=types_pb2.DT_RESOURCE), "unsupported dtype DT_RESOURCE")
  _bad(tensor_pb2.TensorProto(dtype=999), "unsupported dtype 999")
  unknown = tf.make_tensor_proto(np.array([1], np.int64))
  unknown.tensor_shape.unknown_rank = True
  _bad(unknown, "unknown rank")
  negative = tf.make_tensor_proto(np.array([1], np.int64))
  negative.tensor_shape.dim[0].size = -4
  _bad(negative, "negative dimension")


def test_declared_shapes_are_bounded_before_decoding():
  # One value broadcast to 10^12 elements: refused without allocating anything.
  proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
  proto.tensor_shape.dim.add(size=10**12)
  with pytest.raises(ServingError, match="declare 1000000000000 elements"):
    tensors.check_total_elements([("x", proto)], max_elements=1000)
  tensors.check_total_elements([("x", tensors.to_proto(np.zeros(10)))], max_elements=10)


def test_fast_paths_agree_with_make_ndarray_and_make_tensor_proto():
  """Decoding skips make_ndarray for the common layouts, encoding skips
  make_tensor_proto: both read back to the same arrays as the stock functions."""
  for value in (np.array([b"a", b"", b"\x00z"], dtype=object),
                np.array([[b"a"], [b"b"]], dtype=object), np.array(b"x", dtype=object), np.array(7, np.int64), np.array([1.5], np.float64),
                np.arange(6, dtype=np.float32).reshape(2, 3), np.array([], np.int64),
                np.arange(8, dtype=np.int32).reshape(4, 2)[:, 1], np.array([True, False]),
                np.zeros((0, 3), np.float32)):
    stock = tf.make_tensor_proto(value)
    decoded = tensors.to_ndarray("x", stock)
    expected = tf.make_ndarray(stock)
    expected = expected.astype(object) if expected.dtype.kind == "S" else expected
    assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
    assert decoded.tolist() == expected.tolist()
    encoded = tf.make_ndarray(tensors.to_proto(value))
    encoded = encoded.astype(object) if encoded.dtype.kind == "S" else encoded
    assert encoded.dtype == value.dtype and encoded.shape == value.shape
    assert encoded.tolist() == value.tolist()
  # Fewer values than the shape: make_ndarray's padding rule, as before.
  short = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64, int64_val=[4])
  short.tensor_shape.dim.add(size=3)
  assert tensors.to_ndarray("x", short).tolist() == [4, 4, 4]
  # Strings with tensor_content: refused, as make_ndarray refuses them.
  strings = tf.make_tensor_proto(np.array([b"a", b"b"], dtype=object))
  strings.tensor_content = b"\x01\x02"
  _bad(strings, "not a decodable TensorProto")
  # Packed content of the wrong length is still refused.
  wrong = tf.make_tensor_proto(np.arange(4, dtype=np.int64))
  wrong.tensor_shape.dim[0].size = 3
  _bad(wrong, "input 'x'")
