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

Declared side features (the served export's FeatureSpecs, servable.features)
are checked by the ingest's own value rule (components/side_features.py
parse_value: the id rule for categorical values, the numeric rule for numbers),
so a value the ingest would have dead-lettered is INVALID_ARGUMENT with the same
words, naming the input, the position and the value. `score`: an item feature's
values are parallel to item_ids (hist_NAME to hist_item_ids); "" or only
whitespace is a missing categorical, NaN a missing number (the export applies the
declared default). tf.Examples: the raw features as the ingest writes them (one
value per scalar feature, b"" for a missing categorical, NAME_missing 0 or 1,
hist_NAME parallel to hist_item_ids).
"""

import contextlib
import dataclasses
import threading
import warnings
from typing import Any, Dict, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf

from components import events, rules, side_features
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


# ----------------------------------------------------------------- side features

def _shown(value: Any) -> str:
  """A value as a message quotes it: escapes visible, at most about 40 characters."""
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      pass  # shown as bytes: b'\xff'
  text = repr(value)
  return text if len(text) <= 42 else text[:40] + "..."


def value_problem(spec, value: Any, element: bool = False) -> Optional[str]:
  """Why one request value of the declared feature `spec` breaks the ingest's rule
  (side_features.parse_value), or None. Bytes are read as UTF-8 text (bytes that
  are not UTF-8 are refused by the rule); "" / NaN are missing values, which are
  valid. element: one value of a categorical_list's example feature (not split
  on the separator)."""
  if isinstance(value, bytes):
    try:
      value = value.decode("utf-8")
    except UnicodeDecodeError:
      element = element or spec.kind == side_features.CATEGORICAL_LIST
  if element:
    value = [value]
  try:
    side_features.parse_value(spec, value)
  except events.RowError as error:
    return error.detail
  return None


def _first_bad_value(spec, name: str, values, element: bool = False):
  """Raises INVALID_ARGUMENT for the first of `values` (a flat list) that breaks
  the rule, naming `name`[position] and the value."""
  for position, value in enumerate(values):
    problem = value_problem(spec, value, element)
    if problem:
      raise invalid_argument(f"{name}[{position}] = {_shown(value)}: {problem}")


def _values_pass(spec, values: np.ndarray, element: bool = False) -> bool:
  """Whether every value of one feature passes the rule, quickly: a number's rule
  is an interval (finite, within float32's range), so the smallest and largest
  present values pass only if all do; a categorical's rule depends on the value
  alone, so each distinct value is checked once."""
  flat = values.ravel()
  if spec.kind == side_features.NUMERIC:
    present = flat[~np.isnan(flat)]  # NaN: a missing value
    return not present.size or not any(value_problem(spec, float(extreme))
                                       for extreme in (present.min(), present.max()))
  return not any(value_problem(spec, value, element) for value in set(flat.tolist()))


def _check_values(spec, name: str, value: np.ndarray):
  if _values_pass(spec, value):
    return
  if value.ndim == 0:
    item = value.item()
    raise invalid_argument(f"{name} = {_shown(item)}: {value_problem(spec, item)}")
  _first_bad_value(spec, name, value.ravel().tolist())


# The inputs an item feature's `score` values are parallel to, and what each one is.
_PARALLEL = {signatures.PER_CANDIDATE: (signatures.ITEM_IDS, "candidate"),
             signatures.PER_HISTORY: (signatures.HIST_ITEM_IDS, "behaviour of the history")}


def check_score_features(features: Sequence[Any], inputs: Mapping[str, np.ndarray]):
  """The declared features' `score` inputs (signatures.score_feature_inputs):
  item features parallel to item_ids / hist_item_ids, every value by the
  ingest's rule. Inputs have passed check_tensor (dtype and rank)."""
  specs = {spec.name: spec for spec in features}
  for entry in signatures.score_feature_inputs(features):
    value = inputs.get(entry.name)
    if value is None or (value.dtype.kind == "f") != (entry.dtype == signatures.FLOAT):
      continue  # not an input of this export's signature (check_names has passed)
    parallel, one_per = _PARALLEL.get(entry.per, (None, None))
    if parallel in inputs and len(value) != len(inputs[parallel]):
      raise invalid_argument(
          f"{entry.name} has {len(value)} values but {parallel} has {len(inputs[parallel])}: "
          f"item feature '{entry.feature}' takes one value per {one_per}, parallel to "
          f"{parallel} (\"\" or NaN for a missing one)")
    _check_values(specs[entry.feature], entry.name, value)


_LIST_KINDS = {"bytes": "bytes_list", "float": "float_list", "int64": "int64_list"}
_TF_DTYPES = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}


def _example_feature_parts(features: Sequence[Any]):
  """(spec, raw feature name, dtype, shape) of every raw tf.Example feature the
  declared features have (side_features.raw_features)."""
  return [(spec, name, dtype, shape) for spec in features
          for name, (dtype, shape) in side_features.raw_features(spec).items()]


def _is_indicator(name: str, dtype: str) -> bool:
  return dtype == "int64" and name.endswith(side_features.MISSING_SUFFIX)


def _numbers_problem(values) -> Optional[str]:
  """The numeric rule on an example's float values (which hold no missing value:
  the ingest writes the default and NAME_missing = 1 instead of NaN)."""
  for value in values:
    problem = rules.numeric_problem(value)
    if problem:
      return f"{_shown(value)} {problem}"
  return None


def _missing_hint(spec) -> str:
  """How the ingest writes a missing value of `spec` into a tf.Example."""
  if spec.kind == side_features.NUMERIC:
    return (f"a missing number is {spec.name} = the default (else 0) and "
            f"{spec.name}{side_features.MISSING_SUFFIX} = 1")
  return 'a missing categorical is b""'


def _check_example_features(features: Sequence[Any], feature_map, where: str):
  """One tf.Example's declared features, as the ingest writes them."""
  history = (_feature_length(feature_map[signatures.HIST_ITEM_IDS])
             if signatures.HIST_ITEM_IDS in feature_map else 0)
  for spec, name, dtype, shape in _example_feature_parts(features):
    kind = feature_map[name].WhichOneof("kind") if name in feature_map else None
    values = list(getattr(feature_map[name], kind).value) if kind else []
    if kind and kind != _LIST_KINDS[dtype]:
      raise invalid_argument(f"{where}{name} must be a {_LIST_KINDS[dtype]} (declared "
                             f"{spec.kind} feature '{spec.name}'), got a {kind}")
    if shape == "scalar" and len(values) != 1:
      raise invalid_argument(f"{where}{name} must hold exactly one value (declared {spec.kind} "
                             f"feature '{spec.name}'; {_missing_hint(spec)}), got {len(values)}")
    if shape == "history" and len(values) != history:
      raise invalid_argument(f"{where}{name} has {len(values)} values but "
                             f"{signatures.HIST_ITEM_IDS} has {history}: one per behaviour, "
                             "parallel to it")
    if _is_indicator(name, dtype):
      bad = [value for value in values if value not in (0, 1)]
      if bad:
        raise invalid_argument(f"{where}{name} = {bad[0]}: a missing indicator is 0 or 1")
    elif dtype == "float":
      problem = _numbers_problem(values)
      if problem:
        raise invalid_argument(f"{where}{name}: {spec.name} {problem}")
    else:
      _first_bad_value(spec, f"{where}{name}", values, element=shape == "list")


def _example_features_pass(parsed: Mapping[str, np.ndarray], features: Sequence[Any],
                           history_counts: np.ndarray) -> bool:
  """_check_example_features' rules on a whole parsed request (see _examples_pass)."""
  for spec, name, dtype, shape in _example_feature_parts(features):
    counts, values = parsed[f"{name}/count"], parsed[f"{name}/values"]
    if shape == "scalar" and (counts != 1).any():
      return False
    if shape == "history" and (counts != history_counts).any():
      return False
    if _is_indicator(name, dtype):
      if not np.isin(values, (0, 1)).all():
        return False
    elif dtype == "float":
      if values.size and _numbers_problem((float(values.min()), float(values.max()))):
        return False  # NaN propagates into min / max
    elif not _values_pass(spec, values, element=shape == "list"):
      return False
  return True


def _feature_length(feature) -> int:
  kind = feature.WhichOneof("kind")
  return len(getattr(feature, kind).value) if kind else 0


_HISTORY_TIME_FEATURES = (signatures.HIST_TIMESTAMPS, signatures.TIMESTAMP)
# {declared features: concrete function}, built on first use, then shared by
# every request thread (a version's features are fixed).
_examples_functions: Dict[tuple, Any] = {}


def _parsed_examples(features: Sequence[Any] = ()):
  """A concrete function: serialized tf.Examples -> per feature of the rules
  (the built-in ones and the declared features' raw ones), each example's value
  count and the values (strings: the distinct ones only)."""
  features = tuple(features)
  function = _examples_functions.get(features)
  if function is None:
    spec = {name: tf.io.VarLenFeature(tf.string) for name in _EXAMPLE_ID_FEATURES}
    spec.update({name: tf.io.VarLenFeature(tf.int64) for name in _HISTORY_TIME_FEATURES})
    spec.update({name: tf.io.VarLenFeature(_TF_DTYPES[dtype])
                 for _, name, dtype, _ in _example_feature_parts(features)})

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

    function = _examples_functions[features] = parse.get_concrete_function()
  return function


def warm_up(features: Sequence[Any] = ()):
  """Traces the whole-request example parser now rather than on the first request."""
  _examples_pass(np.array([b""], dtype=object), Limits(), features)


def _examples_pass(serialized: np.ndarray, limits: Limits, features: Sequence[Any] = ()) -> bool:
  """True when every example certainly passes check_examples' rules; False when
  one may not (check_examples then reads them one by one and says which).

  The same rules on the whole request: TensorFlow parses it in C++, the distinct
  ids go through _check_ids once (a user's candidates share one history), and the
  history checks run on the parsed arrays.
  """
  if serialized.size == 0:
    return True
  try:
    parsed = {name: value.numpy() for name, value in _parsed_examples(features)(
        tf.constant(serialized.ravel().tolist(), tf.string)).items()}
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
  if features and not _example_features_pass(parsed, features, lengths[0]):
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


def check_examples(serialized: np.ndarray, limits: Limits, features: Sequence[Any] = ()):
  """Each string is a tf.Example; any history it carries is consistent and within
  limits; the declared features' raw features are there, as the ingest writes them.

  TensorFlow's own example parser (the one the model runs) checks a whole request
  at once first (_examples_pass); only a request it cannot clear is read here,
  example by example, for the exact message.
  """
  if not _examples_pass(serialized, limits, features):
    _check_each_example(serialized, limits, features)


def _check_each_example(serialized: np.ndarray, limits: Limits, features: Sequence[Any] = ()):
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
    feature_map = example.features.feature
    for name in _EXAMPLE_ID_FEATURES:
      if name in feature_map:
        _check_ids(f"{signatures.EXAMPLES}[{index}].{name}",
                   feature_map[name].bytes_list.value, all_bytes=True)
    lengths = {name: _feature_length(feature_map[name])
               for name in signatures.HISTORY_INPUTS if name in feature_map}
    where = f"{signatures.EXAMPLES}[{index}]: "
    check_history(lengths, dataclasses.replace(limits, allow_empty_history=True), where)
    if signatures.HIST_TIMESTAMPS in feature_map:
      times = np.array(feature_map[signatures.HIST_TIMESTAMPS].int64_list.value, np.int64)
      request_time = None
      if len(feature_map[signatures.TIMESTAMP].int64_list.value) == 1:
        request_time = int(feature_map[signatures.TIMESTAMP].int64_list.value[0])
      _check_history_times(times, request_time, where)
    _check_example_features(features, feature_map, f"{signatures.EXAMPLES}[{index}].")


def check_request(specs: Mapping[str, tf.TensorSpec], inputs: Dict[str, np.ndarray],
                  limits: Limits, features: Sequence[Any] = ()):
  """Raises INVALID_ARGUMENT for the first thing wrong with `inputs` for this signature.

  specs: the signature's {input name: TensorSpec}; inputs: {input name: ndarray}
  (strings as object arrays of bytes); features: the served export's declared
  side features (FeatureSpecs, servable.features), whose values are checked by
  the ingest's rules. Raises ServingError (INVALID_ARGUMENT) and nothing else.
  """
  check_names(specs, inputs)
  for name, spec in specs.items():
    check_tensor(name, spec, inputs[name])
  if any(name in specs for name in signatures.HISTORY_INPUTS + signatures.CANDIDATE_INPUTS):
    _check_score(inputs, limits)
    check_score_features(features, inputs)
  else:
    for name, value in inputs.items():
      if value.ndim and len(value) > limits.max_candidates:
        raise invalid_argument(f"input '{name}' has a batch of {len(value)}, more than this "
                               f"server's limit of {limits.max_candidates} (--max-candidates)")
  examples = specs.get(signatures.EXAMPLES)
  if examples is not None and examples.dtype == tf.string:
    check_examples(inputs[signatures.EXAMPLES], limits, features)
