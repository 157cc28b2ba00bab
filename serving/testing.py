"""A tiny SavedModel with the ETA signatures' names, dtypes and shapes, for tests.

probabilities = sigmoid(bias + item term + 0.1 * history length), the same in
`serving_default` (per tf.Example) and `score` (per candidate); `score` also
returns the first k history positions as "retrieved" (-1 past the history) with
distances position % 3. No pipeline run is needed.
"""

import os
import shutil

import tensorflow as tf

from serving import contract

_STRING = tf.io.FixedLenFeature([], tf.string)
_RAW_SPEC = {
    contract.ITEM_ID: _STRING, contract.CATEGORY: _STRING,
    contract.TIMESTAMP: tf.io.FixedLenFeature([], tf.int64),
    contract.HIST_ITEM_IDS: tf.io.VarLenFeature(tf.string),
    contract.HIST_CATEGORIES: tf.io.VarLenFeature(tf.string),
    contract.HIST_TIMESTAMPS: tf.io.VarLenFeature(tf.int64),
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

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.EXAMPLES)])
  def serve_examples(self, examples):
    raw = tf.io.parse_example(examples, _RAW_SPEC)
    batch = tf.shape(examples)[0]
    rows = tf.cast(raw[contract.HIST_ITEM_IDS].indices[:, 0], tf.int32)
    lengths = tf.math.bincount(rows, minlength=batch, maxlength=batch)
    return {contract.PROBABILITIES: tf.sigmoid(self._logits(raw[contract.ITEM_ID], lengths))}

  @tf.function(input_signature=[
      tf.TensorSpec([None], tf.string, name=contract.HIST_ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=contract.HIST_CATEGORIES),
      tf.TensorSpec([None], tf.int64, name=contract.HIST_TIMESTAMPS),
      tf.TensorSpec([None], tf.string, name=contract.ITEM_IDS),
      tf.TensorSpec([None], tf.string, name=contract.CATEGORIES),
      tf.TensorSpec([], tf.int64, name=contract.REQUEST_TIME),
  ])
  def score(self, hist_item_ids, hist_categories, hist_timestamps, item_ids, categories,
            request_time):
    del hist_categories, hist_timestamps, categories, request_time
    count = tf.shape(item_ids)[0]
    length = tf.shape(hist_item_ids)[0]
    positions = tf.tile(tf.range(self.top_k)[None, :], [count, 1])
    valid = positions < length
    return {
        contract.PROBABILITIES: tf.sigmoid(self._logits(item_ids, tf.fill([count], length))),
        contract.RETRIEVED_POSITIONS: tf.where(valid, positions, -1),
        contract.RETRIEVED_DISTANCES: tf.where(valid, positions % 3, -1),
    }


def export_toy_model(path: str, bias: float = 0.0, top_k: int = 4) -> str:
  """Writes the toy SavedModel to path (a version directory) and returns path."""
  module = _ToyModel(bias, top_k)
  tf.saved_model.save(module, path, signatures={
      contract.DEFAULT_SIGNATURE: module.serve_examples.get_concrete_function(),
      contract.SCORE_SIGNATURE: module.score.get_concrete_function(),
  })
  return path


def copy_version(source: str, base_dir: str, version: int) -> str:
  """Copies a version directory to base_dir/version (atomically enough for tests:
  via a temporary name, then a rename)."""
  target = os.path.join(base_dir, str(version))
  staging = os.path.join(base_dir, f".staging-{version}")
  shutil.copytree(source, staging)
  os.rename(staging, target)
  return target
