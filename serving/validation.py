"""Request checks, before any tensor reaches the model.

Generic checks come from the signature's own input specs (the loaded
SavedModel's structured_input_signature): every input present, nothing extra,
the exact dtype, a compatible shape. The ETA rules are keyed on input names, so
they apply to any signature that has them (`score`, and tf.Examples carrying a
history): consistent lengths, the configured limits, ids and times that can be
real. Each failure is an INVALID_ARGUMENT naming the input and what was wrong.

Unknown item or category ids are valid: they map to Transform's OOV buckets,
exactly as unseen items do at training time, and a new item must be scorable
before it is in any vocabulary. Only malformed requests are refused.
"""

import dataclasses
import threading
import warnings
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from components import rules
from models import signatures
from serving.errors import invalid_argument
from serving.limits import Limits

# Id inputs of `score` and id features of tf.Examples: the ingest's id rule
# (components/rules.py) applies to each value.
_SCORE_ID_INPUTS = (signatures.HIST_ITEM_IDS, signatures.HIST_CATEGORIES, signatures.ITEM_IDS,
                    signatures.CATEGORIES)
_EXAMPLE_ID_FEATURES = (signatures.USER_ID, signatures.ITEM_ID, signatures.CATEGORY,
                        signatures.HIST_ITEM_IDS, signatures.HIST_CATEGORIES)


def shape_text(shape) -> str:
  dims = ["?" if d is None else str(d) for d in tf.TensorShape(shape).as_list()]
  return "[" + ", ".join(dims) + "]"


def _dtype_name(array: np.ndarray) -> str:
  if array.dtype.kind in "OSU":
    return "string"
  try:
    return tf.as_dtype(array.dtype).name
  except TypeError:
    return str(array.dtype)


# catch_warnings swaps the process-wide filter list and puts back what it saw on
# entry, so two threads inside it at once could leave a filter installed: the
# lock keeps parse_whole's uses one at a time (the C++ parser holds the GIL anyway).
_PARSE_LOCK = threading.Lock()


def parse_whole(message, data: bytes) -> int:
  """message.ParseFromString(data) -> the bytes it consumed (raises DecodeError).

  Garbage that happens to hold an end-group tag makes the C++ protobuf parser stop
  early and say so only in a RuntimeWarning; callers compare the count with
  len(data) and refuse the request instead, so that warning is silenced here alone.
  """
  with _PARSE_LOCK, warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Unexpected end-group tag",
                            category=RuntimeWarning)
    return message.ParseFromString(data)


def check_tensor(name: str, spec: tf.TensorSpec, value: np.ndarray):
  """The dtype exactly (as TF Serving), and a shape compatible with the spec's."""
  if spec.dtype == tf.string:
    ok = value.dtype.kind == "S" or (
        value.dtype.kind == "O" and all(isinstance(v, bytes) for v in value.flat))
  else:
    ok = value.dtype == spec.dtype.as_numpy_dtype
  if not ok:
    raise invalid_argument(f"input '{name}' must be {spec.dtype.name}, got {_dtype_name(value)}")
  if not spec.shape.is_compatible_with(value.shape):
    raise invalid_argument(
        f"input '{name}' must have shape {shape_text(spec.shape)} (rank {spec.shape.rank}), "
        f"got shape {shape_text(value.shape)}")


def check_names(specs: Mapping[str, tf.TensorSpec], inputs: Mapping[str, np.ndarray]):
  missing = sorted(set(specs) - set(inputs))
  extra = sorted(set(inputs) - set(specs))
  if missing or extra:
    parts = []
    if missing:
      parts.append(f"missing inputs {missing}")
    if extra:
      parts.append(f"unexpected inputs {extra}")
    raise invalid_argument(f"{' and '.join(parts)}; the signature takes {sorted(specs)}")


def _check_ids(name: str, values):
  """Every value is an id by the ingest's rule (components/rules.py)."""
  values = list(values)
  if rules.all_plain_ids(values):  # the common case, without a decode per id
    return
  for index, value in enumerate(values):
    problem = rules.id_problem(value)
    if problem:
      raise invalid_argument(f"{name}[{index}] {problem}")


def _check_time(name: str, value: int):
  problem = rules.unix_seconds_problem(value)
  if problem:
    raise invalid_argument(f"{name} ({value}) {problem}")


def check_history(lengths: Mapping[str, int], limits: Limits, where: str = ""):
  """One history's lists agree in length, are not empty (unless allowed), within limit."""
  if len(set(lengths.values())) > 1:
    detail = ", ".join(f"{name}={length}" for name, length in lengths.items())
    raise invalid_argument(f"{where}history inputs must have the same length, got {detail}")
  length = next(iter(lengths.values()), 0)
  if length == 0 and not limits.allow_empty_history and lengths:
    raise invalid_argument(
        f"{where}the history is empty: `score` retrieves from the user's past behaviours "
        "and needs at least one (score a user without history through serving_default, "
        "or start the server with --allow-empty-history)")
  if length > limits.max_history:
    raise invalid_argument(f"{where}the history has {length} behaviours, more than this "
                           f"server's limit of {limits.max_history} (--max-history)")


def _check_score(inputs: Mapping[str, np.ndarray], limits: Limits):
  history = {name: len(inputs[name]) for name in signatures.HISTORY_INPUTS if name in inputs}
  check_history(history, limits)
  candidates = {name: len(inputs[name]) for name in signatures.CANDIDATE_INPUTS if name in inputs}
  if candidates:
    if len(set(candidates.values())) > 1:
      detail = ", ".join(f"{name}={length}" for name, length in candidates.items())
      raise invalid_argument(f"candidate inputs must have the same length, got {detail}")
    count = next(iter(candidates.values()))
    # Zero candidates would reach a graph that cannot handle them (it crashes the
    # process), so this check is also what keeps the server up.
    if count == 0:
      raise invalid_argument(f"no candidates: {signatures.ITEM_IDS} is empty")
    if count > limits.max_candidates:
      raise invalid_argument(f"{count} candidates, more than this server's limit of "
                             f"{limits.max_candidates} (--max-candidates)")
  for name in _SCORE_ID_INPUTS:
    if name in inputs:
      _check_ids(name, inputs[name].flat)
  request_time = None
  if signatures.REQUEST_TIME in inputs and inputs[signatures.REQUEST_TIME].ndim == 0:
    request_time = int(inputs[signatures.REQUEST_TIME])
    _check_time(signatures.REQUEST_TIME, request_time)
  if signatures.HIST_TIMESTAMPS in inputs:
    _check_history_times(inputs[signatures.HIST_TIMESTAMPS], request_time)


def _check_history_times(times: np.ndarray, request_time, where: str = ""):
  """Unix seconds, most recent first, each strictly before the request (the ingest's
  point-in-time rule, components/rules.py in_history: same-second events are never
  each other's history)."""
  name = f"{where}{signatures.HIST_TIMESTAMPS}"
  if len(times) == 0:
    return
  _check_time(f"{name}[{int(np.argmin(times))}]", int(times.min()))
  _check_time(f"{name}[{int(np.argmax(times))}]", int(times.max()))
  rising = np.nonzero(np.diff(times) > 0)[0]
  if len(rising):
    i = int(rising[0])
    raise invalid_argument(
        f"{name} must be most recent first, but [{i}]={int(times[i])} is earlier than "
        f"[{i + 1}]={int(times[i + 1])}")
  if request_time is not None and not rules.in_history(int(times[0]), request_time):
    raise invalid_argument(
        f"{name}[0]={int(times[0])} is not before {signatures.REQUEST_TIME}={request_time}; "
        "a history holds only behaviours strictly earlier than the request")


def _feature_length(feature) -> int:
  kind = feature.WhichOneof("kind")
  return len(getattr(feature, kind).value) if kind else 0


def check_examples(serialized: np.ndarray, limits: Limits):
  """Each string is a tf.Example; any history it carries is consistent and within limits."""
  for index, data in enumerate(serialized.flat):
    example = tf.train.Example()
    try:
      consumed = parse_whole(example, data)
    except Exception as error:  # DecodeError
      raise invalid_argument(
          f"{signatures.EXAMPLES}[{index}] is not a serialized tf.Example ({error})") from None
    if consumed != len(data):  # the C++ parser stops at a stray end tag and says so only
      raise invalid_argument(  # in a warning: the rest of the bytes would be ignored
          f"{signatures.EXAMPLES}[{index}] is not a serialized tf.Example (it parses only "
          f"{consumed} of {len(data)} bytes)")
    features = example.features.feature
    for name in _EXAMPLE_ID_FEATURES:
      if name in features:
        _check_ids(f"{signatures.EXAMPLES}[{index}].{name}",
                   features[name].bytes_list.value)
    lengths = {name: _feature_length(features[name])
               for name in signatures.HISTORY_INPUTS if name in features}
    where = f"{signatures.EXAMPLES}[{index}]: "
    check_history(lengths, dataclasses.replace(limits, allow_empty_history=True), where)
    if signatures.HIST_TIMESTAMPS in features:
      times = np.array(features[signatures.HIST_TIMESTAMPS].int64_list.value, np.int64)
      request_time = None
      if len(features[signatures.TIMESTAMP].int64_list.value) == 1:
        request_time = int(features[signatures.TIMESTAMP].int64_list.value[0])
      _check_history_times(times, request_time, where)


def check_request(specs: Mapping[str, tf.TensorSpec], inputs: Dict[str, np.ndarray],
                  limits: Limits):
  """Raises INVALID_ARGUMENT for the first thing wrong with `inputs` for this signature."""
  check_names(specs, inputs)
  for name, spec in specs.items():
    check_tensor(name, spec, inputs[name])
  if any(name in specs for name in signatures.HISTORY_INPUTS + signatures.CANDIDATE_INPUTS):
    _check_score(inputs, limits)
  else:
    for name, value in inputs.items():
      if value.ndim and len(value) > limits.max_candidates:
        raise invalid_argument(f"input '{name}' has a batch of {len(value)}, more than this "
                               f"server's limit of {limits.max_candidates} (--max-candidates)")
  examples = specs.get(signatures.EXAMPLES)
  if examples is not None and examples.dtype == tf.string:
    check_examples(inputs[signatures.EXAMPLES], limits)
