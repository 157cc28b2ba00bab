"""TF Serving's REST JSON: request bodies -> ndarrays, outputs -> response bodies.

  row      {"signature_name": S, "instances": [row, ...]}  each row one value (single
           input) or {input: value}; rows are stacked on a new first dimension.
           Response {"predictions": [...]}: values, or {output: value} per row.
  columnar {"signature_name": S, "inputs": value | {input: value}}
           Response {"outputs": value | {output: value}}.

Bytes travel as {"b64": "..."}; plain JSON strings are taken as UTF-8. Values
are converted to the dtype the signature declares for the input. A floating
input also takes null, read as NaN (a missing number: a numeric side feature's
`score` value; strict JSON has no NaN).
"""

import base64
import binascii
import json
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np
import tensorflow as tf

from serving.errors import invalid_argument

ROW = "row"
COLUMNAR = "columnar"
_KEYS = {"signature_name", "instances", "inputs"}


def parse_body(body: bytes) -> Dict[str, Any]:
  try:
    parsed = json.loads(body.decode("utf-8"))
  except (UnicodeDecodeError, ValueError) as error:
    raise invalid_argument(f"the request body is not valid JSON ({error})") from None
  if not isinstance(parsed, dict):
    raise invalid_argument("the request body must be a JSON object")
  unknown = sorted(set(parsed) - _KEYS)
  if unknown:
    raise invalid_argument(f"unknown keys {unknown} in the request; expected "
                           "'signature_name' and one of 'instances' / 'inputs'")
  if ("instances" in parsed) == ("inputs" in parsed):
    raise invalid_argument("the request needs exactly one of 'instances' (row format) "
                           "and 'inputs' (columnar format)")
  name = parsed.get("signature_name", "")
  if not isinstance(name, str):
    raise invalid_argument("'signature_name' must be a string")
  return parsed


def _is_b64(value) -> bool:
  return isinstance(value, dict) and set(value) == {"b64"}


def _flatten(value, where: str) -> Tuple[List[int], List[Any]]:
  """Nested lists -> (shape, leaves); ragged nesting is an error."""
  shape: List[int] = []
  leaves: List[Any] = []
  leaf_depth = [None]

  def visit(node, depth):
    if isinstance(node, list):
      if len(shape) == depth:
        if leaf_depth[0] is not None and depth >= leaf_depth[0]:
          raise invalid_argument(f"{where} is ragged (lists nested to different depths)")
        shape.append(len(node))
      elif shape[depth] != len(node):
        raise invalid_argument(f"{where} is ragged (lists of different lengths at depth "
                               f"{depth}); tensors must be rectangular")
      for child in node:
        visit(child, depth + 1)
      return
    if leaf_depth[0] is None:
      if len(shape) > depth:
        raise invalid_argument(f"{where} is ragged (lists nested to different depths)")
      leaf_depth[0] = depth
    elif leaf_depth[0] != depth:
      raise invalid_argument(f"{where} is ragged (lists nested to different depths)")
    leaves.append(node)

  visit(value, 0)
  return shape, leaves


def _convert(leaf, dtype: tf.DType, where: str):
  if dtype == tf.string:
    if _is_b64(leaf):
      if not isinstance(leaf["b64"], str):
        raise invalid_argument(f"{where}: 'b64' must hold a string")
      try:
        return base64.b64decode(leaf["b64"], validate=True)
      except (binascii.Error, ValueError):
        raise invalid_argument(f"{where}: 'b64' is not valid base64") from None
    if isinstance(leaf, str):
      return leaf.encode("utf-8")
    raise invalid_argument(f"{where}: expected a string or {{\"b64\": ...}}, got "
                           f"{type(leaf).__name__}")
  if dtype == tf.bool:
    if isinstance(leaf, bool):
      return leaf
    raise invalid_argument(f"{where}: expected true/false, got {json.dumps(leaf)[:40]}")
  if leaf is None and (dtype.is_floating or dtype.is_complex):
    return float("nan")
  if isinstance(leaf, bool) or not isinstance(leaf, (int, float)):
    raise invalid_argument(f"{where}: expected a number for {dtype.name}, got "
                           f"{json.dumps(leaf)[:40]}")
  if dtype.is_integer:
    if isinstance(leaf, float):
      if not leaf.is_integer():
        raise invalid_argument(f"{where}: {leaf} is not an integer ({dtype.name})")
      leaf = int(leaf)
    if not dtype.min <= leaf <= dtype.max:
      raise invalid_argument(f"{where}: {leaf} is out of range for {dtype.name}")
    return leaf
  if dtype.is_floating or dtype.is_complex:
    return leaf
  raise invalid_argument(f"{where}: inputs of dtype {dtype.name} are not supported over REST")


def to_ndarray(value, dtype: tf.DType, where: str) -> np.ndarray:
  """A JSON value (scalar or nested lists) -> ndarray of the given dtype."""
  shape, leaves = _flatten(value, where)
  converted = [_convert(leaf, dtype, where) for leaf in leaves]
  if dtype == tf.string:
    array = np.empty(len(converted), dtype=object)
    array[:] = converted
  else:
    array = np.array(converted, dtype=dtype.as_numpy_dtype)
  return array.reshape(shape)


def request_inputs(body: Mapping[str, Any],
                   specs: Mapping[str, tf.TensorSpec]) -> Tuple[str, Dict[str, np.ndarray]]:
  """A parsed body -> (ROW or COLUMNAR, {input: ndarray}) for a signature's specs."""
  if "instances" in body:
    return ROW, _row_inputs(body["instances"], specs)
  return COLUMNAR, _columnar_inputs(body["inputs"], specs)


def _named(value) -> bool:
  return isinstance(value, dict) and not _is_b64(value)


def _row_inputs(instances, specs) -> Dict[str, np.ndarray]:
  if not isinstance(instances, list) or not instances:
    raise invalid_argument("'instances' must be a non-empty list")
  scalars = sorted(name for name, spec in specs.items() if spec.shape.rank == 0)
  if scalars:
    raise invalid_argument(
        f"the row format ('instances') stacks every input along a new first dimension, but "
        f"{scalars} are scalars in this signature; send the columnar 'inputs' form")
  names = sorted(specs)
  columns: Dict[str, list] = {}
  for index, instance in enumerate(instances):
    if _named(instance):
      row = instance
    elif len(names) == 1:
      row = {names[0]: instance}
    else:
      raise invalid_argument(f"instances[{index}] must be an object naming the inputs {names}")
    if index and set(row) != set(columns):
      raise invalid_argument(f"instances[{index}] has inputs {sorted(row)}, but "
                             f"instances[0] has {sorted(columns)}")
    for name, value in row.items():
      columns.setdefault(name, []).append(value)
  return {name: to_ndarray(values, _dtype(specs, name), f"input '{name}'")
          for name, values in columns.items()}


def _columnar_inputs(inputs, specs) -> Dict[str, np.ndarray]:
  if not _named(inputs):
    if len(specs) != 1:
      raise invalid_argument(f"'inputs' must be an object naming the inputs {sorted(specs)}")
    inputs = {next(iter(specs)): inputs}
  return {name: to_ndarray(value, _dtype(specs, name), f"input '{name}'")
          for name, value in inputs.items()}


def _dtype(specs, name) -> tf.DType:
  # An input the signature does not have is reported by validation.check_names;
  # decode it as a string meanwhile so that check can name it.
  spec = specs.get(name)
  return spec.dtype if spec is not None else tf.string


def _json_value(array: np.ndarray, name: str):
  if array.dtype.kind in "OS":
    def text(value: bytes):
      if name.endswith("_bytes"):
        return {"b64": base64.b64encode(value).decode("ascii")}
      try:
        return value.decode("utf-8")
      except UnicodeDecodeError:
        return {"b64": base64.b64encode(value).decode("ascii")}
    return np.vectorize(text, otypes=[object])(array).tolist() if array.size else array.tolist()
  return array.tolist()


def response_body(form: str, outputs: Mapping[str, np.ndarray]) -> Dict[str, Any]:
  """Outputs -> the response JSON of the request's form, as TF Serving writes it."""
  names = sorted(outputs)
  if form == COLUMNAR:
    if len(names) == 1:
      return {"outputs": _json_value(outputs[names[0]], names[0])}
    return {"outputs": {name: _json_value(outputs[name], name) for name in names}}
  if len(names) == 1:
    return {"predictions": _json_value(outputs[names[0]], names[0])}
  sizes = {outputs[name].shape[0] if outputs[name].ndim else None for name in names}
  if len(sizes) != 1 or None in sizes:
    raise invalid_argument("the outputs do not share a batch dimension, so they cannot be "
                           "returned as rows; send the columnar 'inputs' form")
  columns = {name: _json_value(outputs[name], name) for name in names}
  return {"predictions": [{name: columns[name][i] for name in names}
                          for i in range(sizes.pop())]}
