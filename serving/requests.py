"""Client side: what `eta predict` reads -> the tensors of a PredictRequest.

A history file is JSON, one of:

  {"history": [{"item_id": "i1", "category": "c1", "timestamp": 1600000000}, ...],
   "candidates": [{"item_id": "i9", "category": "c2"} | "i9:c2", ...],
   "request_time": 1600000100, "user_id": "u1"}          (all but history optional)

  {"hist_item_ids": [...], "hist_categories": [...], "hist_timestamps": [...],
   "item_ids": [...], "categories": [...], "request_time": T}   (the score inputs)

With declared side features (FeatureSpecs, passed as `specs`), the first form
holds a user or context feature's value at the top level ("age": "30"), an item
feature's in each candidate object ("price": 9.5) and, in_history, in each
history entry; the second form holds the `score` inputs by name (an item
feature a list parallel to item_ids, hist_NAME parallel to hist_item_ids). An
absent key or null is a missing value (the model's default applies); a value
follows the ingest's rule (side_features.parse_value: a bad one raises
ValueError naming the feature).

The history is sorted most recent first (the model's contract) whatever the
file's order. An example file is TFRecords of tf.Example (gzipped if it ends in
.gz, as the ingest writes them) or JSONL, one object of features per line; with
`--signature score` the first example's history, user and context features and
every example's item (and item features) make the request.
"""

import dataclasses
import json
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2

from components import side_features
from models import signatures

DEFAULT_CATEGORY = "unknown"  # the ingest's category for an event without one
_INT_FEATURES = (signatures.TIMESTAMP, signatures.HIST_TIMESTAMPS, "label", "hist_labels")
_BYTES_FEATURES = (signatures.USER_ID, signatures.ITEM_ID, signatures.CATEGORY,
                   signatures.HIST_ITEM_IDS, signatures.HIST_CATEGORIES)


def _no_features():
  return dataclasses.field(default_factory=dict, hash=False)


@dataclasses.dataclass(frozen=True)
class Behaviour:
  """features: {in_history item feature: its raw value for this behaviour}."""
  item_id: str
  category: str
  timestamp: int
  features: Mapping[str, Any] = _no_features()


@dataclasses.dataclass(frozen=True)
class Candidate:
  """features: {item feature: its raw value}."""
  item_id: str
  category: str
  features: Mapping[str, Any] = _no_features()


@dataclasses.dataclass
class ScoreQuery:
  """One user's history (most recent first), candidates and the time of asking;
  features: {user or context feature: its raw value} (absent = missing)."""
  history: List[Behaviour]
  candidates: List[Candidate]
  request_time: Optional[int] = None
  user_id: str = "eta-predict"
  features: Dict[str, Any] = dataclasses.field(default_factory=dict)

  def resolved_time(self) -> int:
    return int(time.time()) if self.request_time is None else self.request_time


def parse_candidates(text: str) -> List[Candidate]:
  """'item:category,item2:category2' (a missing category is 'unknown')."""
  candidates = []
  for part in text.split(","):
    part = part.strip()
    if not part:
      continue
    item, sep, category = part.rpartition(":")
    if not sep:
      item, category = part, DEFAULT_CATEGORY
    if not item:
      raise ValueError(f"candidate {part!r} has no item id")
    candidates.append(Candidate(item, category or DEFAULT_CATEGORY))
  if not candidates:
    raise ValueError("--candidates lists no candidate")
  return candidates


def _item_specs(specs: Sequence[Any], history: bool = False) -> List[Any]:
  """The declared item features (history: those also in the history)."""
  return [spec for spec in specs
          if spec.entity == side_features.ITEM and (spec.in_history or not history)]


def _request_specs(specs: Sequence[Any]) -> List[Any]:
  """The declared user and context features (one value per request)."""
  return [spec for spec in specs if spec.entity != side_features.ITEM]


def _values_of(entry: Mapping[str, Any], specs: Sequence[Any]) -> Dict[str, Any]:
  return {spec.name: entry[spec.name] for spec in specs if spec.name in entry}


def _candidate(value, where: str, specs: Sequence[Any] = ()) -> Candidate:
  if isinstance(value, str):
    return parse_candidates(value)[0]
  if isinstance(value, dict) and "item_id" in value:
    return Candidate(str(value["item_id"]), str(value.get("category", DEFAULT_CATEGORY)),
                     _values_of(value, _item_specs(specs)))
  raise ValueError(f"{where} must be 'item:category' or {{\"item_id\", \"category\"}}")


def _parallel(data: Mapping[str, Any], name: str, length: int, to: str) -> list:
  """The list data[name], parallel to `to` (of `length`); absent: all missing."""
  values = data.get(name)
  if values is None:
    return [None] * length
  if not isinstance(values, list) or len(values) != length:
    raise ValueError(f"{name} must be a list parallel to {to} ({length} values)")
  return values


def _sorted_history(history: Sequence[Behaviour]) -> List[Behaviour]:
  return sorted(history, key=lambda b: b.timestamp, reverse=True)


def query_from_json(data: Dict[str, Any], specs: Sequence[Any] = ()) -> ScoreQuery:
  """Either JSON form above -> ScoreQuery; specs: the declared side features
  (FeatureSpecs) whose values the file may hold."""
  if not isinstance(data, dict):
    raise ValueError("the history file must hold a JSON object")
  in_history = _item_specs(specs, history=True)
  if signatures.HIST_ITEM_IDS in data:
    items = data[signatures.HIST_ITEM_IDS]
    categories = data.get(signatures.HIST_CATEGORIES, [DEFAULT_CATEGORY] * len(items))
    times = data.get(signatures.HIST_TIMESTAMPS)
    if times is None or not len(items) == len(categories) == len(times):
      raise ValueError("hist_item_ids, hist_categories and hist_timestamps must be lists "
                       "of the same length")
    hist_values = {spec.name: _parallel(data, side_features.HISTORY_PREFIX + spec.name,
                                        len(items), signatures.HIST_ITEM_IDS)
                   for spec in in_history}
    history = [Behaviour(str(i), str(c), int(t),
                         {name: values[n] for name, values in hist_values.items()})
               for n, (i, c, t) in enumerate(zip(items, categories, times))]
    cand_items = data.get(signatures.ITEM_IDS, [])
    cand_categories = data.get(signatures.CATEGORIES, [DEFAULT_CATEGORY] * len(cand_items))
    if len(cand_items) != len(cand_categories):
      raise ValueError("item_ids and categories must have the same length")
    item_values = {spec.name: _parallel(data, spec.name, len(cand_items), signatures.ITEM_IDS)
                   for spec in _item_specs(specs)}
    candidates = [Candidate(str(i), str(c),
                            {name: values[n] for name, values in item_values.items()})
                  for n, (i, c) in enumerate(zip(cand_items, cand_categories))]
  elif "history" in data:
    history = []
    for index, entry in enumerate(data["history"]):
      if not isinstance(entry, dict) or "item_id" not in entry or "timestamp" not in entry:
        raise ValueError(f"history[{index}] needs item_id and timestamp")
      history.append(Behaviour(str(entry["item_id"]),
                               str(entry.get("category", DEFAULT_CATEGORY)),
                               int(entry["timestamp"]), _values_of(entry, in_history)))
    candidates = [_candidate(c, f"candidates[{i}]", specs)
                  for i, c in enumerate(data.get("candidates", []))]
  else:
    raise ValueError("the history file needs 'history' (a list of behaviours) or "
                     "'hist_item_ids' / 'hist_categories' / 'hist_timestamps'")
  request_time = data.get(signatures.REQUEST_TIME)
  return ScoreQuery(_sorted_history(history), candidates,
                    None if request_time is None else int(request_time),
                    str(data.get(signatures.USER_ID, "eta-predict")),
                    _values_of(data, _request_specs(specs)))


def load_history_file(path: str, specs: Sequence[Any] = ()) -> ScoreQuery:
  with tf.io.gfile.GFile(path, "r") as handle:
    try:
      data = json.load(handle)
    except ValueError as error:
      raise ValueError(f"{path} is not JSON ({error})") from None
  return query_from_json(data, specs)


_LISTS = {"bytes": "bytes_list", "float": "float_list", "int64": "int64_list"}


def _typed_values(name: str, dtype: str, values: list) -> list:
  try:
    if dtype == "bytes":
      return [str(v).encode("utf-8") for v in values]
    if dtype == "float":
      return [float(v) for v in values]
    return [int(v) for v in values]
  except (TypeError, ValueError):
    raise ValueError(f"feature {name}: {values!r} are not {dtype} values") from None


def example_from_json(data: Dict[str, Any], specs: Sequence[Any] = ()) -> tf.train.Example:
  """{feature: value or list} -> tf.Example. The ingest's features get their
  types (ids bytes, times int64; the declared side features' raw features as
  side_features.raw_features says); others are int64, float or bytes by value."""
  example = tf.train.Example()
  declared = side_features.all_raw_features(specs)
  for name, value in data.items():
    values = value if isinstance(value, list) else [value]
    feature = example.features.feature[name]
    if name in declared:
      dtype = declared[name][0]
      getattr(feature, _LISTS[dtype]).value.extend(_typed_values(name, dtype, values))
      continue
    numbers = values and all(isinstance(v, (int, float)) for v in values)
    if name in _INT_FEATURES or (name not in _BYTES_FEATURES and numbers and
                                 all(isinstance(v, int) for v in values)):
      feature.int64_list.value.extend(int(v) for v in values)
    elif name not in _BYTES_FEATURES and numbers:
      feature.float_list.value.extend(float(v) for v in values)
    else:
      feature.bytes_list.value.extend(str(v).encode("utf-8") for v in values)
  return example


def read_examples(path: str, limit: int, specs: Sequence[Any] = ()) -> List[tf.train.Example]:
  """Up to `limit` tf.Examples from TFRecords (.gz: gzipped) or JSONL (typed by
  example_from_json, with the declared features `specs`)."""
  examples = []
  if path.endswith((".jsonl", ".json")):
    with tf.io.gfile.GFile(path, "r") as handle:
      for number, line in enumerate(handle, 1):
        if len(examples) >= limit:
          break
        if line.strip():
          try:
            examples.append(example_from_json(json.loads(line), specs))
          except ValueError as error:
            raise ValueError(f"{path}:{number} is not a JSON object ({error})") from None
    return examples
  compression = "GZIP" if path.endswith(".gz") else ""
  try:
    for record in tf.data.TFRecordDataset(path, compression_type=compression).take(limit):
      examples.append(tf.train.Example.FromString(record.numpy()))
  except (tf.errors.OpError, DecodeError) as error:
    raise ValueError(f"{path} is not a TFRecord file of tf.Examples ({error})") from None
  if not examples:
    raise ValueError(f"{path} holds no tf.Examples (is it a TFRecord file? gzipped ones "
                     "must end in .gz)")
  return examples


def _bytes(example: tf.train.Example, name: str, default: str = "") -> List[str]:
  feature = example.features.feature.get(name)
  if feature is None:
    return [default] if default else []
  return [v.decode("utf-8", "replace") for v in feature.bytes_list.value]


def _ints(example: tf.train.Example, name: str) -> List[int]:
  feature = example.features.feature.get(name)
  return list(feature.int64_list.value) if feature is not None else []


def _feature_cells(example: tf.train.Example, spec, name: str) -> list:
  """The values of the raw feature `name` (spec's NAME or hist_NAME) of an
  example, as side_features.parse_value reads them: text, or a number (None
  where NAME_missing says the value is missing)."""
  feature_map = example.features.feature
  if name not in feature_map:
    return []
  if spec.kind != side_features.NUMERIC:
    return _bytes(example, name)
  missing = _ints(example, name + side_features.MISSING_SUFFIX)
  return [None if n < len(missing) and missing[n] else value
          for n, value in enumerate(feature_map[name].float_list.value)]


def _example_values(example: tf.train.Example, specs: Sequence[Any]) -> Dict[str, Any]:
  """{feature: its raw value} of one example's scalar or list features."""
  values = {}
  for spec in specs:
    cells = _feature_cells(example, spec, spec.name)
    values[spec.name] = (cells if spec.kind == side_features.CATEGORICAL_LIST
                         else next(iter(cells), None))
  return values


def candidate_of(example: tf.train.Example, specs: Sequence[Any] = ()) -> Candidate:
  """The example's item as a candidate, with its item features (of `specs`)."""
  return Candidate(next(iter(_bytes(example, signatures.ITEM_ID)), "?"),
                   next(iter(_bytes(example, signatures.CATEGORY, DEFAULT_CATEGORY))),
                   _example_values(example, _item_specs(specs)))


def query_from_examples(examples: Sequence[tf.train.Example],
                        specs: Sequence[Any] = ()) -> ScoreQuery:
  """The first example's user history, time and user / context features (of the
  declared `specs`); every example's item (and item features) as a candidate."""
  if not examples:
    raise ValueError("the example file holds no examples")
  first = examples[0]
  items = _bytes(first, signatures.HIST_ITEM_IDS)
  categories = _bytes(first, signatures.HIST_CATEGORIES) or [DEFAULT_CATEGORY] * len(items)
  times = _ints(first, signatures.HIST_TIMESTAMPS)
  in_history = {spec.name: _feature_cells(first, spec, side_features.HISTORY_PREFIX + spec.name)
                for spec in _item_specs(specs, history=True)}
  history = [Behaviour(i, c, t, {name: next(iter(cells[n:n + 1]), None)
                                 for name, cells in in_history.items()})
             for n, (i, c, t) in enumerate(zip(items, categories, times))]
  request_time = next(iter(_ints(first, signatures.TIMESTAMP)), None)
  user = next(iter(_bytes(first, signatures.USER_ID)), "eta-predict")
  return ScoreQuery(_sorted_history(history), [candidate_of(e, specs) for e in examples],
                    request_time, user, _example_values(first, _request_specs(specs)))


def _string_array(values: Sequence[str]) -> np.ndarray:
  array = np.empty(len(values), dtype=object)
  array[:] = [v.encode("utf-8") for v in values]
  return array


def _stored(spec, value):
  """A raw value -> its stored value by the ingest's rule (side_features.parse_value).

  Raises:
    ValueError: the value breaks the rule (the message names the feature).
  """
  try:
    return side_features.parse_value(spec, value)
  except ValueError as error:  # events.RowError
    raise ValueError(f"feature {spec.name}: {getattr(error, 'detail', error)}") from None


def _score_value(spec, value):
  """A raw value -> the `score` input's value: text ("" = missing), a number
  (NaN = missing), a categorical list's values joined by its separator."""
  stored = _stored(spec, value)
  if spec.kind == side_features.NUMERIC:
    number, missing = stored
    return signatures.MISSING_NUMBER if missing else number
  if spec.kind == side_features.CATEGORICAL:
    return stored
  return spec.separator.join(stored)


def _feature_array(entry, values: Sequence[Any]) -> np.ndarray:
  if entry.dtype == signatures.FLOAT:
    return np.array(values, np.float32)
  array = np.empty(len(values), dtype=object)
  array[:] = [value.encode("utf-8") for value in values]
  return array


def score_inputs(query: ScoreQuery, specs: Sequence[Any] = ()) -> Dict[str, np.ndarray]:
  """The `score` signature's inputs for a query: {input name: ndarray} (strings
  as object arrays of bytes), the declared features' (`specs`,
  signatures.score_feature_inputs) too: [] per request, [C] per candidate, [N]
  per behaviour.

  Raises:
    ValueError: a feature value breaks the ingest's rule.
  """
  inputs = {
      signatures.HIST_ITEM_IDS: _string_array([b.item_id for b in query.history]),
      signatures.HIST_CATEGORIES: _string_array([b.category for b in query.history]),
      signatures.HIST_TIMESTAMPS: np.array([b.timestamp for b in query.history], np.int64),
      signatures.ITEM_IDS: _string_array([c.item_id for c in query.candidates]),
      signatures.CATEGORIES: _string_array([c.category for c in query.candidates]),
      signatures.REQUEST_TIME: np.array(query.resolved_time(), np.int64),
  }
  by_name = {spec.name: spec for spec in specs}
  for entry in signatures.score_feature_inputs(specs):
    spec = by_name[entry.feature]
    if entry.per == signatures.PER_REQUEST:
      inputs[entry.name] = _feature_array(
          entry, [_score_value(spec, query.features.get(spec.name))]).reshape(())
      continue
    rows = query.candidates if entry.per == signatures.PER_CANDIDATE else query.history
    inputs[entry.name] = _feature_array(
        entry, [_score_value(spec, row.features.get(spec.name)) for row in rows])
  return inputs


def examples_for_query(query: ScoreQuery, specs: Sequence[Any] = ()) -> List[bytes]:
  """One serialized raw tf.Example per candidate, each carrying the history and
  the declared features (`specs`) as the ingest writes them.

  Raises:
    ValueError: a feature value breaks the ingest's rule.
  """
  serialized = []
  request = {spec.name: _stored(spec, query.features.get(spec.name))
             for spec in _request_specs(specs)}
  in_history = side_features.history_specs(specs)
  history_columns = [[side_features.example_value(spec, _stored(spec, b.features.get(spec.name)))
                      for b in query.history] for spec in in_history]
  for candidate in query.candidates:
    example = tf.train.Example()
    features = example.features.feature
    side_features.add_to_example(features, specs, [
        request[spec.name] if spec.name in request
        else _stored(spec, candidate.features.get(spec.name)) for spec in specs])
    side_features.add_history_to_example(features, in_history, history_columns)
    features[signatures.USER_ID].bytes_list.value.append(query.user_id.encode())
    features[signatures.ITEM_ID].bytes_list.value.append(candidate.item_id.encode())
    features[signatures.CATEGORY].bytes_list.value.append(candidate.category.encode())
    features[signatures.TIMESTAMP].int64_list.value.append(query.resolved_time())
    features[signatures.HIST_ITEM_IDS].bytes_list.value.extend(
        b.item_id.encode() for b in query.history)
    features[signatures.HIST_CATEGORIES].bytes_list.value.extend(
        b.category.encode() for b in query.history)
    features[signatures.HIST_TIMESTAMPS].int64_list.value.extend(
        b.timestamp for b in query.history)
    serialized.append(example.SerializeToString())
  return serialized


def predict_request(model_name: str, signature_name: str,
                    inputs: Dict[str, np.ndarray]) -> predict_pb2.PredictRequest:
  """A PredictRequest built the stock way (tf.make_tensor_proto)."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature_name
  for name, value in inputs.items():
    request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
  return request
