"""Generated transformed-feature batches for model tests (no Transform run needed)."""

import numpy as np
import tensorflow as tf

from eta_ctr.config import ModelConfig
from models import features


def transformed_batch(config: ModelConfig, batch: int, item_vocab: int = 200,
                      category_vocab: int = 12, seed: int = 0):
  """A dict of transformed features [B] / [B, L] with padding, and a learnable label.

  The label is 1 when the candidate's category occurs in the history, so a model
  that reads the history can fit it.
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
  return {name: tf.constant(value, tf.int64) for name, value in data.items()}
