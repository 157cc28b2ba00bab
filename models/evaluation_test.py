"""GAUC against a direct computation."""

import numpy as np
from sklearn.metrics import roc_auc_score

from models.evaluation import group_auc


def test_group_auc_weights_users_by_impressions_and_skips_one_class_users():
  users = np.array(["a"] * 4 + ["b"] * 2 + ["c"] * 3)
  labels = np.array([1, 0, 1, 0, 1, 0, 1, 1, 1])
  scores = np.array([0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.5, 0.5, 0.5])
  expected = (4 * roc_auc_score(labels[:4], scores[:4]) + 2 * 0.0) / 6
  rng = np.random.default_rng(0)
  order = rng.permutation(len(users))  # input order must not matter
  assert np.isclose(group_auc(users[order], labels[order], scores[order]), expected)
