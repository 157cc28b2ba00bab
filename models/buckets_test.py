"""log2 buckets put every edge exactly where integer arithmetic does, whatever the batch."""

import numpy as np
import tensorflow as tf

from models.architectures.base import ACTIVITY_BUCKETS, activity_bucket
from models.buckets import log2_bucket
from models.preprocessing import time_gap_bucket


def _reference(values, unit, max_bucket):
  """floor(log2(1 + v / unit)) in exact integer arithmetic: the bit length of 1 + v // unit."""
  return [min(max((1 + v // unit).bit_length() - 1, 0), max_bucket) if v >= 0 else 0
          for v in values]


def test_every_edge_and_its_neighbours_alone_and_in_batches():
  unit, max_bucket = 60, 40
  edges = [unit * (2 ** b - 1) for b in range(1, max_bucket + 2)]
  values = sorted({v for edge in edges for v in (edge - 1, edge, edge + 1)} | {-5, 0, 1})
  want = _reference(values, unit, max_bucket)
  # Batched, and one value at a time (float kernels differed between the two).
  got = log2_bucket(tf.constant(values, tf.int64), unit, max_bucket).numpy()
  np.testing.assert_array_equal(got, want)
  for value, expected in zip(values, want):
    assert log2_bucket(tf.constant([value], tf.int64), unit, max_bucket).numpy()[0] == expected
  assert log2_bucket(tf.constant([[0, 60], [180, 59]], tf.int64), unit, 5).numpy().tolist() == [
      [0, 1], [2, 0]]
  assert log2_bucket(tf.constant([7, -1], tf.int64), unit, 0).numpy().tolist() == [0, 0]


def test_time_gap_and_activity_buckets_use_the_exact_edges():
  gaps = [60 * (2 ** b - 1) for b in range(1, 23)]
  np.testing.assert_array_equal(time_gap_bucket(tf.constant(gaps, tf.int64), 24).numpy(),
                                [min(b, 22) + 1 for b in range(1, 23)])
  lengths = [2 ** b - 1 for b in range(1, 20)] + [0, 2, 4]
  np.testing.assert_array_equal(activity_bucket(tf.constant(lengths, tf.int64)).numpy(),
                                _reference(lengths, 1, ACTIVITY_BUCKETS - 1))
