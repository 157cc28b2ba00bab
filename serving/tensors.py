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


def to_ndarray(name: str, proto: tensor_pb2.TensorProto) -> np.ndarray:
  """A request TensorProto -> ndarray (strings as an object array of bytes)."""
  if proto.dtype not in _ALLOWED:
    dtype = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() \
        else str(proto.dtype)
    raise invalid_argument(f"input '{name}' has unsupported dtype {dtype}")
  expected = declared_elements(name, proto)
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


def to_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
  return tf.make_tensor_proto(array)
