"""tf.Transform `preprocessing_fn`: vocabularies, long/short sequences and time gaps.

One vocabulary covers the candidate item and the history items, so both live in
one index space (likewise for categories). Index 0 is padding: vocabulary
indices are shifted by one, OOV buckets follow the vocabulary.

Declared side features (EtaConfig.features) add the tensors
components.side_features.transformed_features lists: categoricals get a
vocabulary of the train split capped at vocab_size (missing values, "", are
left out of it and land in an OOV bucket), shared by an item feature's candidate
and history values; numerics are z-scored with the mean and standard deviation
of train's non-missing values (as tft.scale_to_z_score, but a missing value,
stored as 0 with NAME_missing = 1, neither shifts the statistics nor becomes an
outlier: it is 0, the mean, unless the feature declares a default) and keep
their missing indicator.
"""

import dataclasses
import json
from typing import Any, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from components import events, side_features
from eta_ctr.config import EtaConfig, ModelConfig, features_from_dicts
from models import features
from models.buckets import log2_bucket

# Transform needs a module-level function; the settings come from this config,
# which the pipeline replaces through `make_preprocessing_fn` or `custom_config`.
_DEFAULT_CONFIG = EtaConfig.for_movielens().model


def _to_ragged(tensor) -> tf.RaggedTensor:
  """A [B] / [B, 1] dense, SparseTensor or RaggedTensor feature -> [B, None] ragged."""
  if isinstance(tensor, tf.RaggedTensor):
    return tensor
  if isinstance(tensor, tf.SparseTensor):
    return tf.RaggedTensor.from_sparse(tensor)
  if tensor.shape.rank == 1:
    tensor = tensor[:, None]
  return tf.RaggedTensor.from_tensor(tensor)


def _scalar(tensor) -> tf.Tensor:
  """A one-value-per-example feature -> [B]."""
  ragged = _to_ragged(tensor)
  return ragged.to_tensor(shape=[None, 1])[:, 0]


def time_gap_bucket(gap_seconds: tf.Tensor, num_buckets: int) -> tf.Tensor:
  """log2-minute buckets in [1, num_buckets - 1] of non-negative gaps; 0 is left for padding.

  Bucket 1 + floor(log2(1 + minutes)), so 0-59 s -> 1, 60-179 s -> 2, ...;
  negative gaps count as 0.
  """
  return log2_bucket(gap_seconds, 60, num_buckets - 2) + 1


def _padded(ragged: tf.RaggedTensor, length: int) -> tf.Tensor:
  """The first `length` entries per row, zero-padded to exactly [B, length]."""
  return ragged.to_tensor(default_value=0, shape=[None, length])


def _side_feature_outputs(inputs, specs: Sequence[Any], config: ModelConfig):
  """The transformed tensors of the declared side features (module doc;
  components.side_features.transformed_features names them)."""
  outputs = {}
  long_len, short_len = config.long_seq_len, config.short_seq_len
  for spec in specs:
    hist_name = side_features.HISTORY_PREFIX + spec.name
    hist = _to_ragged(inputs[hist_name])[:, :long_len] if spec.in_history else None
    if spec.kind == side_features.NUMERIC:
      missing_name = spec.name + side_features.MISSING_SUFFIX
      value = tf.cast(_scalar(inputs[spec.name]), tf.float32)
      missing = _scalar(inputs[missing_name]) > 0
      present = [tf.boolean_mask(value, tf.logical_not(missing))]
      if hist is not None:
        hist = tf.cast(hist, tf.float32)
        hist_missing = _to_ragged(inputs[hist_name + side_features.MISSING_SUFFIX]
                                 )[:, :long_len].flat_values > 0
        present.append(tf.boolean_mask(hist.flat_values, tf.logical_not(hist_missing)))
      present = tf.concat(present, axis=0)
      mean, variance = tft.mean(present), tft.var(present)
      mean = tf.where(tf.math.is_finite(mean), mean, 0.0)  # no value in train: 0 and 1
      std = tf.sqrt(variance)
      std = tf.where(tf.math.is_finite(std) & (std > 0), std, 1.0)

      def z_score(values, is_missing):
        z = (values - mean) / std
        return z if spec.default is not None else tf.where(is_missing, 0.0, z)

      outputs[spec.name + side_features.ZSCORE_SUFFIX] = z_score(value, missing)
      outputs[missing_name] = tf.cast(missing, tf.float32)
      if hist is not None:
        z = _padded(hist.with_flat_values(z_score(hist.flat_values, hist_missing)), long_len)
        flags = _padded(hist.with_flat_values(tf.cast(hist_missing, tf.float32)), long_len)
        for prefix, length in ((side_features.LONG_PREFIX, long_len),
                               (side_features.SHORT_PREFIX, short_len)):
          outputs[prefix + spec.name + side_features.ZSCORE_SUFFIX] = z[:, :length]
          outputs[prefix + spec.name + side_features.MISSING_SUFFIX] = flags[:, :length]
      continue
    if spec.kind == side_features.CATEGORICAL:
      values, ragged = _scalar(inputs[spec.name]), None
    else:  # categorical_list: the first max_values values
      ragged = _to_ragged(inputs[spec.name])[:, :spec.max_values]
      values = ragged.flat_values
    analyzed = tf.concat([values] + ([hist.flat_values] if hist is not None else []), axis=0)
    analyzed = tf.boolean_mask(analyzed, tf.strings.length(analyzed) > 0)  # "" = missing
    vocab = tft.vocabulary(analyzed, top_k=spec.vocab_size,
                           vocab_filename=side_features.vocabulary_name(spec))

    def index(strings, vocab=vocab, spec=spec):
      # Shifted by one so 0 stays free for padding, as for items.
      return tft.apply_vocabulary(strings, vocab, num_oov_buckets=spec.num_oov_buckets) + 1

    name = spec.name + side_features.INDEX_SUFFIX
    outputs[name] = (index(values) if ragged is None
                     else _padded(ragged.with_flat_values(index(values)), spec.max_values))
    if hist is not None:
      sequence = _padded(hist.with_flat_values(index(hist.flat_values)), long_len)
      outputs[side_features.LONG_PREFIX + name] = sequence
      outputs[side_features.SHORT_PREFIX + name] = sequence[:, :short_len]
  return outputs


def make_preprocessing_fn(config: ModelConfig, feature_specs: Sequence[Any] = ()):
  """The preprocessing_fn for the given sequence and vocabulary settings and the
  declared side features (FeatureSpecs, EtaConfig.features)."""
  side_specs = tuple(feature_specs)

  def preprocessing_fn(inputs):
    item = _scalar(inputs[events.ITEM_ID])
    category = _scalar(inputs[events.CATEGORY])
    timestamp = _scalar(inputs[events.TIMESTAMP])
    hist_items = _to_ragged(inputs[events.HIST_ITEM_IDS])[:, :config.long_seq_len]
    hist_categories = _to_ragged(inputs[events.HIST_CATEGORIES])[:, :config.long_seq_len]
    hist_timestamps = _to_ragged(inputs[events.HIST_TIMESTAMPS])[:, :config.long_seq_len]

    def index(values, vocab):
      # Shift by one so 0 stays free for padding.
      return tft.apply_vocabulary(values, vocab, num_oov_buckets=config.num_oov_buckets) + 1

    item_vocab = tft.vocabulary(
        tf.concat([item, hist_items.flat_values], axis=0), top_k=config.vocab_top_k,
        frequency_threshold=config.vocab_min_frequency, vocab_filename=features.ITEM_VOCAB)
    category_vocab = tft.vocabulary(
        tf.concat([category, hist_categories.flat_values], axis=0),
        vocab_filename=features.CATEGORY_VOCAB)

    item_idx = index(item, item_vocab)
    category_idx = index(category, category_vocab)
    long_items = hist_items.with_flat_values(index(hist_items.flat_values, item_vocab))
    long_categories = hist_categories.with_flat_values(
        index(hist_categories.flat_values, category_vocab))
    gaps = tf.expand_dims(timestamp, 1) - hist_timestamps  # ragged [B, None]
    long_gaps = gaps.with_flat_values(time_gap_bucket(gaps.flat_values,
                                                      config.time_gap_buckets))
    lengths = tf.cast(hist_items.row_lengths(), tf.int64)

    outputs = {features.ITEM: item_idx, features.CATEGORY: category_idx,
               features.LONG_LENGTH: lengths,
               features.SHORT_LENGTH: tf.minimum(lengths, config.short_seq_len)}
    for name, ragged in ((features.LONG_ITEMS, long_items),
                         (features.LONG_CATEGORIES, long_categories),
                         (features.LONG_TIME_GAPS, long_gaps)):
      outputs[name] = _padded(ragged, config.long_seq_len)
    for long_name, short_name in ((features.LONG_ITEMS, features.SHORT_ITEMS),
                                  (features.LONG_CATEGORIES, features.SHORT_CATEGORIES),
                                  (features.LONG_TIME_GAPS, features.SHORT_TIME_GAPS)):
      outputs[short_name] = outputs[long_name][:, :config.short_seq_len]
    if events.LABEL in inputs:
      outputs[features.LABEL] = _scalar(inputs[events.LABEL])
    if events.USER_ID in inputs:
      outputs[features.USER_ID] = _scalar(inputs[events.USER_ID])
    if side_specs:
      outputs.update(_side_feature_outputs(inputs, side_specs, config))
    return outputs

  return preprocessing_fn


TRANSFORM_SETTINGS_KEY = "transform_settings"
SIDE_FEATURES_KEY = "side_features"


def transform_custom_config(config: ModelConfig, feature_specs: Sequence[Any] = ()):
  """Transform's custom_config: only the settings it reads, so that other model
  changes (k, hash bits, architecture) reuse the cached Transform output; the
  declared side features (FeatureSpecs) only when there are any, so a run
  without them keeps its cache key."""
  custom = {TRANSFORM_SETTINGS_KEY: json.dumps(config.transform_settings(), sort_keys=True)}
  if feature_specs:
    custom[SIDE_FEATURES_KEY] = json.dumps(
        [dataclasses.asdict(spec) for spec in feature_specs], sort_keys=True)
  return custom


def preprocessing_fn(inputs, custom_config=None):
  """The TFX Transform entry point; custom_config comes from transform_custom_config."""
  config, specs = _DEFAULT_CONFIG, ()
  if custom_config and TRANSFORM_SETTINGS_KEY in custom_config:
    config = ModelConfig.from_transform_settings(
        json.loads(custom_config[TRANSFORM_SETTINGS_KEY]))
  if custom_config and SIDE_FEATURES_KEY in custom_config:
    specs = features_from_dicts(json.loads(custom_config[SIDE_FEATURES_KEY]))
  return make_preprocessing_fn(config, specs)(inputs)
