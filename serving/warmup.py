"""Warm-up: one request through each signature before a version takes traffic.

The first call of a loaded signature is slow (hundreds of ms, function set-up);
paying it before the switch keeps the switch invisible to clients, and a version
that cannot answer its own contract's request is never switched to.

Requests come from the SavedModel's assets.extra/tf_serving_warmup_requests
(TF Serving's convention: TFRecords of PredictionLog) when it has one, else they
are synthesized from the signature's input specs. Failures of the `score`
contract's request or of a recorded one fail the load; a synthesized request
for a signature whose contract is unknown may legitimately be refused by the
model, so that is only logged.
"""

import logging
import os
from typing import Any, Dict, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from components import side_features
from models import signatures
from serving import tensors, validation
from serving.servable import Servable

log = logging.getLogger(__name__)

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
MAX_RECORDED_REQUESTS = 100

_SCORE_INPUTS = frozenset(signatures.HISTORY_INPUTS + signatures.CANDIDATE_INPUTS +
                          (signatures.REQUEST_TIME,))


class WarmupRequest(NamedTuple):
  signature: str
  inputs: Dict[str, np.ndarray]
  must_succeed: bool


def _strings(*values) -> np.ndarray:
  array = np.empty(len(values), dtype=object)
  array[:] = [v.encode() for v in values]
  return array


def warmup_example(features: Sequence[Any] = ()) -> bytes:
  """A tf.Example with the ingest's raw features: one behaviour, one candidate;
  the declared side features (FeatureSpecs) missing, as the ingest writes them."""
  example = tf.train.Example()
  feature_map = example.features.feature
  for name, value in ((signatures.USER_ID, b"warmup"), (signatures.ITEM_ID, b"warmup"),
                      (signatures.CATEGORY, b"warmup")):
    feature_map[name].bytes_list.value.append(value)
  feature_map[signatures.TIMESTAMP].int64_list.value.append(2)
  feature_map[signatures.HIST_ITEM_IDS].bytes_list.value.append(b"warmup")
  feature_map[signatures.HIST_CATEGORIES].bytes_list.value.append(b"warmup")
  feature_map[signatures.HIST_TIMESTAMPS].int64_list.value.append(1)
  side_features.add_to_example(feature_map, features,
                               [side_features.missing_value(spec) for spec in features])
  in_history = side_features.history_specs(features)
  side_features.add_history_to_example(feature_map, in_history, [
      [side_features.example_value(spec, side_features.missing_value(spec))]
      for spec in in_history])
  return example.SerializeToString()


def _missing(spec: tf.TensorSpec) -> np.ndarray:
  """A side feature's `score` input with every value missing ("" or NaN), one per
  behaviour / candidate of the warm-up request."""
  shape = [1] * spec.shape.rank
  if spec.dtype == tf.string:
    return np.full(shape, b"", dtype=object)
  return np.full(shape, signatures.MISSING_NUMBER, spec.dtype.as_numpy_dtype)


def synthesize(specs: Mapping[str, tf.TensorSpec], features: Sequence[Any] = ()) -> WarmupRequest:
  """A small valid-looking request for these input specs (signature name left
  empty); features: the export's declared side features."""
  if _SCORE_INPUTS <= set(specs):
    inputs = {signatures.HIST_ITEM_IDS: _strings("warmup"),
              signatures.HIST_CATEGORIES: _strings("warmup"),
              signatures.HIST_TIMESTAMPS: np.array([1], np.int64),
              signatures.ITEM_IDS: _strings("warmup"), signatures.CATEGORIES: _strings("warmup"),
              signatures.REQUEST_TIME: np.array(2, np.int64)}
    # The side features' inputs (signatures.score_feature_inputs), all missing.
    inputs.update({name: _missing(spec) for name, spec in specs.items() if name not in inputs})
    return WarmupRequest("", inputs, True)
  inputs = {}
  for name, spec in specs.items():
    shape = [1 if dim is None else dim for dim in spec.shape.as_list()]
    if spec.dtype == tf.string:
      fill = warmup_example(features) if name == signatures.EXAMPLES else b""
      value = np.empty(shape, dtype=object)
      value.fill(fill)
    else:
      value = np.zeros(shape, spec.dtype.as_numpy_dtype)
    inputs[name] = value
  return WarmupRequest("", inputs, False)


def recorded_requests(path: str) -> Iterator[WarmupRequest]:
  """Predict requests from the SavedModel's TF Serving warm-up file, if any."""
  warmup_path = os.path.join(path, WARMUP_FILE)
  if not tf.io.gfile.exists(warmup_path):
    return
  for count, record in enumerate(tf.data.TFRecordDataset(warmup_path)):
    if count >= MAX_RECORDED_REQUESTS:
      return
    entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    if entry.WhichOneof("log_type") != "predict_log":
      continue
    request = entry.predict_log.request
    inputs = {name: tensors.to_ndarray(name, proto) for name, proto in request.inputs.items()}
    yield WarmupRequest(request.model_spec.signature_name or signatures.DEFAULT_SIGNATURE,
                        inputs, True)


def warm(servable: Servable):
  """Runs the warm-up requests; raises if one that must succeed fails."""
  if any(signatures.EXAMPLES in specs for specs in servable.input_specs.values()):
    validation.warm_up(servable.features)  # the request checks' own TF function, traced once
  requests = list(recorded_requests(servable.path))
  if not requests:
    requests = [synthesize(specs, servable.features)._replace(signature=name)
                for name, specs in servable.input_specs.items()]
  for request in requests:
    try:
      servable.run(request.signature, request.inputs)
    except Exception as error:  # the model's own error, whatever its type
      if request.must_succeed:
        raise RuntimeError(f"warm-up request to signature '{request.signature}' failed: "
                           f"{type(error).__name__}: {error}") from error
      log.info("version %d: synthesized warm-up of '%s' was refused (%s); serving anyway",
               servable.version, request.signature, type(error).__name__)
