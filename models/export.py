"""The exported SavedModel: the Transform graph and the model behind two signatures.

  serving_default(examples)  serialized raw tf.Examples -> probabilities [B]
                             (the TFX pattern: TFMA and batch scoring use it)
  score(hist_item_ids, hist_categories, hist_timestamps, item_ids, categories,
        request_time)        one user's raw history and C raw candidates ->
                             probabilities [C]; for ETA also the history positions
                             each candidate retrieved [C, k] (-1 = none) and their
                             Hamming distances, so a client can see why.

Both apply the same Transform graph and the same model, so they agree. For ETA,
every vocabulary item's SimHash code (or, hashing item ++ category, its
partial projection) is computed once at export and looked up.
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import events
from eta_ctr.config import KERNEL_FUSED, KERNEL_STOCK, EtaConfig
from models import features
from models.architectures.base import CtrModel
from models.architectures.eta import EtaModel
from models.signatures import (CATEGORIES, DEFAULT_SIGNATURE, EXAMPLES, HIST_CATEGORIES,
                               HIST_ITEM_IDS, HIST_TIMESTAMPS, ITEM_IDS, PROBABILITIES,
                               REQUEST_TIME, RETRIEVED_DISTANCES, RETRIEVED_POSITIONS,
                               SCORE_SIGNATURE)


def _raw_features(raw_spec, values, batch_size):
  """Builds raw feature tensors of the shapes the raw feature spec declares.

  values: {name: [B] dense tensor for scalar features, or [B, N] for lists}.
  """
  result = {}
  for name, value in values.items():
    spec = raw_spec.get(name)
    if spec is None:
      continue
    if isinstance(spec, tf.io.VarLenFeature):
      result[name] = _dense_to_sparse_keep_all(value)
    elif isinstance(spec, tf.io.RaggedFeature):
      result[name] = tf.RaggedTensor.from_tensor(value)
    else:
      # tf.int32 explicitly: a scalar feature's shape [] would otherwise become float32.
      shape = tf.constant(list(spec.shape), tf.int32, shape=[len(spec.shape)])
      result[name] = tf.reshape(value, tf.concat([[batch_size], shape], 0))
  return result


def _dense_to_sparse_keep_all(value):
  """[B, N] -> SparseTensor holding every entry (from_dense would drop '' and 0)."""
  shape = tf.shape(value, out_type=tf.int64)
  indices = tf.where(tf.ones_like(value, tf.bool))
  return tf.SparseTensor(indices, tf.reshape(value, [-1]), shape)


class ServingModule(tf.Module):
  """Holds the Transform layer and the model; its tf.functions are the signatures."""

  def __init__(self, model: CtrModel, tf_transform_output: tft.TFTransformOutput,
               config: EtaConfig):
    super().__init__()
    self.model = model
    # Assigning the layer to an attribute tracks its resources (vocabularies).
    self.tft_layer = tf_transform_output.transform_features_layer()
    raw_spec = tf_transform_output.raw_feature_spec()
    raw_spec.pop(events.LABEL, None)
    self._raw_spec = raw_spec
    self._is_eta = isinstance(model, EtaModel)
    self._top_k = config.model.top_k

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)])
  def serve_examples(self, examples):
    raw = tf.io.parse_example(examples, self._raw_spec)
    transformed = self.tft_layer(raw)
    return {PROBABILITIES: tf.sigmoid(self.model(transformed))}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=HIST_ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=HIST_CATEGORIES),
      tf.TensorSpec([None], tf.int64, name=HIST_TIMESTAMPS),
      tf.TensorSpec([None], tf.string, name=ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=CATEGORIES),
      tf.TensorSpec([], tf.int64, name=REQUEST_TIME),
  ])
  def score(self, hist_item_ids, hist_categories, hist_timestamps, item_ids, categories,
            request_time):
    # Malformed requests fail with InvalidArgument instead of reaching kernels
    # with inconsistent shapes (zero candidates would otherwise crash the process).
    checks = [
        tf.debugging.assert_positive(tf.size(item_ids), message="no candidates"),
        tf.debugging.assert_equal(tf.size(item_ids), tf.size(categories),
                                  message="item_ids and categories differ in length"),
        tf.debugging.assert_equal(tf.size(hist_item_ids), tf.size(hist_categories),
                                  message="hist_item_ids and hist_categories differ in length"),
        tf.debugging.assert_equal(tf.size(hist_item_ids), tf.size(hist_timestamps),
                                  message="hist_item_ids and hist_timestamps differ in length"),
    ]
    with tf.control_dependencies(checks):
      item_ids = tf.identity(item_ids)
    n_candidates = tf.shape(item_ids)[0]
    # The history is transformed once, as one example at the request time.
    history = self.tft_layer(_raw_features(self._raw_spec, {
        events.ITEM_ID: item_ids[:1], events.CATEGORY: categories[:1],
        events.TIMESTAMP: tf.reshape(request_time, [1]),
        events.HIST_ITEM_IDS: hist_item_ids[None, :],
        events.HIST_CATEGORIES: hist_categories[None, :],
        events.HIST_TIMESTAMPS: hist_timestamps[None, :]}, 1))
    candidates = self.tft_layer(_raw_features(self._raw_spec, {
        events.ITEM_ID: item_ids, events.CATEGORY: categories,
        events.TIMESTAMP: tf.fill([n_candidates], request_time),
        events.HIST_ITEM_IDS: tf.zeros([n_candidates, 0], tf.string),
        events.HIST_CATEGORIES: tf.zeros([n_candidates, 0], tf.string),
        events.HIST_TIMESTAMPS: tf.zeros([n_candidates, 0], tf.int64)}, n_candidates))
    inputs = {name: history[name] for name in features.MODEL_INPUTS}
    inputs[features.ITEM] = candidates[features.ITEM][None, :]          # [1, C]
    inputs[features.CATEGORY] = candidates[features.CATEGORY][None, :]
    outputs = {PROBABILITIES: tf.sigmoid(self.model.candidate_logits(inputs)[0])}
    if self._is_eta:
      indices, distances, valid = self.model.retrieve(inputs)
      outputs[RETRIEVED_POSITIONS] = tf.where(valid[0], indices[0], -1)
      outputs[RETRIEVED_DISTANCES] = tf.where(valid[0], distances[0], -1)
    return outputs


def export_serving_model(model: CtrModel, tf_transform_output: tft.TFTransformOutput,
                         config: EtaConfig, export_dir: str) -> str:
  """Writes the SavedModel with `serving_default` and `score` to export_dir."""
  is_eta = isinstance(model, EtaModel)
  if is_eta and not model.frozen:
    model.freeze_item_codes()
  module = ServingModule(model, tf_transform_output, config)
  # Stock ops unless the fused op is asked for: stock TF Serving cannot load it.
  kernel = model.top_k.kernel if is_eta else None
  if is_eta and config.model.retrieval_kernel != KERNEL_FUSED:
    model.top_k.kernel = KERNEL_STOCK
  try:
    tf.saved_model.save(module, export_dir, signatures={
        DEFAULT_SIGNATURE: module.serve_examples.get_concrete_function(),
        SCORE_SIGNATURE: module.score.get_concrete_function(),
    })
  finally:
    if is_eta:
      model.top_k.kernel = kernel
  return export_dir
