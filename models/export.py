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

Declared side features (EtaConfig.features) add to both:
  serving_default  the examples carry them as the ingest writes them (NAME,
                   NAME_missing, hist_NAME ...: the raw feature spec of the
                   curated schema lists them);
  score            after the built-in inputs, one input per feature
                   (signatures.score_feature_inputs): a user / context feature
                   once per request (shape []), an item feature per candidate
                   ([C], parallel to item_ids) and, in_history, hist_NAME ([N],
                   parallel to hist_item_ids). A missing number is NaN, a missing
                   categorical ""; a categorical_list is its values joined by its
                   separator. They are turned into the raw features the ingest
                   would have written (declared defaults included), then go
                   through the same Transform graph.
Without declared features both signatures are exactly what they were. With
them, the export also holds the declarations (signatures.FEATURES_FILE), so that
the built-in server can check their values by the ingest's rules.
"""

import tensorflow as tf
import tensorflow_transform as tft

from components import events, side_features
from eta_ctr.config import KERNEL_FUSED, KERNEL_STOCK, EtaConfig
from models import features, signatures
from models.architectures import side as side_lib
from models.architectures.base import CtrModel
from models.architectures.eta import EtaModel
from models.signatures import (CATEGORIES, DEFAULT_SIGNATURE, EXAMPLES, HIST_CATEGORIES,
                               HIST_ITEM_IDS, HIST_TIMESTAMPS, ITEM_IDS, PROBABILITIES,
                               REQUEST_TIME, RETRIEVED_DISTANCES, RETRIEVED_POSITIONS,
                               SCORE_SIGNATURE)


def _raw_features(raw_spec, values, batch_size):
  """Builds raw feature tensors of the shapes the raw feature spec declares.

  values: {name: [B] dense tensor for scalar features, or [B, N] (dense) or
  [B, None] (ragged) for lists}.
  """
  result = {}
  for name, value in values.items():
    spec = raw_spec.get(name)
    if spec is None:
      continue
    if isinstance(value, tf.RaggedTensor):  # a categorical list's values
      result[name] = (value.to_sparse() if isinstance(spec, tf.io.VarLenFeature) else value)
    elif isinstance(spec, tf.io.VarLenFeature):
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
    specs = model.side_features.specs
    self._feature_inputs = signatures.score_feature_inputs(specs)
    missing = set(signatures.example_features(specs)) - set(raw_spec)
    if missing:
      raise ValueError(f"the Transform's raw feature spec lacks the declared features' "
                       f"{sorted(missing)}: was Transform run with them?")
    if specs:
      # `score` with the declared features' inputs: one dict of named inputs (the
      # signature's inputs are the TensorSpec names). It shadows the method
      # below, which takes the built-in inputs only, so that saving never
      # traces that one.
      self.score = tf.function(self._score, input_signature=_score_signature(specs))

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
    return self._score(dict(zip(signatures.BUILT_IN_SCORE_INPUTS, (
        hist_item_ids, hist_categories, hist_timestamps, item_ids, categories,
        request_time))))

  def _score(self, inputs):
    """`score` on {input name: tensor} (signatures.score_inputs)."""
    hist_item_ids, item_ids = inputs[HIST_ITEM_IDS], inputs[ITEM_IDS]
    hist_categories, categories = inputs[HIST_CATEGORIES], inputs[CATEGORIES]
    hist_timestamps, request_time = inputs[HIST_TIMESTAMPS], inputs[REQUEST_TIME]
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
    for entry in self._feature_inputs:
      parallel = {signatures.PER_CANDIDATE: ITEM_IDS,
                  signatures.PER_HISTORY: HIST_ITEM_IDS}.get(entry.per)
      if parallel:
        checks.append(tf.debugging.assert_equal(
            tf.size(inputs[entry.name]), tf.size(inputs[parallel]),
            message=f"{entry.name} and {parallel} differ in length"))
    with tf.control_dependencies(checks):
      item_ids = tf.identity(item_ids)
    n_candidates = tf.shape(item_ids)[0]
    request, candidate_raw, history_raw = self._side_raw_features(inputs, n_candidates)
    # The history is transformed once, as one example at the request time.
    history = self.tft_layer(_raw_features(self._raw_spec, {
        events.ITEM_ID: item_ids[:1], events.CATEGORY: categories[:1],
        events.TIMESTAMP: tf.reshape(request_time, [1]),
        events.HIST_ITEM_IDS: hist_item_ids[None, :],
        events.HIST_CATEGORIES: hist_categories[None, :],
        events.HIST_TIMESTAMPS: hist_timestamps[None, :],
        **{name: value(1) for name, value in request.items()},
        **{name: value[:1] for name, value in candidate_raw.items()},
        **history_raw}, 1))
    candidates = self.tft_layer(_raw_features(self._raw_spec, {
        events.ITEM_ID: item_ids, events.CATEGORY: categories,
        events.TIMESTAMP: tf.fill([n_candidates], request_time),
        events.HIST_ITEM_IDS: tf.zeros([n_candidates, 0], tf.string),
        events.HIST_CATEGORIES: tf.zeros([n_candidates, 0], tf.string),
        events.HIST_TIMESTAMPS: tf.zeros([n_candidates, 0], tf.int64),
        **{name: value(n_candidates) for name, value in request.items()},
        **candidate_raw,
        **{name: tf.zeros([n_candidates, 0], value.dtype)
           for name, value in history_raw.items()}}, n_candidates))
    inputs = {name: history[name] for name in features.MODEL_INPUTS}
    inputs[features.ITEM] = candidates[features.ITEM][None, :]          # [1, C]
    inputs[features.CATEGORY] = candidates[features.CATEGORY][None, :]
    side = self.model.side_features
    for spec in side.request:
      inputs.update({name: history[name] for name in side_lib.tensor_names(spec)})
    for spec in side.history:
      for prefix in (side_lib.LONG_PREFIX, side_lib.SHORT_PREFIX):
        inputs.update({name: history[name] for name in side_lib.tensor_names(spec, prefix)})
    for spec in side.items:                                             # [1, C(, M)]
      inputs.update({name: candidates[name][None] for name in side_lib.tensor_names(spec)})
    if not self._is_eta:
      return {PROBABILITIES: tf.sigmoid(self.model.candidate_logits(inputs)[0])}
    # Retrieved once: the explanations below and the logits use the same result.
    retrieval = self.model.retrieve(inputs)
    outputs = {PROBABILITIES: tf.sigmoid(
        self.model.candidate_logits(inputs, retrieval=retrieval)[0])}
    indices, distances, valid = retrieval
    outputs[RETRIEVED_POSITIONS] = tf.where(valid[0], indices[0], -1)
    outputs[RETRIEVED_DISTANCES] = tf.where(valid[0], distances[0], -1)
    return outputs

  def _side_raw_features(self, inputs, n_candidates):
    """The declared features' `score` inputs -> the raw features the ingest writes:
    ({name: f(rows) -> [rows] or [rows, None]} of the user and context features,
    repeated per row; {name: [C] or [C, None]} of the candidates' item features;
    {hist_name: [1, N]} of the history's)."""
    request, candidate, history = {}, {}, {}
    for spec in self.model.side_features.specs:
      value = inputs[spec.name]
      if spec.entity != side_features.ITEM:
        for name, column in _raw_columns(spec, value[None]).items():
          request[name] = (lambda rows, column=column:
                           _repeat_row(column, rows))
      else:
        candidate.update(_raw_columns(spec, value))
      if spec.in_history:
        hist = _raw_columns(spec, inputs[side_features.HISTORY_PREFIX + spec.name])
        history.update({side_features.HISTORY_PREFIX + name: column[None, :]
                        for name, column in hist.items()})
    return request, candidate, history


def _repeat_row(column, rows):
  """A [1] / [1, None] column repeated to [rows] / [rows, None]."""
  if isinstance(column, tf.RaggedTensor):
    return tf.RaggedTensor.from_row_lengths(
        tf.tile(column.flat_values, [rows]),
        tf.fill([rows], tf.cast(column.row_lengths()[0], tf.int64)))
  return tf.repeat(column, rows, axis=0)


def _raw_columns(spec, values):
  """[n] `score` values of one feature -> {raw feature: [n] or ragged [n, None]} as
  the ingest writes them (components/side_features.py example_value): stripped
  text, "" / NaN / no value -> the declared default; a numeric's NAME_missing."""
  if spec.kind == side_features.NUMERIC:
    missing = tf.math.is_nan(values)
    default, _ = side_features.example_value(spec, side_features.missing_value(spec))
    return {spec.name: tf.where(missing, tf.constant(default, tf.float32), values),
            spec.name + side_features.MISSING_SUFFIX: tf.cast(missing, tf.int64)}
  values = tf.strings.strip(values)
  if spec.kind == side_features.CATEGORICAL:
    default = side_features.example_value(spec, "")
    if default:
      values = tf.where(tf.equal(values, ""), tf.constant(default), values)
    return {spec.name: values}

  def split(cells):
    parts = tf.strings.strip(tf.strings.split(cells, spec.separator))
    return tf.ragged.boolean_mask(parts, tf.strings.length(parts) > 0)

  parts = split(values)
  default = side_features.example_value(spec, ())
  if default:
    joined = spec.separator.join(value.decode("utf-8") for value in default)
    parts = split(tf.where(parts.row_lengths() > 0, values, tf.constant(joined)))
  return {spec.name: parts}


def _score_signature(specs):
  """The `score` input_signature with the declared features: one dict of
  TensorSpecs named as signatures.score_inputs."""
  return [{name: tf.TensorSpec(shape, tf.as_dtype(dtype), name=name)
           for name, (dtype, shape) in signatures.score_input_specs(specs).items()}]


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
  signatures.write_features(export_dir, model.side_features.specs)
  return export_dir

