"""Test support: a tiny SavedModel with the ETA signatures, sample requests
(good and bad), a server on free loopback ports and a REST call helper.

The toy model's probabilities = sigmoid(bias + item term + 0.1 * history
length), the same in `serving_default` (per tf.Example) and `score` (per
candidate); `score` also returns the first k history positions as "retrieved"
(-1 past the history) with distances position % 3. No pipeline run is needed.

With side features (export_toy_model(features=TOY_FEATURES)) both signatures take
them as the real export does (signatures.score_input_specs; the ingest's raw
features in the tf.Examples) and the logit adds a term per feature: a categorical
value's hash bucket (a missing one: its declared default, else ""), a number
(missing: its default, else 0), a list's value count, a history's sum; the
export carries the declarations (signatures.FEATURES_FILE), as the real one does.
"""

import http.client
import json
import queue
import subprocess  # noqa: F401  (output_lines' type)
import threading
import urllib.parse
from typing import List, Tuple

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from components import side_features
from eta_ctr.config import FeatureSpec
from models import signatures
from serving import requests
from serving.server import ModelServer, ServerConfig

_STRING = tf.io.FixedLenFeature([], tf.string)
_RAW_SPEC = {
    signatures.ITEM_ID: _STRING, signatures.CATEGORY: _STRING,
    signatures.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
    signatures.HIST_ITEM_IDS: tf.io.VarLenFeature(tf.string),
    signatures.HIST_CATEGORIES: tf.io.VarLenFeature(tf.string),
    signatures.HIST_TIMESTAMPS: tf.io.VarLenFeature(tf.int64),
}


class _ToyModel(tf.Module):

  def __init__(self, bias: float, top_k: int):
    super().__init__()
    self.bias = tf.Variable(bias, dtype=tf.float32)
    self.top_k = top_k

  def _logits(self, items, history_length):
    buckets = tf.strings.to_hash_bucket_fast(items, 97)
    item_term = tf.cast(buckets, tf.float32) / 97.0 - 0.5
    return self.bias + item_term + 0.1 * tf.cast(history_length, tf.float32)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
  def serve_examples(self, examples):
    raw = tf.io.parse_example(examples, _RAW_SPEC)
    batch = tf.shape(examples)[0]
    rows = tf.cast(raw[signatures.HIST_ITEM_IDS].indices[:, 0], tf.int32)
    lengths = tf.math.bincount(rows, minlength=batch, maxlength=batch)
    return {signatures.PROBABILITIES: tf.sigmoid(self._logits(raw[signatures.ITEM_ID], lengths))}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=signatures.HIST_ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=signatures.HIST_CATEGORIES),
      tf.TensorSpec([None], tf.int64, name=signatures.HIST_TIMESTAMPS),
      tf.TensorSpec([None], tf.string, name=signatures.ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=signatures.CATEGORIES),
      tf.TensorSpec([], tf.int64, name=signatures.REQUEST_TIME),
  ])
  def score(self, hist_item_ids, hist_categories, hist_timestamps, item_ids, categories,
            request_time):
    del hist_categories, hist_timestamps, categories, request_time
    return self._scored(hist_item_ids, item_ids)

  def _scored(self, hist_item_ids, item_ids, extra_logits=0.0):
    count = tf.shape(item_ids)[0]
    length = tf.shape(hist_item_ids)[0]
    positions = tf.tile(tf.range(self.top_k)[None, :], [count, 1])
    valid = positions < length
    logits = self._logits(item_ids, tf.fill([count], length)) + extra_logits
    return {
        signatures.PROBABILITIES: tf.sigmoid(logits),
        signatures.RETRIEVED_POSITIONS: tf.where(valid, positions, -1),
        signatures.RETRIEVED_DISTANCES: tf.where(valid, positions % 3, -1),
    }


# One feature of each entity and kind (a user and a context categorical, an item
# numeric with its history values, an item categorical list).
TOY_FEATURES = (FeatureSpec("segment", "user", "categorical"),
                FeatureSpec("device", "context", "categorical", default="web"),
                FeatureSpec("price", "item", "numeric", in_history=True),
                FeatureSpec("genres", "item", "categorical_list"))
_RAW_DTYPES = {"bytes": tf.string, "float": tf.float32, "int64": tf.int64}


def _hash_term(values):
  return tf.cast(tf.strings.to_hash_bucket_fast(values, 97), tf.float32) / 97.0


class _ToyFeatureModel(_ToyModel):
  """The toy model with side features in both signatures."""

  def __init__(self, bias: float, top_k: int, features):
    super().__init__(bias, top_k)
    self.features = tuple(features)
    self.raw_spec = dict(_RAW_SPEC)
    for name, (dtype, shape) in side_features.all_raw_features(features).items():
      self.raw_spec[name] = (tf.io.FixedLenFeature([], _RAW_DTYPES[dtype]) if shape == "scalar"
                             else tf.io.VarLenFeature(_RAW_DTYPES[dtype]))
    self.serve_examples = tf.function(self._serve_examples, input_signature=[
        tf.TensorSpec([None], tf.string, name=signatures.EXAMPLES)])
    self.score = tf.function(self._score, input_signature=[{
        name: tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
        for name, (dtype, shape) in signatures.score_input_specs(features).items()}])

  def _feature_terms(self, values, hist_sums):
    """values: {feature: [B] value (list: [B] count)}; hist_sums: {feature: [B]}."""
    total = 0.0
    for spec in self.features:
      value = values[spec.name]
      if spec.kind == side_features.CATEGORICAL:
        total += 0.5 * _hash_term(value)
      else:
        total += 0.05 * tf.cast(value, tf.float32)
      if spec.in_history:
        total += 0.01 * hist_sums[spec.name]
    return total

  def _serve_examples(self, examples):
    raw = tf.io.parse_example(examples, self.raw_spec)
    batch = tf.shape(examples)[0]
    rows = tf.cast(raw[signatures.HIST_ITEM_IDS].indices[:, 0], tf.int32)
    lengths = tf.math.bincount(rows, minlength=batch, maxlength=batch)
    values, hist_sums = {}, {}
    for spec in self.features:
      value = raw[spec.name]
      if spec.kind == side_features.CATEGORICAL_LIST:
        value = tf.math.bincount(tf.cast(value.indices[:, 0], tf.int32), minlength=batch,
                                 maxlength=batch)
      values[spec.name] = value
      if spec.in_history:
        history = raw[side_features.HISTORY_PREFIX + spec.name]
        hist_sums[spec.name] = tf.math.unsorted_segment_sum(
            history.values, tf.cast(history.indices[:, 0], tf.int32), batch)
    logits = self._logits(raw[signatures.ITEM_ID], lengths) + self._feature_terms(
        values, hist_sums)
    return {signatures.PROBABILITIES: tf.sigmoid(logits)}

  def _score(self, inputs):
    count = tf.shape(inputs[signatures.ITEM_IDS])[0]
    values, hist_sums = {}, {}
    for spec in self.features:
      value = inputs[spec.name]
      if spec.kind == side_features.NUMERIC:
        default = 0.0 if spec.default is None else float(spec.default)
        value = tf.where(tf.math.is_nan(value), default, value)
      elif spec.kind == side_features.CATEGORICAL:
        value = tf.strings.strip(value)
        if spec.default is not None:
          value = tf.where(tf.equal(value, ""), spec.default, value)
      else:
        parts = tf.strings.strip(tf.strings.split(value, spec.separator))
        value = tf.reduce_sum(tf.cast(tf.strings.length(parts) > 0, tf.int32), axis=-1)
      values[spec.name] = tf.broadcast_to(value, [count])
      if spec.in_history:
        history = inputs[side_features.HISTORY_PREFIX + spec.name]
        hist_sums[spec.name] = tf.fill(
            [count], tf.reduce_sum(tf.where(tf.math.is_nan(history), 0.0, history)))
    return self._scored(inputs[signatures.HIST_ITEM_IDS], inputs[signatures.ITEM_IDS],
                        self._feature_terms(values, hist_sums))


def export_toy_model(path: str, bias: float = 0.0, top_k: int = 4,
                     features=()) -> str:
  """Writes the toy SavedModel to path (a version directory) and returns path;
  features: the declared side features (e.g. TOY_FEATURES) both signatures take."""
  module = _ToyFeatureModel(bias, top_k, features) if features else _ToyModel(bias, top_k)
  tf.saved_model.save(module, path, signatures={
      signatures.DEFAULT_SIGNATURE: module.serve_examples.get_concrete_function(),
      signatures.SCORE_SIGNATURE: module.score.get_concrete_function(),
  })
  signatures.write_features(path, features)
  return path


# --- requests ------------------------------------------------------------------

QUERY = requests.ScoreQuery(
    history=[requests.Behaviour("h1", "c1", 90), requests.Behaviour("h2", "c2", 80)],
    candidates=[requests.Candidate("i1", "c1"), requests.Candidate("new-item", "c9")],
    request_time=100)


def strings(*values: str) -> np.ndarray:
  array = np.empty(len(values), dtype=object)
  array[:] = [v.encode() for v in values]
  return array


def score_request(query: requests.ScoreQuery = QUERY, **overrides) -> predict_pb2.PredictRequest:
  inputs = requests.score_inputs(query)
  inputs.update(overrides)
  return requests.predict_request("eta", signatures.SCORE_SIGNATURE, inputs)


def examples_request(query: requests.ScoreQuery = QUERY) -> predict_pb2.PredictRequest:
  examples = np.array(requests.examples_for_query(query), dtype=object)
  return requests.predict_request("eta", "", {signatures.EXAMPLES: examples})


def outputs(response) -> dict:
  return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _with_spec(request, **changes):
  copy = type(request)()
  copy.CopyFrom(request)
  for field, value in changes.items():
    if field == "version":
      copy.model_spec.version.value = value
    else:
      setattr(copy.model_spec, field, value)
  return copy


def bad_requests(query: requests.ScoreQuery = QUERY
                 ) -> List[Tuple[str, predict_pb2.PredictRequest, grpc.StatusCode, str]]:
  """Every malformed-request class: (what, request, expected code, words in the message)."""
  not_found, invalid = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
  good = score_request(query)
  extra = score_request(query)
  extra.inputs["user_id"].CopyFrom(tf.make_tensor_proto(strings("u")))
  missing = score_request(query)
  del missing.inputs[signatures.CATEGORIES]
  garbage_tensor = score_request(query)
  garbage_tensor.inputs[signatures.HIST_TIMESTAMPS].tensor_content = b"\x01\x02\x03"
  bad_example = requests.predict_request("eta", "", {signatures.EXAMPLES: strings("\x00garbage")})
  no_history = dict(hist_item_ids=strings(), hist_categories=strings(),
                    hist_timestamps=np.array([], np.int64))
  return [
      ("unknown model", _with_spec(good, name="other"), not_found, "model 'other'"),
      ("unknown version", _with_spec(good, version=7), not_found, "version 7"),
      ("version label", _with_spec(good, version_label="stable"), not_found, "label"),
      ("unknown signature", _with_spec(good, signature_name="nope"), not_found,
       "signature 'nope'"),
      ("missing input", missing, invalid, "missing inputs ['categories']"),
      ("extra input", extra, invalid, "unexpected inputs ['user_id']"),
      ("wrong dtype", score_request(query, request_time=np.array(100, np.int32)), invalid,
       "int64"),
      ("wrong rank", score_request(query, request_time=np.array([100], np.int64)), invalid,
       "rank 0"),
      ("empty history", score_request(query, **no_history), invalid, "history is empty"),
      ("no candidates", score_request(query, item_ids=strings(), categories=strings()),
       invalid, "no candidates"),
      ("inconsistent history", score_request(query, hist_categories=strings("c1")), invalid,
       "same length"),
      ("garbage tensor", garbage_tensor, invalid, "not a decodable TensorProto"),
      ("unparseable tf.Example", bad_example, invalid, "not a serialized tf.Example"),
  ]


# --- servers -------------------------------------------------------------------

def output_lines(process: "subprocess.Popen") -> "queue.Queue":
  """A text-mode process's output lines on a queue (None at the end), read by a
  thread so that the pipe never fills up while a test waits for something else."""
  lines = queue.Queue()

  def pump():
    for line in process.stdout:
      lines.put(line)
    lines.put(None)

  threading.Thread(target=pump, daemon=True).start()
  return lines


def start_server(model_dir: str, wait_seconds: float = 60, **overrides) -> ModelServer:
  """A server on free loopback ports (REST too), polling fast, with a version loaded."""
  config = ServerConfig(model_dir, grpc_port=0, rest_port=0, poll_seconds=0.2,
                        grace_seconds=2.0, **overrides)
  server = ModelServer(config).start(wait_seconds=wait_seconds)
  if server.manager.current_version is None:
    server.stop()
    raise RuntimeError(f"no version of the model under {model_dir} loaded")
  return server


def rest_call(server: ModelServer, method: str, path: str, body=None):
  """(HTTP status, parsed JSON) of one REST request; body is JSON-encoded unless bytes."""
  url = urllib.parse.urlparse(server.rest_url)
  connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
  try:
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    connection.request(method, path, body=data)
    response = connection.getresponse()
    return response.status, json.loads(response.read())
  finally:
    connection.close()
