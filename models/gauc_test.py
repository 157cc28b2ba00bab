"""models.gauc.group_auc, the GAUC of `eta compare` and of the TFMA Evaluator, against
a per-user sklearn computation."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models import evaluation
from models.gauc import group_auc
from pipeline import gauc_metric


def _reference(users, labels, scores, weights=None):
  weights = np.ones(len(labels)) if weights is None else weights
  total = norm = 0.0
  for user in sorted(set(users)):
    mask = users == user
    if len(set(labels[mask])) < 2:
      continue
    total += weights[mask].sum() * roc_auc_score(labels[mask], scores[mask],
                                                 sample_weight=weights[mask])
    norm += weights[mask].sum()
  return total / norm if norm else float("nan")


def test_one_definition_for_offline_and_tfma():
  assert evaluation.group_auc is group_auc
  assert gauc_metric.group_auc is group_auc


@pytest.mark.parametrize("weighted", [False, True])
def test_matches_sklearn_per_user_with_ties_and_one_class_users(weighted):
  rng = np.random.default_rng(7)
  n = 300
  users = np.array([f"u{i}".encode() for i in rng.integers(0, 15, n)], dtype=object)
  labels = rng.integers(0, 2, n)
  scores = np.round(rng.random(n), 1)  # coarse: ties within users
  users[:5], labels[:5] = b"only_clicks", 1
  weights = rng.uniform(0.5, 3.0, n) if weighted else None
  got = group_auc(users, labels, scores, weights)
  # Both sides in float64; only summation order differs.
  assert got == pytest.approx(_reference(users, labels, scores, weights), abs=1e-12)
  order = rng.permutation(n)
  again = group_auc(users[order], labels[order], scores[order],
                    None if weights is None else weights[order])
  assert again == pytest.approx(got, abs=1e-12)


def test_nan_without_a_user_having_both_labels():
  assert math.isnan(group_auc(np.array(["a", "a", "b"]), np.array([1, 1, 0]),
                              np.array([0.1, 0.2, 0.3])))
  assert math.isnan(group_auc(np.array([], dtype=object), np.array([]), np.array([])))
