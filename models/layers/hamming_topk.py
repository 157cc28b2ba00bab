"""Top-k retrieval of behaviours by Hamming distance between SimHash codes (ETA).

ETA ranks each user's behaviours by the Hamming distance of their SimHash codes
to the candidate's code and keeps the k nearest; target attention then runs on
those k only. The selection is integer arithmetic, so no gradient flows through
it: gradients reach the embeddings only through the gathered behaviours.
"""

import tensorflow as tf
import tf_keras as keras


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

  Args:
    k: the number of behaviours to retrieve, >= 1.
  """

  def __init__(self, k: int, **kwargs):
    super().__init__(**kwargs)
    if int(k) != k or k < 1:
      raise ValueError(f"k must be a positive integer, got {k!r}.")
    self.k = int(k)

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

    # [B, C, 1, W] vs [B, 1, L, W] -> [B, C, L].
    distances = hamming_distance(candidate_codes[:, :, None, :], behaviour_codes[:, None, :, :])
    shape = tf.shape(distances)
    seq_len = shape[2]
    if behaviour_mask is None:
      mask = tf.ones_like(distances, tf.bool)
    else:
      mask = tf.broadcast_to(tf.cast(behaviour_mask, tf.bool)[:, None, :], shape)

    # One int64 key per behaviour orders by (distance, index): distance * L +
    # index is unique, and padding gets a distance above any real one (at most
    # 64 * W), so it sorts after every valid behaviour.
    max_distance = 64 * tf.shape(behaviour_codes, out_type=tf.int64)[-1]
    key_distance = tf.where(mask, tf.cast(distances, tf.int64), max_distance + 1)
    positions = tf.range(tf.cast(seq_len, tf.int64), dtype=tf.int64)
    key = key_distance * tf.cast(seq_len, tf.int64) + positions
    top_k = tf.minimum(self.k, seq_len)
    _, indices = tf.math.top_k(-key, k=top_k, sorted=True)  # [B, C, min(k, L)] int32

    valid = tf.gather(mask, indices, batch_dims=2)
    selected_distances = tf.where(valid, tf.gather(distances, indices, batch_dims=2), 0)
    indices = tf.where(valid, indices, 0)
    # When k > L the slots past L are filled as invalid.
    pad = [[0, 0], [0, 0], [0, self.k - top_k]]
    indices = tf.pad(indices, pad)
    selected_distances = tf.pad(selected_distances, pad)
    valid = tf.pad(valid, pad, constant_values=False)

    outputs = []
    for tensor in (indices, selected_distances, valid):
      tensor = tf.stop_gradient(tensor)
      if single:
        tensor = tensor[:, 0, :]
      tensor.set_shape(candidate_codes.shape[:1].concatenate(
          [] if single else candidate_codes.shape[1:2]).concatenate([self.k]))
      outputs.append(tensor)
    return tuple(outputs)

  def get_config(self):
    config = super().get_config()
    config.update({"k": self.k})
    return config

