"""ETA: SimHash + Hamming top-k retrieval from the long sequence, then target attention.

Retrieval uses the item embeddings the model is training, hashed afresh at every
step, so retrieval and CTR model are one end-to-end model. The projection is
fixed; no gradient flows through the selection, only through the attention over
the retrieved behaviours.
"""

import tensorflow as tf

from models import features
from models.architectures.base import (CtrModel, attend_retrieved, long_mask,
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
    return self.simhash(self.item_embedding(item_indices))

  def retrieve(self, inputs):
    """(indices, distances, valid), each [B, C, k]: the behaviours each candidate attends to."""
    candidate_codes = self.item_codes(inputs[features.ITEM])       # [B, C, W]
    behaviour_codes = self.item_codes(inputs[features.LONG_ITEMS])  # [B, L, W]
    return self.top_k([candidate_codes, behaviour_codes], behaviour_mask=long_mask(inputs))

  def long_interest(self, inputs, candidates, training):
    indices, _, valid = self.retrieve(inputs)
    return attend_retrieved(self.long_attention, candidates,
                            retrieved_behaviours(self, inputs, indices), valid, training)
