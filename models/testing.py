"""Generated transformed-feature batches for model tests (no Transform run needed)."""

import numpy as np
import tensorflow as tf

from components import side_features as side_lib
from eta_ctr.config import ModelConfig
from models import features


def transformed_batch(config: ModelConfig, batch: int, item_vocab: int = 200,
                      category_vocab: int = 12, seed: int = 0, side=None):
  """A dict of transformed features [B] / [B, L] with padding, and a learnable label.

  The label is 1 when the candidate's category occurs in the history, so a model
  that reads the history can fit it. `side` (models.architectures.side.SideFeatures)
  adds the declared features' tensors (components.side_features.transformed_features):
  an item categorical is a function of the item (as a brand would be), the
  others random; numerics are missing one time in five.
  """
  rng = np.random.default_rng(seed)
  length = config.long_seq_len
  lengths = rng.integers(0, length + 1, size=batch)
  items = rng.integers(1, item_vocab, size=(batch, length))
  categories = (items % (category_vocab - 1)) + 1
  gaps = np.sort(rng.integers(1, config.time_gap_buckets, size=(batch, length)), axis=1)
  pad = np.arange(length)[None, :] >= lengths[:, None]
  for array in (items, categories, gaps):
    array[pad] = 0
  candidate = rng.integers(1, item_vocab, size=batch)
  candidate_category = (candidate % (category_vocab - 1)) + 1
  label = np.array([int(c in row) for c, row in zip(candidate_category, categories)])
  short = config.short_seq_len
  data = {
      features.ITEM: candidate, features.CATEGORY: candidate_category,
      features.LONG_ITEMS: items, features.LONG_CATEGORIES: categories,
      features.LONG_TIME_GAPS: gaps, features.LONG_LENGTH: lengths,
      features.SHORT_ITEMS: items[:, :short], features.SHORT_CATEGORIES: categories[:, :short],
      features.SHORT_TIME_GAPS: gaps[:, :short], features.SHORT_LENGTH: np.minimum(lengths, short),
      features.LABEL: label,
  }
  result = {name: tf.constant(value, tf.int64) for name, value in data.items()}
  if side:
    result.update(_side_tensors(side, rng, candidate, items, pad, short))
  return result


def _side_tensors(side, rng, candidate, items, pad, short):
  batch, length = items.shape
  result = {}
  for spec in side.specs:
    if spec.kind == side_lib.NUMERIC:
      def numeric(shape):
        missing = rng.random(shape) < 0.2
        return np.where(missing, 0.0, rng.normal(size=shape)), missing.astype(np.float64)
      z, missing = numeric(batch)
      result[spec.name + side_lib.ZSCORE_SUFFIX] = z
      result[spec.name + side_lib.MISSING_SUFFIX] = missing
      if spec.in_history:
        z, missing = numeric((batch, length))
        z[pad], missing[pad] = 0.0, 0.0
        for prefix, size in ((side_lib.LONG_PREFIX, length), (side_lib.SHORT_PREFIX, short)):
          result[prefix + spec.name + side_lib.ZSCORE_SUFFIX] = z[:, :size]
          result[prefix + spec.name + side_lib.MISSING_SUFFIX] = missing[:, :size]
      continue
    size = side.vocab_sizes[spec.name]
    name = spec.name + side_lib.INDEX_SUFFIX
    if spec.kind == side_lib.CATEGORICAL_LIST:
      values = rng.integers(1, size, size=(batch, spec.max_values))
      counts = rng.integers(0, spec.max_values + 1, size=batch)
      values[np.arange(spec.max_values)[None, :] >= counts[:, None]] = 0
      result[name] = values
    elif spec.entity == side_lib.ITEM:
      result[name] = (candidate * 7 % (size - 1)) + 1
      if spec.in_history:
        history = (items * 7 % (size - 1)) + 1
        history[pad] = 0
        result[side_lib.LONG_PREFIX + name] = history
        result[side_lib.SHORT_PREFIX + name] = history[:, :short]
    else:
      result[name] = rng.integers(1, size, size=batch)
  return {name: tf.constant(value, tf.int64 if name.endswith(side_lib.INDEX_SUFFIX)
                            else tf.float32) for name, value in result.items()}
