"""Top-k retrieval of behaviours by Hamming distance between SimHash codes (ETA).

ETA ranks each user's behaviours by the Hamming distance of their SimHash codes
to the candidate's code and keeps the k nearest; target attention then runs on
those k only. The selection is integer arithmetic, so no gradient flows through
it: gradients reach the embeddings only through the gathered behaviours.
"""

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


def stock_top_k(candidate_codes, behaviour_codes, behaviour_mask, k: int):
  """The selection in stock TensorFlow ops: [B, C, W], [B, L, W], [B, L] -> three [B, C, k].

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

