"""The baselines ETA is compared with; each differs from ETA only in its long-sequence part.

  avg_pool  mean of the long sequence
  din       no long sequence: attention over the short sequence only (DIN)
  din_long  full target attention over all L behaviours: the quality bound and cost reference
  sim_hard  the k most recent behaviours in the candidate's category, then attention (SIM hard)
  sdim      SimHash bucket-collision sampling (Cao et al. 2022)

Declared side features reach every baseline through CtrModel (base.py): the
behaviour vectors they attend to or average carry the in_history item features.
SIM hard still retrieves by category, and SDIM still hashes the item embedding
alone (its buckets), summing the full behaviour vectors.
"""

import tensorflow as tf

from models import features
from models.architectures.base import (CtrModel, attend_retrieved, long_behaviours,
                                       long_mask, long_summary, retrieved_behaviours)
from models.layers import SimHash


class AvgPoolModel(CtrModel):
  """Long interest = the masked mean of the long sequence (candidate-independent)."""

  def long_interest(self, inputs, candidates, training):
    return long_summary(self, inputs, candidates)


class DinModel(CtrModel):
  """DIN: attention over the short sequence only."""
  uses_long_sequence = False


class DinLongModel(CtrModel):
  """Target attention over all L behaviours."""

  def __init__(self, config, item_vocab_size, category_vocab_size, **kwargs):
    super().__init__(config, item_vocab_size, category_vocab_size, **kwargs)
    self.long_attention = self._attention("long_attention")

  def long_interest(self, inputs, candidates, training):
    return self.long_attention([candidates, long_behaviours(self, inputs)],
                               behaviour_mask=long_mask(inputs), training=training)


class SimHardModel(CtrModel):
  """SIM (hard search): the k most recent behaviours sharing the candidate's category."""

  def __init__(self, config, item_vocab_size, category_vocab_size, **kwargs):
    super().__init__(config, item_vocab_size, category_vocab_size, **kwargs)
    self.long_attention = self._attention("long_attention")

  def retrieve(self, inputs):
    """(indices, valid), each [B, C, k]: most recent same-category behaviours first."""
    same = tf.equal(inputs[features.LONG_CATEGORIES][:, None, :],
                    inputs[features.CATEGORY][:, :, None]) & long_mask(inputs)[:, None, :]
    length = tf.shape(same)[-1]
    positions = tf.range(length)
    # Matching behaviours sort by position (recency); the rest after them.
    key = tf.where(same, positions, positions + length)
    k = tf.minimum(self.config.top_k, length)
    _, indices = tf.math.top_k(-key, k=k)
    valid = tf.gather(same, indices, batch_dims=2)
    return tf.stop_gradient(indices), tf.stop_gradient(valid)

  def long_interest(self, inputs, candidates, training):
    indices, valid = self.retrieve(inputs)
    return attend_retrieved(self.long_attention, candidates,
                            retrieved_behaviours(self, inputs, indices), valid, training)


class SdimModel(CtrModel):
  """SDIM: behaviours whose tau-bit SimHash bucket collides with the candidate's, over m
  hash rounds, are summed and L2-normalised per round; the rounds are averaged."""

  def __init__(self, config, item_vocab_size, category_vocab_size, **kwargs):
    super().__init__(config, item_vocab_size, category_vocab_size, **kwargs)
    self.rounds, self.bits_per_round = config.sdim_hash_rounds, config.sdim_bits_per_round
    self.simhash = SimHash(num_bits=self.rounds * self.bits_per_round, seed=config.seed,
                           name="sdim_simhash")

  def _buckets(self, item_embeddings):
    """[..., d] -> [..., m] bucket ids of the m hash rounds."""
    bits = tf.cast(self.simhash.bits(item_embeddings), tf.int32)
    bits = tf.reshape(bits, tf.concat([tf.shape(bits)[:-1],
                                       [self.rounds, self.bits_per_round]], 0))
    return tf.reduce_sum(bits * (2 ** tf.range(self.bits_per_round)), -1)

  def long_interest(self, inputs, candidates, training):
    candidate_buckets = self._buckets(self.item_embedding(inputs[features.ITEM]))  # [B,C,m]
    behaviour_buckets = self._buckets(self.item_embedding(inputs[features.LONG_ITEMS]))
    collide = tf.equal(candidate_buckets[:, :, None, :], behaviour_buckets[:, None, :, :])
    collide &= long_mask(inputs)[:, None, :, None]                  # [B, C, L, m]
    sums = tf.einsum("bclm,bld->bcmd", tf.cast(collide, tf.float32),
                     long_behaviours(self, inputs))
    return tf.reduce_mean(tf.math.l2_normalize(sums, axis=-1), axis=2)  # [B, C, D]
