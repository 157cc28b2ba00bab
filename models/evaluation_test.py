"""GAUC against a direct computation; retrieval shares by hand."""

import numpy as np
import tensorflow as tf
from sklearn.metrics import roc_auc_score

from models import features
from models.evaluation import group_auc, retrieval_category_counts


def test_group_auc_weights_users_by_impressions_and_skips_one_class_users():
  users = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 3)
  labels = np.array([1, 0, 1, 0, 1, 0, 1, 1, 1])
  scores = np.array([0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.5, 0.5, 0.5])
  expected = (4 * roc_auc_score(labels[:4], scores[:4]) + 2 * 0.0) / 6
  rng = np.random.default_rng(0)
  order = rng.permutation(len(users))  # input order must not matter
  assert np.isclose(group_auc(users[order], labels[order], scores[order]), expected)


class _FixedRetrieval:
  """Retrieves history positions 0 and 2 of every example, the second one invalid."""

  def retrieve(self, inputs):
    rows = inputs["item_idx"].shape[0]
    indices = tf.constant([[[0, 2]]] * rows, tf.int32)
    valid = tf.constant([[[True, False]]] * rows)
    return indices, valid


def test_retrieval_category_counts_only_long_histories_and_valid_slots():
  batch = {
      features.ITEM: tf.constant([1, 1, 1], tf.int64),
      features.CATEGORY: tf.constant([3, 4, 3], tf.int64),
      features.LONG_CATEGORIES: tf.constant([[3, 5, 3, 0], [5, 4, 4, 4], [3, 0, 0, 0]],
                                            tf.int64),
      features.LONG_LENGTH: tf.constant([3, 4, 1], tf.int64),
  }
  # k = 1: rows 0 and 1 have longer histories, row 2 does not.
  counts = retrieval_category_counts(_FixedRetrieval(), batch, top_k=1)
  # retrieved (valid): rows 0, 1 -> 2; same category: row 0 (3 == 3) -> 1;
  # history: 3 + 4 = 7 behaviours; same category: 2 (row 0) + 3 (row 1) = 5.
  np.testing.assert_array_equal(counts, [2, 1, 7, 5])
  assert not retrieval_category_counts(object(), batch, top_k=1).any()
