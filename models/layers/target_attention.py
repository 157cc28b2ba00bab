"""Target attention of a candidate item over a user's behaviour sequence.

ETA (arXiv 2108.04468) runs multi-head scaled dot-product attention with the
candidate as the query and the retrieved behaviours as keys and values. DIN's
activation unit (Zhou et al., arXiv 1706.06978) is offered as the alternative
scorer.
"""

from typing import Sequence

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="eta")
class TargetAttention(keras.layers.Layer):
  """Masked attention of a query over keys/values.

  Call: `layer([query, keys], behaviour_mask=None)` or
  `layer([query, keys, values], behaviour_mask=None)`; values default to keys.
    query: [B, Dq] (one candidate) or [B, C, Dq] (C candidates sharing the
      behaviours).
    keys: [B, T, Dk].
    values: [B, T, Dv].
    behaviour_mask: [B, T] bool, True for a real behaviour; None means all are.

  Returns [B, Dv] (or [B, C, Dv]). Rows whose mask is all False give exactly
  zeros, and masked behaviours get weight exactly 0, so their content never
  changes the output.

  Multi-head mode (default): per head h, q_h = query Wq_h, k_h = keys Wk_h,
  v_h = values Wv_h (each key_dim wide), weights = masked softmax(q_h k_h^T /
  sqrt(key_dim)) over T, and the heads' weighted sums are concatenated and
  projected back to Dv by Wo. No projection has a bias, which is what makes an
  empty history give zeros.

  DIN mode (use_din_activation=True): an MLP over [q, k, q - k, q * k]
  (hidden_units, sigmoid as in DIN's reference code, then one linear unit)
  scores each behaviour; the output is sum_t score_t * values_t over the valid
  behaviours. As in the DIN paper the scores are NOT softmax-normalised, so the
  output keeps the intensity of the user's interest (it grows with the number of
  matching behaviours). query and keys must have the same size in this mode;
  num_heads and key_dim are ignored.

  dropout applies to the attention weights in both modes (training only).

  Args:
    num_heads: attention heads.
    key_dim: width of each head's query/key/value projection; defaults to
      Dq // num_heads (at least 1).
    use_din_activation: score with DIN's activation unit instead.
    hidden_units: DIN MLP hidden layer sizes.
    dropout: dropout rate on the attention weights.
  """

  def __init__(self, num_heads: int = 1, key_dim: int = None,
               use_din_activation: bool = False,
               hidden_units: Sequence[int] = (80, 40), dropout: float = 0.0,
               **kwargs):
    super().__init__(**kwargs)
    if num_heads < 1:
      raise ValueError(f"num_heads must be >= 1, got {num_heads}.")
    self.num_heads = int(num_heads)
    self.key_dim = None if key_dim is None else int(key_dim)
    self.use_din_activation = bool(use_din_activation)
    self.hidden_units = tuple(int(u) for u in hidden_units)
    self.dropout = float(dropout)
    self._dropout_layer = keras.layers.Dropout(self.dropout)

  def build(self, input_shape):
    shapes = [tf.TensorShape(s) for s in input_shape]
    if len(shapes) not in (2, 3):
      raise ValueError("TargetAttention takes [query, keys] or [query, keys, values].")
    query_dim, key_in_dim = shapes[0][-1], shapes[1][-1]
    value_dim = shapes[-1][-1] if len(shapes) == 3 else key_in_dim
    if None in (query_dim, key_in_dim, value_dim):
      raise ValueError(f"TargetAttention needs static feature sizes, got {shapes}.")

    if self.use_din_activation:
      if query_dim != key_in_dim:
        raise ValueError(
            f"DIN activation needs query and keys of one size, got {query_dim} and {key_in_dim}.")
      self._din_layers = [
          keras.layers.Dense(units, activation="sigmoid", name=f"din_hidden_{i}")
          for i, units in enumerate(self.hidden_units)]
      self._din_layers.append(keras.layers.Dense(1, name="din_score"))
      width = 4 * query_dim
      for layer in self._din_layers:
        # The scope gives the sublayer's weights unique names (din_hidden_0/kernel).
        with tf.name_scope(layer.name):
          layer.build(tf.TensorShape([None, width]))
        width = layer.units
    else:
      head_dim = self.key_dim or max(1, query_dim // self.num_heads)
      self._head_dim = head_dim
      init = keras.initializers.GlorotUniform
      self.query_kernel = self.add_weight(
          name="query_kernel", shape=(query_dim, self.num_heads, head_dim), initializer=init())
      self.key_kernel = self.add_weight(
          name="key_kernel", shape=(key_in_dim, self.num_heads, head_dim), initializer=init())
      self.value_kernel = self.add_weight(
          name="value_kernel", shape=(value_dim, self.num_heads, head_dim), initializer=init())
      self.output_kernel = self.add_weight(
          name="output_kernel", shape=(self.num_heads, head_dim, value_dim), initializer=init())
    super().build(input_shape)

  def call(self, inputs, behaviour_mask=None, training=None):
    query, keys = inputs[0], inputs[1]
    values = inputs[2] if len(inputs) == 3 else keys
    single = query.shape.rank == 2
    if single:
      query = query[:, None, :]  # [B, 1, Dq]
    elif query.shape.rank != 3:
      raise ValueError(f"query must be [B, D] or [B, C, D], got {query.shape}.")

    if behaviour_mask is None:
      mask = tf.ones(tf.shape(keys)[:2], tf.bool)
    else:
      mask = tf.cast(behaviour_mask, tf.bool)  # [B, T]

    if self.use_din_activation:
      outputs = self._din(query, keys, values, mask, training)
    else:
      outputs = self._multi_head(query, keys, values, mask, training)
    # Exact zeros for empty histories, whatever the scorer's biases are.
    has_any = tf.reduce_any(mask, axis=-1)[:, None, None]
    outputs = tf.where(has_any, outputs, tf.zeros_like(outputs))
    return outputs[:, 0, :] if single else outputs

  def attend_gathered(self, query, behaviours, indices, valid, fused_op=None):
    """Inference: each candidate attends to its own behaviours, picked by index
    from one shared history (ETA's `score`: one user, many candidates).

    Equal, to float rounding, to the layer called on the gathered behaviours
    (the differentiable path, which training uses), row by row:
      out[b, c] = self([query[b, c][None], tf.gather(behaviours[b], indices[b, c])[None]],
                       behaviour_mask=valid[b, c][None], training=False)[0]
    with the same weights and
    the same maths, but without first materialising the [B, C, k, D] gathered
    tensor where that can be avoided:
      multi-head: with `fused_op` (the loaded fused-ops module,
        kernels/fused_ops.load()), its EtaGatherAttention computes the masked
        softmax and the weighted sums straight from the history; the query
        mapping and the output projection stay this layer's own
        (_queries_in_key_space, _project_pooled). Without it, the stock ops
        above on the gathered behaviours.
      DIN: the first MLP layer is linear in [q, k, q - k, q * k], so its kernel
        splits into q (W_q + W_d) + k (W_k - W_d) + (q * k) W_p: the behaviour
        part is computed once per history position ([B, L, H0], not per
        (candidate, slot)) and gathered, the candidate part once per candidate,
        and only (q * k) W_p per pair; 4D -> D input columns per pair. The
        later layers are the same Dense layers.
    No dropout (inference only); keys and values are both `behaviours`.

    Args:
      query: [B, C, Dq] float32 candidates.
      behaviours: [B, L, D] float32, the history (keys = values).
      indices: [B, C, k] int32 positions in [0, L) (HammingTopK's indices).
      valid: [B, C, k] bool, False for an empty slot (weight exactly 0; its index
        is not read by the fused op). A row with no valid slot gives zeros.
      fused_op: the fused-ops module, or None for stock ops only.

    Returns [B, C, D] float32.

    Builds the layer (as a first call would) if it is not built.

    Raises:
      ValueError: wrong ranks, or D != Dq in DIN mode.
      InvalidArgument (at run time): a valid slot's index outside [0, L).
    """
    query, behaviours = tf.convert_to_tensor(query), tf.convert_to_tensor(behaviours)
    indices, valid = tf.convert_to_tensor(indices), tf.convert_to_tensor(valid)
    if query.shape.rank != 3 or behaviours.shape.rank != 3 or indices.shape.rank != 3:
      raise ValueError(f"need query [B, C, Dq], behaviours [B, L, D], indices [B, C, k], got "
                       f"{query.shape}, {behaviours.shape}, {indices.shape}.")
    if not self.built:  # the weights a first call would create
      self._maybe_build([tf.TensorShape([None, query.shape[-1]]),
                         tf.TensorShape([None, None, behaviours.shape[-1]])])
    # The layer's own scope, as a call's: a profile counts this as its time.
    with tf.name_scope(self.name):
      return self._attend_gathered(query, behaviours, tf.cast(indices, tf.int32),
                                   tf.cast(valid, tf.bool), fused_op)

  def _attend_gathered(self, query, behaviours, indices, valid, fused_op):
    if self.use_din_activation:
      return self._din_gathered(query, behaviours, indices, valid)
    if fused_op is None:
      shape = tf.shape(indices)
      gathered = tf.gather(behaviours, indices, batch_dims=1)      # [B, C, k, D]
      outputs = self([tf.reshape(query, [-1, query.shape[-1]]),
                      tf.reshape(gathered, [-1, shape[2], behaviours.shape[-1]])],
                     behaviour_mask=tf.reshape(valid, [-1, shape[2]]), training=False)
      return tf.reshape(outputs, [shape[0], shape[1], outputs.shape[-1]])
    batch, n_queries = tf.shape(query)[0], tf.shape(query)[1]
    pooled = fused_op.eta_gather_attention(                         # [B, C, H, D]
        self._queries_in_key_space(query), behaviours, indices, valid)
    # Rows without a valid slot pooled to exact zeros, which the bias-free
    # projection keeps (call() gives zeros there too).
    return self._project_pooled(pooled, batch, n_queries)

  def _din_gathered(self, query, behaviours, indices, valid):
    """DIN mode of attend_gathered: [B, C, D], [B, L, D], [B, C, k], [B, C, k] -> [B, C, D]."""
    first, rest = self._din_layers[0], self._din_layers[1:]
    dim = query.shape[-1]
    if behaviours.shape[-1] != dim:
      raise ValueError(f"DIN activation needs query and keys of one size, got {dim} and "
                       f"{behaviours.shape[-1]}.")
    w_q, w_k, w_d, w_p = (first.kernel[i * dim:(i + 1) * dim] for i in range(4))
    per_candidate = tf.einsum("bcd,dh->bch", query, w_q + w_d)           # [B, C, H0]
    if first.use_bias:
      per_candidate += first.bias
    per_behaviour = tf.einsum("bld,dh->blh", behaviours, w_k - w_d)      # [B, L, H0]
    gathered = tf.gather(behaviours, indices, batch_dims=1)             # [B, C, k, D]
    hidden = first.activation(
        per_candidate[:, :, None, :] + tf.gather(per_behaviour, indices, batch_dims=1)
        + tf.einsum("bckd,dh->bckh", query[:, :, None, :] * gathered, w_p))
    for layer in rest:
      hidden = layer(hidden)
    scores = hidden[..., 0] * tf.cast(valid, hidden.dtype)              # [B, C, k]
    outputs = tf.einsum("bck,bckd->bcd", scores, gathered)
    has_any = tf.reduce_any(valid, axis=-1)[..., None]
    return tf.where(has_any, outputs, tf.zeros_like(outputs))

  def _multi_head(self, query, keys, values, mask, training):
    """query [B, C, Dq], keys [B, T, Dk], values [B, T, Dv] -> [B, C, Dv].

    Standard multi-head attention, computed in the order that suits few
    queries over long sequences: the query is mapped into the key input space
    (q Wq_h Wk_h^T, one [Dq, H * Dk] matrix for all heads) and the weighted sum is
    taken over raw values before Wv_h Wo (one [H * Dv, Dv] matrix), so no
    [B, T, heads, head_dim] projection of the sequence is ever materialised and
    the whole layer is four matrix products. The cost per candidate is
    O(T * D * heads) instead of O(T * D * heads * head_dim).
    """
    batch, n_queries = tf.shape(query)[0], tf.shape(query)[1]
    heads, key_dim = self.num_heads, keys.shape[-1]
    q = tf.reshape(self._queries_in_key_space(query),
                   [batch, n_queries * heads, key_dim])           # rows (query, head)
    logits = tf.matmul(q, keys, transpose_b=True)                  # [B, C * H, T]
    # A finite floor rather than -inf: an all-masked row then softmaxes to a
    # uniform row (not NaN), which call() zeroes; elsewhere masked weights are 0.
    logits = tf.where(mask[:, None, :], logits, tf.cast(logits.dtype.min, logits.dtype))
    weights = self._dropout_layer(tf.nn.softmax(logits, axis=-1), training=training)
    pooled = tf.matmul(weights, values)                            # [B, C * H, Dv]
    return self._project_pooled(pooled, batch, n_queries)

  def _queries_in_key_space(self, query):
    """[B, C, Dq] -> [B, C, H, Dk]: per head h, query Wq_h Wk_h^T / sqrt(head_dim),
    which dotted with a raw key gives head h's attention logit."""
    batch, n_queries = tf.shape(query)[0], tf.shape(query)[1]
    heads, query_dim, key_dim = self.num_heads, query.shape[-1], self.key_kernel.shape[0]
    scale = tf.cast(self._head_dim, query.dtype) ** -0.5
    query_to_keys = tf.einsum("dhk,ehk->dhe", self.query_kernel, self.key_kernel) * scale
    q = tf.matmul(tf.reshape(query, [-1, query_dim]),
                  tf.reshape(query_to_keys, [query_dim, heads * key_dim]))
    return tf.reshape(q, [batch, n_queries, heads, key_dim])

  def _project_pooled(self, pooled, batch, n_queries):
    """Per (query, head) weighted sums of raw values [B, C * H, Dv] (or [B, C, H,
    Dv]) -> [B, C, Dv]: through Wv_h Wo, summed over the heads."""
    heads, value_dim = self.num_heads, self.value_kernel.shape[0]
    value_to_output = tf.einsum("ehk,hkd->hed", self.value_kernel, self.output_kernel)
    outputs = tf.matmul(tf.reshape(pooled, [-1, heads * value_dim]),
                        tf.reshape(value_to_output, [heads * value_dim, value_dim]))
    return tf.reshape(outputs, [batch, n_queries, value_dim])

  def _din(self, query, keys, values, mask, training):
    """query [B, C, D], keys [B, T, D], values [B, T, Dv] -> [B, C, Dv]."""
    q = tf.broadcast_to(query[:, :, None, :], tf.concat(
        [tf.shape(query)[:2], tf.shape(keys)[1:2], tf.shape(query)[2:]], 0))
    k = tf.broadcast_to(keys[:, None, :, :], tf.shape(q))
    hidden = tf.concat([q, k, q - k, q * k], axis=-1)  # [B, C, T, 4D]
    for layer in self._din_layers:
      hidden = layer(hidden)
    scores = hidden[..., 0] * tf.cast(mask[:, None, :], hidden.dtype)  # [B, C, T]
    scores = self._dropout_layer(scores, training=training)
    return tf.einsum("bct,btd->bcd", scores, values)

  def compute_output_shape(self, input_shape):
    shapes = [tf.TensorShape(s) for s in input_shape]
    return shapes[0][:-1].concatenate([shapes[-1][-1]])

  def get_config(self):
    config = super().get_config()
    config.update({
        "num_heads": self.num_heads,
        "key_dim": self.key_dim,
        "use_din_activation": self.use_din_activation,
        "hidden_units": list(self.hidden_units),
        "dropout": self.dropout,
    })
    return config
