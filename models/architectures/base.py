"""The parts every CTR model shares: embeddings, the short-sequence attention, the MLP
head and the Ranking task.

Candidates come as [B, C]: C = 1 when each example carries its own candidate
(training, `serving_default`), B = 1 and C = the candidates of one request when
one user's history is scored against many items (`score`). The history is
embedded once per row of B, never once per candidate.

Declared side features (models/architectures/side.py) extend this: user and
context vectors go into the MLP, item features with history values widen the
candidate and behaviour vectors (item ++ category ++ features), the other item
features go into the MLP beside the candidate. Their candidate tensors are
[B, C] ([B, C, max_values] for a categorical list) like the items'; user and
context tensors are [B] ([B, max_values]).
"""

from typing import Optional

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

from eta_ctr.config import ModelConfig
from models import features
from models.buckets import log2_bucket
from models.architectures import side as side_lib
from models.layers import TargetAttention

# Name scopes of the forward pass's stages (with the attention and MLP layers'
# own names), so that a profile reads as embed / retrieval / gather / attention / mlp.
STAGE_EMBED = "embed"
STAGE_RETRIEVAL = "retrieval"
STAGE_GATHER = "gather"


class CtrModel(tfrs.models.Model):
  """Base class; subclasses implement `long_interest`.

  Args:
    config: the model settings.
    item_vocab_size, category_vocab_size: table sizes, padding and OOV included.
    side_features: the declared side features and their table sizes
      (side.SideFeatures); None or empty: none, the model is exactly as without.
  """
  uses_long_sequence = True

  def __init__(self, config: ModelConfig, item_vocab_size: int, category_vocab_size: int,
               side_features: Optional[side_lib.SideFeatures] = None, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.side_features = side_features or side_lib.SideFeatures()
    dim = config.embedding_dim
    init = keras.initializers.RandomNormal(stddev=config.embedding_init_stddev, seed=config.seed)
    # Candidate and behaviour vectors: item ++ category ++ in_history item features.
    self.vector_dim = dim * (2 + len(self.side_features.history))
    self.side_encoder = (side_lib.SideEncoder(self.side_features, dim, init, name="side_features")
                         if self.side_features else None)
    self.item_embedding = keras.layers.Embedding(item_vocab_size, dim,
                                                 embeddings_initializer=init,
                                                 name="item_embedding")
    self.category_embedding = keras.layers.Embedding(category_vocab_size, dim,
                                                     embeddings_initializer=init,
                                                     name="category_embedding")
    # Time gaps are added to behaviours ("ETA + timeinfo"); bucket 0 is padding.
    self.time_gap_embedding = keras.layers.Embedding(config.time_gap_buckets, self.vector_dim,
                                                     embeddings_initializer="zeros",
                                                     name="time_gap_embedding")
    # User activity: log2 buckets of the history length, a user-profile feature
    # every model gets (the sequence modules alone cannot count behaviours).
    self.activity_embedding = keras.layers.Embedding(ACTIVITY_BUCKETS, 8,
                                                     embeddings_initializer=init,
                                                     name="activity_embedding")
    self.short_attention = self._attention("short_attention")
    self.mlp = keras.Sequential(
        [keras.layers.Dense(units, activation="relu") for units in config.mlp_units]
        + ([keras.layers.Dropout(config.dropout)] if config.dropout else [])
        + [keras.layers.Dense(1)], name="mlp")
    self.task = tfrs.tasks.Ranking(
        loss=keras.losses.BinaryCrossentropy(from_logits=True,
                                             reduction=keras.losses.Reduction.NONE),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc"),
                 keras.metrics.BinaryCrossentropy(from_logits=True, name="logloss")])

  def _attention(self, name):
    return TargetAttention(num_heads=self.config.num_heads,
                           use_din_activation=self.config.attention == "din", name=name)

  # -- embeddings ------------------------------------------------------------

  def history_feature_values(self, inputs, prefix: str = side_lib.CANDIDATE_PREFIX):
    """The in_history item features' tensors (side.values): the candidates' with
    prefix "", the long / short sequences' with long_ / short_."""
    return side_lib.values(self.side_features.history, inputs, prefix)

  def _item_vectors(self, items, categories, feature_values) -> tf.Tensor:
    parts = [self.item_embedding(items), self.category_embedding(categories)]
    history_specs = self.side_features.history
    if history_specs:
      if feature_values is None or len(feature_values) != len(history_specs):
        raise ValueError("this model's item vectors include the item features "
                         f"{[s.name for s in history_specs]}: pass their values")
      parts += self.side_encoder.encode_all(history_specs, feature_values)
    return tf.concat(parts, -1)

  def candidate_vectors(self, items: tf.Tensor, categories: tf.Tensor,
                        feature_values=None) -> tf.Tensor:
    """[B, C] indices -> [B, C, D] (item ++ category ++ the in_history item
    features, whose tensors `feature_values` gives: history_feature_values)."""
    with tf.name_scope(STAGE_EMBED):
      return self._item_vectors(items, categories, feature_values)

  def behaviour_vectors(self, items, categories, time_gaps, feature_values=None) -> tf.Tensor:
    """[B, T] indices -> [B, T, D]: item ++ category ++ in_history item features
    (the behaviours' own values), plus the time-gap embedding (unless time_gaps
    is None)."""
    with tf.name_scope(STAGE_EMBED):
      vectors = self._item_vectors(items, categories, feature_values)
      return vectors if time_gaps is None else vectors + self.time_gap_embedding(time_gaps)

  def long_behaviour_vectors(self, items, categories, time_gaps,
                             feature_values=None) -> tf.Tensor:
    """behaviour_vectors of the long sequence: with their time gaps only if
    ModelConfig.long_time_gaps."""
    return self.behaviour_vectors(items, categories,
                                  time_gaps if self.config.long_time_gaps else None,
                                  feature_values)

  def side_mlp_inputs(self, inputs, candidates: tf.Tensor) -> list:
    """[B, C, .] MLP inputs of the side features that are not in the candidate
    vector: the candidates' item features without history values, then the user
    and context features (once per row of B, broadcast to its candidates)."""
    side = self.side_features
    if not side:
      return []
    parts = []
    with tf.name_scope(STAGE_EMBED):
      parts += self.side_encoder.encode_all(side.candidate_only,
                                            side_lib.values(side.candidate_only, inputs))
      shape = tf.shape(candidates)[:2]
      for vector in self.side_encoder.encode_all(side.request,
                                                 side_lib.values(side.request, inputs)):
        vector = tf.reshape(vector, [-1, vector.shape[-1]])         # [B, d]
        parts.append(tf.broadcast_to(vector[:, None, :],
                                     tf.concat([shape, [vector.shape[-1]]], 0)))
    return parts

  # -- the forward pass ------------------------------------------------------

  def long_interest(self, inputs, candidates: tf.Tensor, training: bool) -> tf.Tensor:
    """[B, C, F] features of the long sequence for each candidate."""
    raise NotImplementedError

  def candidate_logits(self, inputs, training: bool = False, retrieval=None) -> tf.Tensor:
    """Logits [B, C] for candidate features [B, C] and history features [B, T].

    retrieval: for a model that retrieves (ETA: `retrieve`), its result on these
    inputs when the caller needs it too (`score` returns it), so that it is
    computed once; None: the model retrieves itself. Models that do not
    retrieve take no retrieval (TypeError).
    """
    items, categories = inputs[features.ITEM], inputs[features.CATEGORY]
    candidates = self.candidate_vectors(items, categories, self.history_feature_values(inputs))
    short_items = inputs[features.SHORT_ITEMS]
    short = self.behaviour_vectors(short_items, inputs[features.SHORT_CATEGORIES],
                                   inputs[features.SHORT_TIME_GAPS],
                                   self.history_feature_values(inputs, side_lib.SHORT_PREFIX))
    parts = [candidates] + self.side_mlp_inputs(inputs, candidates)
    if self.config.activity_feature:
      with tf.name_scope(STAGE_EMBED):
        activity = self.activity_embedding(activity_bucket(inputs[features.LONG_LENGTH]))
      parts.append(tf.broadcast_to(activity[:, None, :], tf.concat(
          [tf.shape(candidates)[:2], [activity.shape[-1]]], 0)))
    parts.append(self.short_attention([candidates, short], behaviour_mask=short_items > 0,
                                      training=training))
    if self.uses_long_sequence:
      reuse = {} if retrieval is None else {"retrieval": retrieval}
      parts.append(self.long_interest(inputs, candidates, training, **reuse))
    return tf.squeeze(self.mlp(tf.concat(parts, -1), training=training), -1)

  def per_candidate(self, inputs):
    """Transformed features of one candidate per example -> candidate_logits'
    inputs: the candidate's tensors get a candidate axis of 1 ([B] -> [B, 1],
    a categorical list's [B, M] -> [B, 1, M])."""
    result = dict(inputs)
    for name in (features.ITEM, features.CATEGORY):
      result[name] = tf.reshape(inputs[name], [-1, 1])
    for spec in self.side_features.items:
      for name in side_lib.tensor_names(spec):
        result[name] = tf.expand_dims(inputs[name], 1)
    return result

  def call(self, inputs, training=False):
    """Logits [B] for one candidate per example (the transformed features)."""
    return self.candidate_logits(self.per_candidate(inputs), training)[:, 0]

  def compute_loss(self, inputs, training=False):
    logits = self(inputs, training=training)
    labels = tf.cast(tf.reshape(inputs[features.LABEL], [-1]), tf.float32)
    # [B, 1] keeps one loss per example; average over the global batch, so the
    # loss is right under any tf.distribute strategy.
    return tf.nn.compute_average_loss(
        self.task(labels=labels[:, None], predictions=logits[:, None]))


ACTIVITY_BUCKETS = 16


def activity_bucket(lengths: tf.Tensor) -> tf.Tensor:
  """[B] history lengths -> [B] floor(log2(1 + length)), clipped to the bucket count."""
  lengths = tf.reshape(lengths, [-1])
  return tf.cast(log2_bucket(lengths, 1, ACTIVITY_BUCKETS - 1), tf.int32)


def long_mask(inputs) -> tf.Tensor:
  """[B, L] bool, True for real behaviours of the long sequence."""
  return inputs[features.LONG_ITEMS] > 0


def embeds_retrieved_only(inputs, indices: tf.Tensor) -> bool:
  """Whether the retrieved behaviours (indices [B, C, k]) are embedded on their own
  (few candidates per history: C * k < L, statically known) rather than gathered
  from the whole history, embedded once (many candidates share it: `score`)."""
  n_candidates, k = indices.shape[1], indices.shape[2]
  length = inputs[features.LONG_ITEMS].shape[1]
  return None not in (n_candidates, k, length) and n_candidates * k < length


def retrieved_behaviours(model: CtrModel, inputs, indices: tf.Tensor) -> tf.Tensor:
  """[B, C, k, D] embeddings of the behaviours at `indices` [B, C, k] of the long sequence.

  With few candidates per history (training and per-example scoring: C * k < L)
  only the k retrieved behaviours are embedded, so the other L - k cost nothing,
  forward or backward. With many candidates sharing one history (`score`) the
  history is embedded once and the rows are gathered. Both give the same tensor
  (embeds_retrieved_only says which).
  """
  if embeds_retrieved_only(inputs, indices):
    def pick(name):
      with tf.name_scope(STAGE_GATHER):
        return tf.gather(inputs[name], indices, batch_dims=1)
    feature_values = tuple(tuple(pick(name) for name in side_lib.tensor_names(
        spec, side_lib.LONG_PREFIX)) for spec in model.side_features.history)
    return model.long_behaviour_vectors(pick(features.LONG_ITEMS),
                                        pick(features.LONG_CATEGORIES),
                                        pick(features.LONG_TIME_GAPS), feature_values)
  with tf.name_scope(STAGE_GATHER):
    return tf.gather(long_behaviours(model, inputs), indices, batch_dims=1)


def long_behaviours(model: CtrModel, inputs) -> tf.Tensor:
  """[B, L, D] vectors of the whole long sequence."""
  return model.long_behaviour_vectors(inputs[features.LONG_ITEMS],
                                      inputs[features.LONG_CATEGORIES],
                                      inputs[features.LONG_TIME_GAPS],
                                      model.history_feature_values(inputs,
                                                                   side_lib.LONG_PREFIX))


def long_summary(model: CtrModel, inputs, candidates: tf.Tensor) -> tf.Tensor:
  """The masked mean of the long sequence [B, L, D], once per history, broadcast to
  the candidates [B, C, .] -> [B, C, D]; zeros for an empty history."""
  mask = tf.cast(long_mask(inputs), tf.float32)[..., None]        # [B, L, 1]
  total = tf.reduce_sum(long_behaviours(model, inputs) * mask, 1)  # [B, D]
  mean = total / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
  return tf.broadcast_to(mean[:, None, :],
                         tf.concat([tf.shape(candidates)[:2], [mean.shape[-1]]], 0))


def attend_retrieved(attention, candidates, retrieved, valid, training):
  """Target attention of each candidate over its own retrieved behaviours.

  Args:
    candidates: [B, C, D]; retrieved: [B, C, k, D]; valid: [B, C, k].
  Returns [B, C, D].
  """
  shape = tf.shape(retrieved)
  batch, n_candidates, k, dim = shape[0], shape[1], shape[2], candidates.shape[-1]
  attended = attention(
      [tf.reshape(candidates, [-1, dim]), tf.reshape(retrieved, [-1, k, dim])],
      behaviour_mask=tf.reshape(valid, [-1, k]), training=training)
  return tf.reshape(attended, [batch, n_candidates, attended.shape[-1]])
