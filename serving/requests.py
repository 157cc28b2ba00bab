"""Client side: what `eta predict` reads -> the tensors of a PredictRequest.

A history file is JSON, one of:

  {"history": [{"item_id": "i1", "category": "c1", "timestamp": 1600000000}, ...],
   "candidates": [{"item_id": "i9", "category": "c2"} | "i9:c2", ...],
   "request_time": 1600000100, "user_id": "u1"}          (all but history optional)

  {"hist_item_ids": [...], "hist_categories": [...], "hist_timestamps": [...],
   "item_ids": [...], "categories": [...], "request_time": T}   (the score inputs)

The history is sorted most recent first (the model's contract) whatever the
file's order. An example file is TFRecords of tf.Example (gzipped if it ends in
.gz, as the ingest writes them) or JSONL, one object of features per line.
"""

import dataclasses
import json
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow_serving.apis import predict_pb2

from models import signatures

DEFAULT_CATEGORY = "unknown"  # the ingest's category for an event without one
_INT_FEATURES = (signatures.TIMESTAMP, signatures.HIST_TIMESTAMPS, "label", "hist_labels")
_BYTES_FEATURES = (signatures.USER_ID, signatures.ITEM_ID, signatures.CATEGORY,
                   signatures.HIST_ITEM_IDS, signatures.HIST_CATEGORIES)


@dataclasses.dataclass(frozen=True)
class Behaviour:
  item_id: str
  category: str
  timestamp: int


@dataclasses.dataclass(frozen=True)
class Candidate:
  item_id: str
  category: str


@dataclasses.dataclass
class ScoreQuery:
  """One user's history (most recent first), candidates and the time of asking."""
  history: List[Behaviour]
  candidates: List[Candidate]
  request_time: Optional[int] = None
  user_id: str = "eta-predict"

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


def _candidate(value, where: str) -> Candidate:
  if isinstance(value, str):
    return parse_candidates(value)[0]
  if isinstance(value, dict) and "item_id" in value:
    return Candidate(str(value["item_id"]), str(value.get("category", DEFAULT_CATEGORY)))
  raise ValueError(f"{where} must be 'item:category' or {{\"item_id\", \"category\"}}")


def _sorted_history(history: Sequence[Behaviour]) -> List[Behaviour]:
  return sorted(history, key=lambda b: b.timestamp, reverse=True)


def query_from_json(data: Dict[str, Any]) -> ScoreQuery:
  """Either JSON form above -> ScoreQuery."""
  if not isinstance(data, dict):
    raise ValueError("the history file must hold a JSON object")
  if signatures.HIST_ITEM_IDS in data:
    items = data[signatures.HIST_ITEM_IDS]
    categories = data.get(signatures.HIST_CATEGORIES, [DEFAULT_CATEGORY] * len(items))
    times = data.get(signatures.HIST_TIMESTAMPS)
    if times is None or not len(items) == len(categories) == len(times):
      raise ValueError("hist_item_ids, hist_categories and hist_timestamps must be lists "
                       "of the same length")
    history = [Behaviour(str(i), str(c), int(t)) for i, c, t in zip(items, categories, times)]
    cand_items = data.get(signatures.ITEM_IDS, [])
    cand_categories = data.get(signatures.CATEGORIES, [DEFAULT_CATEGORY] * len(cand_items))
    if len(cand_items) != len(cand_categories):
      raise ValueError("item_ids and categories must have the same length")
    candidates = [Candidate(str(i), str(c)) for i, c in zip(cand_items, cand_categories)]
  elif "history" in data:
    history = []
    for index, entry in enumerate(data["history"]):
      if not isinstance(entry, dict) or "item_id" not in entry or "timestamp" not in entry:
        raise ValueError(f"history[{index}] needs item_id and timestamp")
      history.append(Behaviour(str(entry["item_id"]),
                               str(entry.get("category", DEFAULT_CATEGORY)),
                               int(entry["timestamp"])))
    candidates = [_candidate(c, f"candidates[{i}]")
                  for i, c in enumerate(data.get("candidates", []))]
  else:
    raise ValueError("the history file needs 'history' (a list of behaviours) or "
                     "'hist_item_ids' / 'hist_categories' / 'hist_timestamps'")
  request_time = data.get(signatures.REQUEST_TIME)
  return ScoreQuery(_sorted_history(history), candidates,
                    None if request_time is None else int(request_time),
                    str(data.get(signatures.USER_ID, "eta-predict")))


def load_history_file(path: str) -> ScoreQuery:
  with tf.io.gfile.GFile(path, "r") as handle:
    try:
      data = json.load(handle)
    except ValueError as error:
      raise ValueError(f"{path} is not JSON ({error})") from None
  return query_from_json(data)


def example_from_json(data: Dict[str, Any]) -> tf.train.Example:
  """{feature: value or list} -> tf.Example. The ingest's features get their
  types (ids bytes, times int64); others are int64, float or bytes by value."""
  example = tf.train.Example()
  for name, value in data.items():
    values = value if isinstance(value, list) else [value]
    feature = example.features.feature[name]
    numbers = values and all(isinstance(v, (int, float)) for v in values)
    if name in _INT_FEATURES or (name not in _BYTES_FEATURES and numbers and
                                 all(isinstance(v, int) for v in values)):
      feature.int64_list.value.extend(int(v) for v in values)
    elif name not in _BYTES_FEATURES and numbers:
      feature.float_list.value.extend(float(v) for v in values)
    else:
      feature.bytes_list.value.extend(str(v).encode("utf-8") for v in values)
  return example


def read_examples(path: str, limit: int) -> List[tf.train.Example]:
  """Up to `limit` tf.Examples from TFRecords (.gz: gzipped) or JSONL."""
  examples = []
  if path.endswith((".jsonl", ".json")):
    with tf.io.gfile.GFile(path, "r") as handle:
      for number, line in enumerate(handle, 1):
        if len(examples) >= limit:
          break
        if line.strip():
          try:
            examples.append(example_from_json(json.loads(line)))
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


def candidate_of(example: tf.train.Example) -> Candidate:
  return Candidate(next(iter(_bytes(example, signatures.ITEM_ID)), "?"),
                   next(iter(_bytes(example, signatures.CATEGORY, DEFAULT_CATEGORY))))


def query_from_examples(examples: Sequence[tf.train.Example]) -> ScoreQuery:
  """The first example's user history and time; every example's item as a candidate."""
  if not examples:
    raise ValueError("the example file holds no examples")
  first = examples[0]
  items = _bytes(first, signatures.HIST_ITEM_IDS)
  categories = _bytes(first, signatures.HIST_CATEGORIES) or [DEFAULT_CATEGORY] * len(items)
  times = _ints(first, signatures.HIST_TIMESTAMPS)
  history = [Behaviour(i, c, t) for i, c, t in zip(items, categories, times)]
  request_time = next(iter(_ints(first, signatures.TIMESTAMP)), None)
  user = next(iter(_bytes(first, signatures.USER_ID)), "eta-predict")
  return ScoreQuery(_sorted_history(history), [candidate_of(e) for e in examples],
                    request_time, user)


def _string_array(values: Sequence[str]) -> np.ndarray:
  array = np.empty(len(values), dtype=object)
  array[:] = [v.encode("utf-8") for v in values]
  return array


def score_inputs(query: ScoreQuery) -> Dict[str, np.ndarray]:
  """The `score` signature's inputs for a query."""
  return {
      signatures.HIST_ITEM_IDS: _string_array([b.item_id for b in query.history]),
      signatures.HIST_CATEGORIES: _string_array([b.category for b in query.history]),
      signatures.HIST_TIMESTAMPS: np.array([b.timestamp for b in query.history], np.int64),
      signatures.ITEM_IDS: _string_array([c.item_id for c in query.candidates]),
      signatures.CATEGORIES: _string_array([c.category for c in query.candidates]),
      signatures.REQUEST_TIME: np.array(query.resolved_time(), np.int64),
  }


def examples_for_query(query: ScoreQuery) -> List[bytes]:
  """One serialized raw tf.Example per candidate, each carrying the history."""
  serialized = []
  for candidate in query.candidates:
    example = tf.train.Example()
    features = example.features.feature
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
