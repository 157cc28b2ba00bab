"""ETA: SimHash + Hamming top-k retrieval from the long sequence, then target attention.

Retrieval uses the item embeddings the model is training, hashed afresh at every
step, so retrieval and CTR model are one end-to-end model. The projection is
fixed; no gradient flows through the selection, only through the attention over
the retrieved behaviours.
"""

import tensorflow as tf

from models import features
from models.architectures.base import (STAGE_RETRIEVAL, CtrModel, attend_retrieved, long_mask,
                                       retrieved_behaviours)
from models.layers import HammingTopK, SimHash


class EtaModel(CtrModel):
  """Long interest = attention over the k behaviours nearest in Hamming distance."""

  def __init__(self, config, item_vocab_size, category_vocab_size, **kwargs):
    super().__init__(config, item_vocab_size, category_vocab_size, **kwargs)
    self.simhash = SimHash(num_bits=config.hash_bits, seed=config.seed, name="simhash")
    self.top_k = HammingTopK(config.top_k, kernel=config.retrieval_kernel, name="hamming_top_k")
    self.long_attention = self._attention("long_attention")
    self.item_codes_table = None  # [V, W] int64, set by freeze_item_codes() at export

  def freeze_item_codes(self):
    """Precomputes every vocabulary item's code; serving then looks codes up."""
    table = self.item_embedding.embeddings
    self.item_codes_table = tf.Variable(self.simhash(table), trainable=False,
                                        name="item_codes")

  def item_codes(self, item_indices: tf.Tensor) -> tf.Tensor:
    """[...] item indices -> [..., W] SimHash codes of their current embeddings."""
    if self.item_codes_table is not None:
      return tf.gather(self.item_codes_table, item_indices)
    # Each distinct item is hashed once: a batch of histories repeats items a
    # lot, and hashing B * L embeddings is most of retrieval's cost in training.
    distinct, position = tf.unique(tf.reshape(item_indices, [-1]))
    codes = tf.gather(self.simhash(self.item_embedding(distinct)), position)
    return tf.reshape(codes, tf.concat([tf.shape(item_indices), [self.simhash.num_words]], 0))

  def retrieve(self, inputs):
    """(indices, distances, valid), each [B, C, k]: the behaviours each candidate attends to."""
    with tf.name_scope(STAGE_RETRIEVAL):
      candidates, history = inputs[features.ITEM], inputs[features.LONG_ITEMS]
      # One lookup for candidates and history together, so items in both hash once.
      codes = self.item_codes(tf.concat([candidates, history], axis=1))  # [B, C + L, W]
      n_candidates = tf.shape(candidates)[1]
      candidate_codes, behaviour_codes = codes[:, :n_candidates], codes[:, n_candidates:]
      return self.top_k([candidate_codes, behaviour_codes], behaviour_mask=long_mask(inputs))

  def long_interest(self, inputs, candidates, training):
    indices, _, valid = self.retrieve(inputs)
    return attend_retrieved(self.long_attention, candidates,
                            retrieved_behaviours(self, inputs, indices), valid, training)
