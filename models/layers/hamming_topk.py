"""Top-k retrieval of behaviours by Hamming distance between SimHash codes (ETA).

ETA ranks each user's behaviours by the Hamming distance of their SimHash codes
to the candidate's code and keeps the k nearest; target attention then runs on
those k only. The selection is integer arithmetic, so no gradient flows through
it: gradients reach the embeddings only through the gathered behaviours.
"""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from eta_ctr.config import KERNEL_AUTO, KERNEL_FUSED, KERNEL_STOCK, RETRIEVAL_KERNELS
from models.layers.kernels import fused_ops


def hamming_distance(a_codes: tf.Tensor, b_codes: tf.Tensor) -> tf.Tensor:
  """Hamming distances between packed codes.

  Args:
    a_codes: [..., W] integer codes (int64 as SimHash packs them).
    b_codes: [..., W], broadcastable against a_codes.

  Returns:
    [...] int32, the number of differing bits summed over the W words.
  """
  a_codes = tf.convert_to_tensor(a_codes)
  b_codes = tf.convert_to_tensor(b_codes, a_codes.dtype)
  # PopulationCount counts the bits of each word, as uint8.
  counts = tf.raw_ops.PopulationCount(x=tf.bitwise.bitwise_xor(a_codes, b_codes))
  return tf.reduce_sum(tf.cast(counts, tf.int32), axis=-1)


# The level path (below) handles codes of up to this many words (192 bits): its
# histograms and its partition have one entry per distance (64 * W + 1).
_LEVEL_MAX_WORDS = 3
# It runs for at least this many candidates per history, each of at least this
# many behaviours (a scoring request); TopK is faster below (measured with
# benchmarks/hamming_kernels.py), and so it is for training batches (C = 1).
_LEVEL_MIN_CANDIDATES = 256
_LEVEL_MIN_LENGTH = 512
# Behaviours per history sampled to estimate each row's threshold.
_SAMPLE = 128


def stock_top_k(candidate_codes, behaviour_codes, behaviour_mask, k: int):
  """The selection in stock TensorFlow ops: [B, C, W], [B, L, W], [B, L] -> three [B, C, k].

  Two exact implementations with identical results, chosen by shape (statically
  where shapes are known, else at run time): `_sort_top_k` (XOR + popcount, then
  TopK over all L) and, for many candidates per long history and codes of up to
  192 bits, `_level_top_k` (no TopK over L, whose 10-20 ns per element dominate
  there: a threshold, a compaction and a counting sort by distance).
  """
  sort = lambda: _sort_top_k(candidate_codes, behaviour_codes, behaviour_mask, k)
  level = lambda: _level_top_k(candidate_codes, behaviour_codes, behaviour_mask, k)
  words = candidate_codes.shape[-1]
  if words is None or words > _LEVEL_MAX_WORDS:
    return sort()
  candidates, length = candidate_codes.shape[1], behaviour_codes.shape[1]
  if ((candidates is not None and candidates < _LEVEL_MIN_CANDIDATES)
      or (length is not None and length < _LEVEL_MIN_LENGTH)):
    return sort()
  if candidates is not None and length is not None:
    return level()
  large = tf.logical_and(tf.shape(candidate_codes)[1] >= _LEVEL_MIN_CANDIDATES,
                         tf.shape(behaviour_codes)[1] >= _LEVEL_MIN_LENGTH)
  return tf.cond(large, level, sort)


def _sort_top_k(candidate_codes, behaviour_codes, behaviour_mask, k: int):
  """Distances [B, C, L], then TopK over L.

  tf.math.top_k puts the lower index first among equal values, which is the
  (distance, index) order wanted; padding gets a distance above any real one.
  """
  if candidate_codes.shape[-1] == 1 and behaviour_codes.shape[-1] == 1:
    # One word: a rank-3 broadcast is about twice as fast as the rank-4 one.
    distances = tf.cast(tf.raw_ops.PopulationCount(x=tf.bitwise.bitwise_xor(
        candidate_codes, tf.transpose(behaviour_codes, [0, 2, 1]))), tf.int32)  # [B, C, L]
  else:
    distances = hamming_distance(candidate_codes[:, :, None, :], behaviour_codes[:, None, :, :])
  seq_len = tf.shape(distances)[2]
  padding = 64 * tf.shape(behaviour_codes)[-1] + 1
  masked = tf.where(behaviour_mask[:, None, :], distances, padding)
  top = tf.minimum(k, seq_len)
  negated, indices = tf.math.top_k(-masked, k=top, sorted=True)  # [B, C, min(k, L)]
  valid = negated > -padding
  selected = tf.where(valid, -negated, 0)
  indices = tf.where(valid, indices, 0)
  pad = [[0, 0], [0, 0], [0, k - top]]  # when k > L the slots past L are invalid
  return (tf.pad(indices, pad), tf.pad(selected, pad), tf.pad(valid, pad, constant_values=False))


def _signs(codes, last, words: int):
  """[..., W] int64 codes -> [..., 64 * W + 1] float32: -1 or +1 per bit, then `last`."""
  bits = tf.bitwise.bitwise_and(
      tf.bitwise.right_shift(codes[..., None], tf.range(64, dtype=tf.int64)), 1)  # [..., W, 64]
  signs = tf.reshape(tf.cast(bits, tf.float32) * 2.0 - 1.0,
                     tf.concat([tf.shape(codes)[:-1], [64 * words]], 0))
  return tf.concat([signs, last[..., None]], -1)


def _dot_products(candidate_signs, behaviour_codes, behaviour_mask):
  """[B, C, m + 1] candidate signs (last 1), [B, L, W], [B, L] -> [B, C, L] float32
  m - 2 * distance: +-1 sign vectors agree on m - d bits and differ on d, so one
  MatMul gives every distance, exactly (integers far below 2^24). The last column
  puts padding 2m + 2 below, at distances above m."""
  max_distance = candidate_signs.shape[-1] - 1
  padding = tf.where(behaviour_mask, 0.0, -2.0 * max_distance - 2.0)
  return tf.matmul(candidate_signs, _signs(behaviour_codes, padding, max_distance // 64),
                   transpose_b=True)


def _row_counts(flags):
  """Per-row number of True in a bool [R, L]: bytes summed in the 8 lanes of int64
  words (255 words at most per lane), then the lanes added up."""
  rows, length = tf.unstack(tf.shape(flags))
  words = (length + 7) // 8
  chunks = (words + 254) // 255
  per_chunk = (words + chunks - 1) // chunks
  as_bytes = tf.pad(tf.cast(flags, tf.uint8), [[0, 0], [0, 8 * chunks * per_chunk - length]])
  as_words = tf.bitcast(tf.reshape(as_bytes, [rows, chunks, per_chunk, 8]), tf.int64)
  lanes = tf.reduce_sum(as_words, 2)  # [R, chunks], 8 byte lanes each <= 255
  mask = lambda value: tf.constant(value, tf.int64)
  shift, both = tf.bitwise.right_shift, tf.bitwise.bitwise_and
  lanes = (both(lanes, mask(0x00FF00FF00FF00FF))
           + both(shift(lanes, mask(8)), mask(0x00FF00FF00FF00FF)))  # 4 x 16-bit sums
  lanes = (both(lanes, mask(0x0000FFFF0000FFFF))
           + both(shift(lanes, mask(16)), mask(0x0000FFFF0000FFFF)))  # 2 x 32-bit sums
  lanes = both(lanes, mask(0xFFFFFFFF)) + shift(lanes, mask(32))
  return tf.cast(tf.reduce_sum(lanes, 1), tf.int32)


def _cumulative(counts, size: int):
  """Inclusive cumulative sums along the last axis (of static size) of int32 counts
  below 2^24, as one float32 matmul with a triangular matrix (exact there)."""
  upper = tf.constant(np.triu(np.ones((size, size), np.float32)))
  return tf.cast(tf.matmul(tf.cast(counts, tf.float32), upper), tf.int32)


def _level_top_k(candidate_codes, behaviour_codes, behaviour_mask, k: int):
  """Top-k without a TopK over L; codes of up to _LEVEL_MAX_WORDS words.

  Distances come from one MatMul of +-1 sign vectors (compute-bound and cache
  blocked, unlike a [B, C, L] int64 XOR), and are small integers (levels 0..m),
  so per row (b, c):
  1. a threshold: a level with at least min(k, valid) behaviours at or below it,
     estimated from a sample of the history and counted exactly (rows where the
     estimate falls short list every valid behaviour);
  2. the behaviours at or below it, as one list in (row, index) order (Where);
  3. their histogram per row and level -> cumulative counts: slot s of a row
     holds level D (the level where the cumulative count passes s), as the
     (s - behaviours below D)-th behaviour of that level in index order;
  4. the list stably partitioned by level (DynamicPartition keeps the order within
     a part), so each (level, row) group is contiguous and in index order, and a
     slot's behaviour is one gather away.
  """
  words = candidate_codes.shape[-1]
  max_distance = 64 * words
  levels = max_distance + 1  # 0..m; padding is never listed
  batch, candidates = tf.unstack(tf.shape(candidate_codes)[:2])
  length = tf.shape(behaviour_codes)[1]
  rows = batch * candidates
  candidate_signs = _signs(candidate_codes, tf.ones(tf.shape(candidate_codes)[:2]), words)
  dots = tf.reshape(_dot_products(candidate_signs, behaviour_codes, behaviour_mask),
                    [rows, length])  # m - 2 * distance
  valid_count = tf.reduce_sum(tf.cast(behaviour_mask, tf.int32), 1)  # [B]
  wanted = tf.repeat(tf.minimum(valid_count, k), candidates)  # [R] slots that will be valid

  # 1. Threshold estimate from every stride-th behaviour: the level by which the
  # sample holds 1.5 times its share of `wanted`, plus 2; then checked exactly.
  stride = tf.maximum(1, length // _SAMPLE)
  sample = _dot_products(candidate_signs, behaviour_codes[:, ::stride],
                         behaviour_mask[:, ::stride])  # [B, C, L / stride]
  sampled = tf.shape(sample)[2]
  sample = tf.cast((max_distance - tf.reshape(sample, [rows, sampled])) * 0.5, tf.int32)
  need = 3 * wanted * sampled // (2 * length) + 2
  histogram = tf.math.bincount(sample, minlength=levels, maxlength=levels,
                               axis=-1)  # [R, levels]; padding (above m) dropped
  cumulative = _cumulative(histogram, levels)
  threshold = tf.minimum(tf.reduce_sum(tf.cast(cumulative < need[:, None], tf.int32), 1),
                         max_distance)
  listed = dots >= tf.cast(max_distance - 2 * threshold, tf.float32)[:, None]
  short = _row_counts(listed) < wanted
  listed = tf.cond(
      tf.reduce_any(short),
      lambda: tf.logical_or(listed, short[:, None] & (dots >= -max_distance)),
      lambda: listed)

  # 2. The list, in (row, index) order, as flat positions row * L + index.
  position = tf.reshape(tf.where(tf.reshape(listed, [-1])), [-1])  # [N] int64
  level = tf.cast((max_distance - tf.gather(tf.reshape(dots, [-1]), position)) * 0.5, tf.int32)
  row = position // tf.cast(length, tf.int64)
  index = tf.cast(position - row * tf.cast(length, tf.int64), tf.int32)
  row = tf.cast(row, tf.int32)

  # 3. Per-row histograms of the listed levels; slot s -> level D and rank q in D.
  counts = tf.reshape(tf.math.bincount(row * levels + level, minlength=rows * levels,
                                       maxlength=rows * levels), [rows, levels])
  through = _cumulative(counts, levels)  # listed behaviours at or below each level
  slots = tf.range(k)[None, :]
  slot_level = tf.searchsorted(through, tf.broadcast_to(slots, [rows, k]), side="right")
  valid = slots < wanted[:, None]
  slot_level = tf.where(valid, slot_level, 0)
  rank = slots - tf.gather(through - counts, slot_level, batch_dims=1)

  # 4. Partition by level: groups (level, row) in order, each in index order.
  by_level = tf.concat(tf.dynamic_partition(index, level, levels), 0)
  by_row = tf.transpose(counts)  # [levels, R]
  group_start = (tf.cumsum(by_row, axis=1, exclusive=True)  # rows before, same level
                 + tf.cumsum(tf.reduce_sum(by_row, 1), exclusive=True)[:, None])  # levels before
  slot_position = tf.gather(tf.reshape(group_start, [-1]),
                            slot_level * rows + tf.range(rows)[:, None]) + rank
  indices = tf.where(valid, tf.gather(by_level, tf.where(valid, slot_position, 0)), 0)
  shape = [batch, candidates, k]
  return (tf.reshape(indices, shape), tf.reshape(slot_level, shape), tf.reshape(valid, shape))


@keras.utils.register_keras_serializable(package="eta")
class HammingTopK(keras.layers.Layer):
  """The k behaviours nearest a candidate in Hamming distance.

  Call: `layer([candidate_codes, behaviour_codes], behaviour_mask=None)`.
    candidate_codes: [B, W] int64, or [B, C, W] for C candidates that share one
      history.
    behaviour_codes: [B, L, W] int64, most recent behaviour first.
    behaviour_mask: [B, L] bool, True for a real behaviour; None means all are.

  Returns (indices, distances, valid), each [B, k] (or [B, C, k]):
    indices: int32 positions in [0, L) of the selected behaviours, nearest
      first; feed them to `tf.gather(..., batch_dims=1)`.
    distances: int32 Hamming distances of those behaviours.
    valid: bool, False for slots that no valid behaviour fills (fewer than k
      valid behaviours, or k > L). Such slots hold index 0 and distance 0.

  Ordering is exactly (distance ascending, index ascending): among equal
  distances the more recent (lower-index) behaviour wins. Padded behaviours are
  never selected. `k` may exceed L.

  Two kernels compute exactly the same result: `fused` (one compiled op, see
  kernels/fused_ops.py; near one XOR + popcount per pair) and `stock` (plain
  TensorFlow ops, so the graph runs anywhere, stock TF Serving included).

  Args:
    k: the number of behaviours to retrieve, >= 1.
    kernel: `auto` (fused where it can be built, else stock), `fused` or `stock`.
  """

  def __init__(self, k: int, kernel: str = KERNEL_AUTO, **kwargs):
    super().__init__(**kwargs)
    if int(k) != k or k < 1:
      raise ValueError(f"k must be a positive integer, got {k!r}.")
    if kernel not in RETRIEVAL_KERNELS:
      raise ValueError(f"kernel must be one of {RETRIEVAL_KERNELS}, got {kernel!r}.")
    self.k = int(k)
    self.kernel = kernel

  def call(self, inputs, behaviour_mask=None):
    candidate_codes, behaviour_codes = inputs
    behaviour_codes = tf.cast(behaviour_codes, tf.int64)
    candidate_codes = tf.cast(candidate_codes, tf.int64)
    single = candidate_codes.shape.rank == 2
    if single:
      candidate_codes = candidate_codes[:, None, :]  # [B, 1, W]
    elif candidate_codes.shape.rank != 3:
      raise ValueError(
          f"candidate_codes must be [B, W] or [B, C, W], got {candidate_codes.shape}.")
    if behaviour_mask is None:
      behaviour_mask = tf.ones(tf.shape(behaviour_codes)[:2], tf.bool)
    behaviour_mask = tf.cast(behaviour_mask, tf.bool)

    fused = fused_ops.load() if self.kernel in (KERNEL_AUTO, KERNEL_FUSED) else None
    if fused is not None:
      outputs = fused.eta_hamming_top_k(candidate_codes, behaviour_codes, behaviour_mask,
                                        k=self.k)
    elif self.kernel == KERNEL_FUSED:
      raise RuntimeError("kernel='fused' but the fused kernel could not be built or loaded; "
                         "see the log, or use kernel='auto'.")
    else:
      outputs = stock_top_k(candidate_codes, behaviour_codes, behaviour_mask, self.k)

    results = []
    for tensor in outputs:
      tensor = tf.stop_gradient(tensor)
      if single:
        tensor = tensor[:, 0, :]
      tensor.set_shape(candidate_codes.shape[:1].concatenate(
          [] if single else candidate_codes.shape[1:2]).concatenate([self.k]))
      results.append(tensor)
    return tuple(results)

  def get_config(self):
    config = super().get_config()
    config.update({"k": self.k, "kernel": self.kernel})
    return config

