"""Exact log2 buckets of integer counts and durations (time gaps, history lengths)."""

import tensorflow as tf


def log2_bucket(values: tf.Tensor, unit: int, max_bucket: int) -> tf.Tensor:
  """floor(log2(1 + values / unit)) clipped to [0, max_bucket], as int64, exactly.

  Integer values are compared with the integer bucket edges unit * (2^b - 1).
  A float32 log would put some edges one bucket off, and differently in
  TensorFlow's scalar and vectorised kernels, so that one value's bucket would
  depend on the batch it came in (and on the CPU). Negative values give 0.
  """
  values = tf.cast(values, tf.int64)
  if max_bucket < 1:
    return tf.zeros_like(values)
  edges = tf.constant([unit * (2 ** b - 1) for b in range(1, max_bucket + 1)], tf.int64)
  flat = tf.reshape(values, [-1])
  bucket = tf.searchsorted(edges, flat, side="right", out_type=tf.int64)  # edges <= value
  return tf.reshape(bucket, tf.shape(values))
