"""TensorProto <-> NumPy for the gRPC API: total (any bad proto is INVALID_ARGUMENT).

The declared shape is checked before decoding, because tf.make_ndarray expands
a single value to the whole declared shape: a few bytes on the wire could
otherwise ask for gigabytes.
"""

from typing import Iterable

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

from serving.errors import invalid_argument

# Dtypes a request may carry: the plain numeric ones, bool and string (no
# resources, variants or reference types).
_ALLOWED = frozenset(
    getattr(types_pb2, name) for name in (
        "DT_FLOAT", "DT_DOUBLE", "DT_HALF", "DT_BFLOAT16", "DT_INT8", "DT_INT16", "DT_INT32",
        "DT_INT64", "DT_UINT8", "DT_UINT16", "DT_UINT32", "DT_UINT64", "DT_BOOL",
        "DT_STRING", "DT_COMPLEX64", "DT_COMPLEX128"))


def declared_elements(name: str, proto: tensor_pb2.TensorProto) -> int:
  """The element count the proto's shape declares; a bad shape is INVALID_ARGUMENT."""
  shape = proto.tensor_shape
  if shape.unknown_rank:
    raise invalid_argument(f"input '{name}' has an unknown rank; send a concrete shape")
  count = 1
  for dim in shape.dim:
    if dim.size < 0:
      raise invalid_argument(f"input '{name}' has a negative dimension ({dim.size})")
    count *= dim.size
  return count


def check_total_elements(protos: Iterable, max_elements: int):
  """All inputs of one request together declare at most max_elements elements."""
  total = sum(declared_elements(name, proto) for name, proto in protos)
  if total > max_elements:
    raise invalid_argument(f"the request's tensors declare {total} elements, more than this "
                           f"server accepts ({max_elements}; see --max-message-mb)")


# Dtypes decoded without tf.make_ndarray: packed tensor_content (what
# tf.make_tensor_proto writes for more than one number) is viewed in place, and
# the repeated value fields are read in one pass. Others take make_ndarray's path.
_PACKED = {types_pb2.DT_FLOAT: np.float32, types_pb2.DT_DOUBLE: np.float64,
           types_pb2.DT_INT32: np.int32, types_pb2.DT_INT64: np.int64}
_VALUE_FIELDS = {types_pb2.DT_FLOAT: "float_val", types_pb2.DT_DOUBLE: "double_val",
                 types_pb2.DT_INT32: "int_val", types_pb2.DT_INT64: "int64_val"}


def _dims(proto: tensor_pb2.TensorProto):
  return [dim.size for dim in proto.tensor_shape.dim]


def _fast_ndarray(proto: tensor_pb2.TensorProto, expected: int):
  """The proto's array when it holds exactly `expected` values in a common layout,
  else None (then make_ndarray decides, with its padding rules and errors)."""
  dtype = proto.dtype
  if proto.tensor_content and dtype not in _PACKED:
    return None  # e.g. strings in tensor_content: make_ndarray's rules (it refuses them)
  if dtype == types_pb2.DT_STRING:
    values = proto.string_val
    if len(values) != expected:
      return None
    # The repeated field's bytes objects, in one pass (numpy's own fill from the
    # container is slower); an empty list still gives a 1-D array to reshape.
    return np.array(list(values), dtype=object).reshape(_dims(proto))
  numpy_dtype = _PACKED.get(dtype)
  if numpy_dtype is None:
    return None
  content = proto.tensor_content
  if content:
    if len(content) != expected * np.dtype(numpy_dtype).itemsize:
      return None
    # A read-only view of the bytes: one copy, into the TF tensor, happens later.
    return np.frombuffer(content, dtype=numpy_dtype).reshape(_dims(proto))
  values = getattr(proto, _VALUE_FIELDS[dtype])
  if len(values) != expected:
    return None
  return np.array(values, dtype=numpy_dtype).reshape(_dims(proto))


def to_ndarray(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
  """A request TensorProto -> ndarray (strings as an object array of bytes).

  Arrays decoded from packed tensor_content are read-only views of the request.
  """
  if proto.dtype not in _ALLOWED:
    dtype = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() \
        else str(proto.dtype)
    raise invalid_argument(f"input '{name}' has unsupported dtype {dtype}")
  expected = declared_elements(name, proto)
  array = _fast_ndarray(proto, expected)
  if array is not None:
    return array
  try:
    array = tf.make_ndarray(proto)
  except Exception as error:  # ValueError, TypeError, struct errors from bad content
    raise invalid_argument(f"input '{name}' is not a decodable TensorProto "
                           f"({type(error).__name__}: {error})") from None
  if array.size != expected:
    raise invalid_argument(f"input '{name}' holds {array.size} values for shape "
                           f"{list(array.shape)}")
  if array.dtype.kind == "S":  # make_ndarray gives fixed-width bytes for some protos
    array = array.astype(object)
  return array


# Output dtypes written directly: numbers as packed little-endian tensor_content
# (what tf.make_tensor_proto writes for arrays of more than one element, and
# what tf.make_ndarray reads first), strings as string_val.
_ENCODED = {np.dtype(np.float32): types_pb2.DT_FLOAT, np.dtype(np.float64): types_pb2.DT_DOUBLE,
            np.dtype(np.int32): types_pb2.DT_INT32, np.dtype(np.int64): types_pb2.DT_INT64}


def fill_proto(target: tensor_pb2.TensorProto, array: np.ndarray):
  """Writes `array` into the (empty) TensorProto `target` in place.

  The common output dtypes skip tf.make_tensor_proto's generic conversion;
  anything else goes through it. The stock client reads either with
  tf.make_ndarray to the same array.
  """
  dtype = _ENCODED.get(array.dtype)
  is_strings = array.dtype == object and all(isinstance(v, bytes) for v in array.flat)
  if dtype is None and not is_strings:
    target.CopyFrom(tf.make_tensor_proto(array))
    return
  for size in array.shape:
    target.tensor_shape.dim.add(size=size)
  if is_strings:
    target.dtype = types_pb2.DT_STRING
    target.string_val.extend(array.flat)
    return
  target.dtype = dtype
  if array.size:
    target.tensor_content = np.ascontiguousarray(array, array.dtype.newbyteorder("<")).tobytes()


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
  proto = tensor_pb2.TensorProto()
  fill_proto(proto, array)
  return proto
