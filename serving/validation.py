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

import contextlib
import dataclasses
import threading
import warnings
from typing import Dict, Mapping

import numpy as np
import tensorflow as tf

from components import rules
from models import signatures
from serving.errors import ServingError, invalid_argument
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


@contextlib.contextmanager
def _quiet_parser():
  with _PARSE_LOCK, warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Unexpected end-group tag",
                            category=RuntimeWarning)
    yield


def parse_whole(message, data: bytes) -> int:
  """message.ParseFromString(data) -> the bytes it consumed (raises DecodeError).

  Garbage that happens to hold an end-group tag makes the C++ protobuf parser stop
  early and say so only in a RuntimeWarning; callers compare the count with
  len(data) and refuse the request instead, so that warning is silenced here alone.
  """
  with _quiet_parser():
    return message.ParseFromString(data)


def _parse_each(message_class, datas):
  """[(message or the parse error, bytes consumed)] of each serialized message,
  under one lock and one warning filter (not one per message)."""
  parsed = []
  with _quiet_parser():
    for data in datas:
      message = message_class()
      try:
        parsed.append((message, message.ParseFromString(data)))
      except Exception as error:  # DecodeError
        parsed.append((error, 0))
  return parsed


def _all_bytes(value: np.ndarray) -> bool:
  # One C-level pass over the element types (no Python loop per element).
  return set(map(type, value.ravel().tolist())) <= {bytes}


def check_tensor(name: str, spec: tf.TensorSpec, value: np.ndarray):
  """The dtype exactly (as TF Serving), and a shape compatible with the spec's."""
  if spec.dtype == tf.string:
    ok = value.dtype.kind == "S" or (value.dtype.kind == "O" and _all_bytes(value))
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


class _KnownIds:
  """Ids that passed the rule before (a pure function of the id), so a request
  checks only the ids new to this process: histories repeat the same catalogue.
  Bounded: emptied when full. Set operations run in C under the GIL; the lock
  only orders the writers."""

  def __init__(self, capacity: int = 1 << 18):
    self.capacity = capacity
    self._ids = set()
    self._lock = threading.Lock()

  def unseen(self, values) -> set:
    return set(values).difference(self._ids)

  def add(self, values: set):
    with self._lock:
      if len(self._ids) + len(values) > self.capacity:
        self._ids = set()
      self._ids.update(values)


_KNOWN_IDS = _KnownIds()


def _check_ids(name: str, values, all_bytes: bool = False):
  """Every value is an id by the ingest's rule (components/rules.py). all_bytes:
  the caller knows every value is bytes (check_tensor passed a string input)."""
  values = values.ravel().tolist() if isinstance(values, np.ndarray) else list(values)
  if all_bytes or set(map(type, values)) <= {bytes}:
    unseen = _KNOWN_IDS.unseen(values)
    if not unseen:
      return
    if rules.all_plain_ids(list(unseen)):  # the common case, without a decode per id
      _KNOWN_IDS.add(unseen)
      return
  elif rules.all_plain_ids(values):
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
      # check_tensor has passed every input: an object array here is all bytes.
      _check_ids(name, inputs[name], all_bytes=inputs[name].dtype.kind in "OS")
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


_HISTORY_TIME_FEATURES = (signatures.HIST_TIMESTAMPS, signatures.TIMESTAMP)
_examples_function = None  # built on first use, then shared by every request thread


def _parsed_examples():
  """A concrete function: serialized tf.Examples -> per feature of the rules, each
  example's value count and the values (ids: the distinct ones only)."""
  global _examples_function
  if _examples_function is None:
    spec = {name: tf.io.VarLenFeature(tf.string) for name in _EXAMPLE_ID_FEATURES}
    spec.update({name: tf.io.VarLenFeature(tf.int64) for name in _HISTORY_TIME_FEATURES})

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def parse(serialized):
      parsed = tf.io.parse_example(serialized, spec)
      count = tf.shape(serialized, out_type=tf.int64)[0]
      out = {}
      for name, sparse in parsed.items():
        out[f"{name}/count"] = tf.math.bincount(sparse.indices[:, 0], minlength=count,
                                                maxlength=count, dtype=tf.int64)
        out[f"{name}/values"] = (tf.unique(sparse.values).y if sparse.values.dtype == tf.string
                                 else sparse.values)
      return out

    _examples_function = parse.get_concrete_function()
  return _examples_function


def warm_up():
  """Traces the whole-request example parser now rather than on the first request."""
  _examples_pass(np.array([b""], dtype=object), Limits())


def _examples_pass(serialized: np.ndarray, limits: Limits) -> bool:
  """True when every example certainly passes check_examples' rules; False when
  one may not (check_examples then reads them one by one and says which).

  The same rules on the whole request: TensorFlow parses it in C++, the distinct
  ids go through _check_ids once (a user's candidates share one history), and the
  history checks run on the parsed arrays.
  """
  if serialized.size == 0:
    return True
  try:
    parsed = {name: value.numpy() for name, value in
              _parsed_examples()(tf.constant(serialized.ravel().tolist(), tf.string)).items()}
  except Exception:  # pylint: disable=broad-except  (InvalidArgumentError; UnicodeDecodeError
    return False      # when TF's message quotes the bytes): the reader says what is wrong
  try:
    for name in _EXAMPLE_ID_FEATURES:
      _check_ids(name, parsed[f"{name}/values"].tolist(), all_bytes=True)
  except ServingError:
    return False
  lengths = [parsed[f"{name}/count"] for name in signatures.HISTORY_INPUTS]
  if any((length != lengths[0]).any() for length in lengths[1:]):
    return False
  if lengths[0].max(initial=0) > limits.max_history:
    return False
  times = parsed[f"{signatures.HIST_TIMESTAMPS}/values"]
  if not times.size:
    return True
  counts = lengths[-1]
  starts = np.cumsum(counts) - counts
  rows = np.flatnonzero(counts)
  bounds = set(np.minimum.reduceat(times, starts[rows]).tolist())
  bounds |= set(np.maximum.reduceat(times, starts[rows]).tolist())
  if any(rules.unix_seconds_problem(value) for value in bounds):
    return False
  same_row = np.repeat(np.arange(len(counts)), counts)
  if ((np.diff(times) > 0) & (same_row[1:] == same_row[:-1])).any():
    return False  # not most recent first
  event_counts = parsed[f"{signatures.TIMESTAMP}/count"]
  event_times = parsed[f"{signatures.TIMESTAMP}/values"]
  event_starts = np.cumsum(event_counts) - event_counts
  for row in rows[event_counts[rows] == 1]:
    if not rules.in_history(int(times[starts[row]]), int(event_times[event_starts[row]])):
      return False
  return True


def check_examples(serialized: np.ndarray, limits: Limits):
  """Each string is a tf.Example; any history it carries is consistent and within limits.

  TensorFlow's own example parser (the one the model runs) checks a whole request
  at once first (_examples_pass); only a request it cannot clear is read here,
  example by example, for the exact message.
  """
  if not _examples_pass(serialized, limits):
    _check_each_example(serialized, limits)


def _check_each_example(serialized: np.ndarray, limits: Limits):
  """check_examples' rules, example by example: raises for the first thing wrong."""
  datas = serialized.ravel().tolist()
  for index, (example, consumed) in enumerate(_parse_each(tf.train.Example, datas)):
    data = datas[index]
    if isinstance(example, Exception):  # DecodeError
      raise invalid_argument(
          f"{signatures.EXAMPLES}[{index}] is not a serialized tf.Example ({example})")
    if consumed != len(data):  # the C++ parser stops at a stray end tag and says so only
      raise invalid_argument(  # in a warning: the rest of the bytes would be ignored
          f"{signatures.EXAMPLES}[{index}] is not a serialized tf.Example (it parses only "
          f"{consumed} of {len(data)} bytes)")
    features = example.features.feature
    for name in _EXAMPLE_ID_FEATURES:
      if name in features:
        _check_ids(f"{signatures.EXAMPLES}[{index}].{name}",
                   features[name].bytes_list.value, all_bytes=True)
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
