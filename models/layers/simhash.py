"""SimHash: locality-sensitive binary codes for embeddings (ETA, arXiv 2108.04468).

Each embedding is projected by a fixed Gaussian matrix R [d, num_bits]; bit j of
its code is 1 where (x @ R)[j] > 0. The Hamming distance between two codes then
estimates the angle between the embeddings, which is what ETA's retrieval uses
in place of an inner product.

Bit layout of a packed code [..., W] int64, W = ceil(num_bits / 64): bit j lies
in word j // 64 at bit position j % 64, least significant bit first. Bit 63 of a
word is its sign bit, so a word with that bit set is negative. The unused high
bits of the last word are always 0, so they never add to a Hamming distance.
"""

import math
import sys

import numpy as np
import tensorflow as tf
import tf_keras as keras

WORD_BITS = 64

# 1 << i for i in 0..63 as int64; numpy wraps 1 << 63 to -2**63, which is the
# int64 whose only set bit is bit 63.
_POWERS_OF_TWO = np.left_shift(np.int64(1), np.arange(WORD_BITS, dtype=np.int64))
_BYTE_POWERS_COLUMN = np.ldexp(np.float32(1), np.arange(8))[:, None].astype(np.float32)  # [8, 1]


def num_words(num_bits: int) -> int:
  """The number of int64 words that hold num_bits bits."""
  return int(math.ceil(num_bits / WORD_BITS))


def pack_bits(bits: tf.Tensor) -> tf.Tensor:
  """Packs bits [..., N] (bool or 0/1) into int64 words [..., ceil(N / 64)].

  Bit j goes to word j // 64, position j % 64 (LSB first); the tail of the last
  word is zero-filled.
  """
  bits = tf.convert_to_tensor(bits)
  n = bits.shape[-1]
  if n is None:
    raise ValueError("pack_bits needs a static last dimension.")
  words = num_words(n)
  bits = tf.cast(tf.cast(bits, tf.bool), tf.uint8)
  pad = words * WORD_BITS - n
  if pad:
    paddings = [[0, 0]] * (bits.shape.rank - 1) + [[0, pad]]
    bits = tf.pad(bits, paddings)
  leading = tf.shape(bits)[:-1]
  if sys.byteorder == "little":
    # Bytes first, then each 8 bytes reinterpreted as one little-endian int64: byte
    # i holds bits 8i..8i+7. The bytes are one small float32 MatMul of the 0/1 bits
    # by 1, 2, ..., 128: integer sums below 256, exact in any summation order, and
    # about 3x faster than a broadcast uint8 multiply + sum (measured, 2048 x 64 bits).
    flat = tf.reshape(tf.cast(bits, tf.float32), [-1, 8])
    packed_bytes = tf.cast(tf.matmul(flat, tf.constant(_BYTE_POWERS_COLUMN)), tf.uint8)
    return tf.bitcast(tf.reshape(packed_bytes, tf.concat([leading, [words, 8]], 0)), tf.int64)
  grouped = tf.reshape(tf.cast(bits, tf.int64), tf.concat([leading, [words, WORD_BITS]], 0))
  # Distinct powers of two, at most one of them -2**63: every partial sum stays
  # in int64 range, so the sum equals the bitwise OR and nothing overflows.
  return tf.reduce_sum(grouped * tf.constant(_POWERS_OF_TWO), axis=-1)


def unpack_bits(codes: tf.Tensor, num_bits: int) -> tf.Tensor:
  """Unpacks int64 codes [..., W] into bool bits [..., num_bits] (inverse of pack_bits)."""
  codes = tf.convert_to_tensor(codes, tf.int64)
  shifts = tf.range(WORD_BITS, dtype=tf.int64)
  # The right shift is arithmetic on negative words; masking with 1 undoes that.
  bits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(codes[..., None], shifts), 1)
  words = codes.shape[-1]
  if words is None:
    raise ValueError("unpack_bits needs a static last dimension.")
  bits = tf.reshape(bits, tf.concat([tf.shape(codes)[:-1], [words * WORD_BITS]], 0))
  return tf.cast(bits[..., :num_bits], tf.bool)


@keras.utils.register_keras_serializable(package="eta")
class SimHash(keras.layers.Layer):
  """Fixed random-projection SimHash of embeddings into packed int64 codes.

  Input: embeddings [..., d] (float; the last dimension must be static).
  Output: codes [..., W] int64, W = ceil(num_bits / 64); see the module
  docstring for the bit layout. `bits(x)` gives the unpacked bits [..., num_bits]
  bool instead.

  The projection [d, num_bits] is a non-trainable weight drawn from N(0, 1) with
  `seed`, so it is saved with the model and restored on load; training never
  moves it. No gradient flows through the codes (they are integers). An all-zero
  embedding hashes to the all-zero code.

  The layer computes in float32 regardless of a global mixed-precision policy
  (unless a dtype is passed), so that the same embedding gets the same code in
  training and in serving.

  Args:
    num_bits: code length in bits, >= 1.
    seed: seed of the projection.
  """

  def __init__(self, num_bits: int = 64, seed: int = 0, **kwargs):
    kwargs.setdefault("dtype", "float32")
    super().__init__(**kwargs)
    if int(num_bits) != num_bits or num_bits < 1:
      raise ValueError(f"num_bits must be a positive integer, got {num_bits!r}.")
    self.num_bits = int(num_bits)
    self.seed = int(seed)
    self.num_words = num_words(self.num_bits)

  def build(self, input_shape):
    input_shape = tf.TensorShape(input_shape)
    dim = input_shape[-1]
    if dim is None:
      raise ValueError(f"SimHash needs a static embedding size, got shape {input_shape}.")
    self.projection = self.add_weight(
        name="projection",
        shape=(dim, self.num_bits),
        initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
        trainable=False)
    super().build(input_shape)

  def _projection_bits(self, inputs):
    x = tf.cast(inputs, self.projection.dtype)
    projected = tf.tensordot(x, self.projection, axes=[[-1], [0]])
    return projected > 0

  def bits(self, inputs: tf.Tensor) -> tf.Tensor:
    """Unpacked sign bits [..., num_bits] bool of embeddings [..., d]."""
    if not self.built:
      self(inputs)  # Builds the projection the way a first call would.
    return self._projection_bits(inputs)

  def call(self, inputs):
    return pack_bits(self._projection_bits(inputs))

  @staticmethod
  def codes_from_projection(projected: tf.Tensor) -> tf.Tensor:
    """[..., num_bits] projections x @ R (float) -> [..., W] int64 codes.

    For callers that compute x @ R themselves, e.g. as a sum of partial
    projections of the parts of a concatenated x (ETA's item ++ category)."""
    return pack_bits(projected > 0)

  def compute_output_shape(self, input_shape):
    return tf.TensorShape(input_shape)[:-1].concatenate([self.num_words])

  def compute_output_signature(self, input_signature):
    shape = self.compute_output_shape(input_signature.shape)
    return tf.TensorSpec(shape, tf.int64)

  def get_config(self):
    config = super().get_config()
    config.update({"num_bits": self.num_bits, "seed": self.seed})
    return config
