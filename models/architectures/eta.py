"""ETA: SimHash + Hamming top-k retrieval from the long sequence, then target attention.

Retrieval uses the embeddings the model is training, hashed afresh at every step,
so retrieval and CTR model are one end-to-end model. The projection is fixed; no
gradient flows through the selection, only through the attention over the
retrieved behaviours.

What is hashed is the item's representation: by default item ++ category
embedding (ModelConfig.hash_category), as the paper's item embedding and
FuxiCTR's ETA do; a category-blind item-id hash retrieves behaviours of the
candidate's category barely above the history's base rate (docs/eta_diagnosis.md).
The code of item i in category c is sign(e_i · R_item + e_c · R_category) with
R = [R_item; R_category] the SimHash projection [2d, m]: the two partial
projections are computed (and, at export, precomputed per vocabulary entry)
separately, then added, in training and in serving alike.

Declared item features with history values (side.SideFeatures.history) are part
of the item's representation too (item ++ category ++ features, the candidate
and behaviour vectors the attention sees), so with hash_category they are
hashed with it: each adds its partial projection (rows 2d + j*d ... of R). At
export a categorical feature's partial projections are precomputed per
vocabulary entry like the categories'; a numeric one's, Dense([z, missing]) R,
is two multiply-adds per behaviour and is computed on the fly. Item features
without history values cannot be hashed (behaviours have none); the category-
blind hash (hash_category=False) hashes the item id alone, as before.
"""

import tensorflow as tf

from components import side_features
from eta_ctr.config import KERNEL_STOCK
from models import features
from models.architectures import side as side_lib
from models.architectures.base import (STAGE_RETRIEVAL, CtrModel, attend_retrieved,
                                       embeds_retrieved_only, long_behaviours, long_mask,
                                       long_summary, retrieved_behaviours)
from models.layers import HammingTopK, SimHash
from models.layers.kernels import fused_ops


class EtaModel(CtrModel):
  """Long interest = attention over the k behaviours nearest in Hamming distance."""

  def __init__(self, config, item_vocab_size, category_vocab_size, **kwargs):
    super().__init__(config, item_vocab_size, category_vocab_size, **kwargs)
    # The in_history item features hashed with the item (hash_category only).
    self.hashed_features = self.side_features.history if config.hash_category else ()
    self.simhash = SimHash(num_bits=config.hash_bits, seed=config.seed, name="simhash")
    self.top_k = HammingTopK(config.top_k, kernel=config.retrieval_kernel, name="hamming_top_k")
    self.long_attention = self._attention("long_attention")
    # Set by freeze_item_codes() at export, so that serving looks up instead of
    # hashing: hash_category=False: [V, W] int64 codes of every item (8 bytes per
    # item per 64 bits); True: [V, m] and [V_category, m] float32 partial
    # projections (4 * m bytes per item), added per (item, category) pair.
    self.item_codes_table = None
    self.item_projection_table = None
    self.category_projection_table = None
    # {categorical hashed feature: [V_feature, m] partial projections}, frozen.
    self.feature_projection_tables = {}

  @property
  def hashed_dim(self) -> int:
    """Size of the hashed vector: d (item), 2d (item ++ category) or, with
    in_history item features, 2d + d per feature."""
    if not self.config.hash_category:
      return self.config.embedding_dim
    return self.config.embedding_dim * (2 + len(self.hashed_features))

  def _feature_offset(self, position: int) -> int:
    """First projection row of the position-th hashed item feature."""
    return self.config.embedding_dim * (2 + position)

  def _project(self, embeddings: tf.Tensor, offset: int) -> tf.Tensor:
    """[N, d] -> [N, m]: embeddings times rows offset..offset+d of the projection."""
    if not self.simhash.built:
      self.simhash.build(tf.TensorShape([None, self.hashed_dim]))
    rows = self.simhash.projection[offset:offset + embeddings.shape[-1]]
    return tf.matmul(embeddings, rows)

  def _projections(self, table, embedding, indices, offset):
    """[N] indices -> [N, m] partial projections (looked up once frozen)."""
    if table is not None:
      return tf.gather(table, indices)
    # Each distinct index is projected once: a batch of histories repeats items a
    # lot, and projecting B * L embeddings is most of retrieval's cost in training.
    distinct, position = tf.unique(indices)
    return tf.gather(self._project(embedding(distinct), offset), position)

  @property
  def frozen(self) -> bool:
    """Whether freeze_item_codes() has run."""
    return self.item_codes_table is not None or self.item_projection_table is not None

  def freeze_item_codes(self):
    """Precomputes what serving needs of every vocabulary item (and category): codes,
    or partial projections with hash_category. Training after this would use
    stale codes."""
    items = self.item_embedding.embeddings
    if not self.config.hash_category:
      self.item_codes_table = tf.Variable(
          self.simhash.codes_from_projection(self._project(items, 0)), trainable=False,
          name="item_codes")
      return
    self.item_projection_table = tf.Variable(self._project(items, 0), trainable=False,
                                             name="item_projections")
    self.category_projection_table = tf.Variable(
        self._project(self.category_embedding.embeddings, self.config.embedding_dim),
        trainable=False, name="category_projections")
    tables = {}
    for position, spec in enumerate(self.hashed_features):
      if spec.kind != side_features.NUMERIC:
        embedding = self.side_encoder.encoders[spec.name]
        if not embedding.built:
          embedding.build(tf.TensorShape([None]))
        tables[spec.name] = tf.Variable(
            self._project(embedding.embeddings, self._feature_offset(position)),
            trainable=False, name=f"{spec.name}_projections")
    self.feature_projection_tables = tables

  def item_codes(self, item_indices: tf.Tensor, category_indices: tf.Tensor,
                 feature_values=None) -> tf.Tensor:
    """[...] item and category indices -> [..., W] int64 SimHash codes of their
    current representations (see the module docstring). feature_values: the
    in_history item features' tensors of the same shape (history_feature_values
    order), needed when the model hashes them."""
    shape = tf.concat([tf.shape(item_indices), [self.simhash.num_words]], 0)
    items = tf.reshape(item_indices, [-1])
    if self.item_codes_table is not None:
      return tf.reshape(tf.gather(self.item_codes_table, items), shape)
    projected = self._projections(self.item_projection_table, self.item_embedding, items, 0)
    if self.config.hash_category:
      projected += self._projections(self.category_projection_table, self.category_embedding,
                                     tf.reshape(category_indices, [-1]),
                                     self.config.embedding_dim)
    if self.hashed_features:
      if feature_values is None or len(feature_values) != len(self.hashed_features):
        raise ValueError("this ETA hashes the item features "
                         f"{[s.name for s in self.hashed_features]}: pass their values")
      for position, (spec, tensors) in enumerate(zip(self.hashed_features, feature_values)):
        offset = self._feature_offset(position)
        encoder = self.side_encoder.encoders[spec.name]
        if spec.kind == side_features.NUMERIC:
          vectors = self.side_encoder.encode(spec, [tf.reshape(t, [-1]) for t in tensors])
          projected += self._project(vectors, offset)
        else:
          projected += self._projections(self.feature_projection_tables.get(spec.name),
                                         encoder, tf.reshape(tensors[0], [-1]), offset)
    return tf.reshape(self.simhash.codes_from_projection(projected), shape)

  def retrieve(self, inputs):
    """(indices, distances, valid), each [B, C, k]: the behaviours each candidate attends to."""
    with tf.name_scope(STAGE_RETRIEVAL):
      candidates, history = inputs[features.ITEM], inputs[features.LONG_ITEMS]
      # One lookup for candidates and history together, so items in both hash once.
      feature_values = None
      if self.hashed_features:
        feature_values = tuple(
            tuple(tf.concat([c, h], axis=1) for c, h in zip(candidate, behaviour))
            for candidate, behaviour in zip(
                side_lib.values(self.hashed_features, inputs),
                side_lib.values(self.hashed_features, inputs, side_lib.LONG_PREFIX)))
      codes = self.item_codes(
          tf.concat([candidates, history], axis=1),
          tf.concat([inputs[features.CATEGORY], inputs[features.LONG_CATEGORIES]], axis=1),
          feature_values)
      n_candidates = tf.shape(candidates)[1]
      candidate_codes, behaviour_codes = codes[:, :n_candidates], codes[:, n_candidates:]
      return self.top_k([candidate_codes, behaviour_codes], behaviour_mask=long_mask(inputs))

  def long_interest(self, inputs, candidates, training, retrieval=None):
    """[B, C, D]: attention over the retrieved behaviours. retrieval: `retrieve(inputs)`
    if the caller has it.

    Training (and per-example inference, C * k < L) embeds the k retrieved
    behaviours and runs the attention layer on them. Inference with many
    candidates per history (`score`) embeds the history once and attends through
    TargetAttention.attend_gathered, which equals that to float rounding; with
    the fused kernels (retrieval_kernel `auto` where they build, or `fused`; the
    one setting governs both fused ops) its gather and attention are one op.
    """
    indices, _, valid = self.retrieve(inputs) if retrieval is None else retrieval
    inference = training is None or training is False
    if inference and not embeds_retrieved_only(inputs, indices):
      fused = None if self.top_k.kernel == KERNEL_STOCK else fused_ops.load()
      return self.long_attention.attend_gathered(candidates, long_behaviours(self, inputs),
                                                 indices, valid, fused_op=fused)
    return attend_retrieved(self.long_attention, candidates,
                            retrieved_behaviours(self, inputs, indices), valid, training)


class EtaSummaryModel(EtaModel):
  """ETA plus a candidate-independent summary of all L behaviours (beyond the paper).

  Top-k retrieval keeps what resembles the candidate and loses the user's
  aggregate taste, which on MovieLens alone (`avg_pool`) is worth more than the
  retrieval. The summary is the masked mean of the L behaviour vectors, computed
  once per history, O(L * d), and shared by every candidate of a request; it goes
  beside the retrieved-attention output: [B, C, 2D] (attention ++ summary).
  """

  def long_interest(self, inputs, candidates, training, retrieval=None):
    retrieved = super().long_interest(inputs, candidates, training, retrieval)
    return tf.concat([retrieved, long_summary(self, inputs, candidates)], -1)
