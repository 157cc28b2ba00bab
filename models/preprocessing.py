"""tf.Transform `preprocessing_fn`: vocabularies, long/short sequences and time gaps.

One vocabulary covers the candidate item and the history items, so both live in
one index space (likewise for categories). Index 0 is padding: vocabulary
indices are shifted by one, OOV buckets follow the vocabulary.
"""

import json

import tensorflow as tf
import tensorflow_transform as tft

from components import events
from eta_ctr.config import EtaConfig, ModelConfig
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


def make_preprocessing_fn(config: ModelConfig):
  """The preprocessing_fn for the given sequence and vocabulary settings."""

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
    return outputs

  return preprocessing_fn


TRANSFORM_SETTINGS_KEY = "transform_settings"


def transform_custom_config(config: ModelConfig):
  """Transform's custom_config: only the settings it reads, so that other model
  changes (k, hash bits, architecture) reuse the cached Transform output."""
  return {TRANSFORM_SETTINGS_KEY: json.dumps(config.transform_settings(), sort_keys=True)}


def preprocessing_fn(inputs, custom_config=None):
  """The TFX Transform entry point; custom_config comes from transform_custom_config."""
  config = _DEFAULT_CONFIG
  if custom_config and TRANSFORM_SETTINGS_KEY in custom_config:
    config = ModelConfig.from_transform_settings(
        json.loads(custom_config[TRANSFORM_SETTINGS_KEY]))
  return make_preprocessing_fn(config)(inputs)
