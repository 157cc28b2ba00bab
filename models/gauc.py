"""GAUC (group AUC), the one definition used offline (models.evaluation) and in the
TFMA Evaluator (pipeline.gauc_metric). NumPy only, so both can import it cheaply."""

from typing import Optional

import numpy as np


def group_auc(users, labels, scores, weights: Optional[np.ndarray] = None) -> float:
  """GAUC: sum_u w_u * AUC_u / sum_u w_u over the users that have both labels.

  AUC_u is the ROC AUC of user u's examples, with ties counting 1/2 (as in
  sklearn.metrics.roc_auc_score; with weights, its sample_weight AUC), and w_u is
  u's number of examples, or their summed weight when `weights` is given. Users
  whose examples are all clicks or all non-clicks have no AUC and are left out of
  both sums. Labels > 0 count as clicks. The input order does not matter.

  Args:
    users: [N] user ids (any sortable values: bytes, str, ints).
    labels: [N] labels.
    scores: [N] predicted scores (any monotone scale: logits or probabilities).
    weights: [N] example weights; None weighs every example 1.

  Returns:
    The GAUC, or NaN when no user has both labels.
  """
  labels = np.asarray(labels).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64).reshape(-1)
  weight = (np.ones(len(labels)) if weights is None
            else np.asarray(weights, dtype=np.float64).reshape(-1))
  if len(labels) == 0:
    return float("nan")
  _, user = np.unique(np.asarray(users).reshape(-1), return_inverse=True)
  user = user.reshape(-1)
  num_users = int(user.max()) + 1
  pos_weight = np.where(labels > 0, weight, 0.0)
  neg_weight = np.where(labels > 0, 0.0, weight)

  # Sort by user, then score; runs of equal (user, score) are tie groups.
  order = np.lexsort((scores, user))
  user, score = user[order], scores[order]
  pos_weight, neg_weight = pos_weight[order], neg_weight[order]
  starts = np.ones(len(user), dtype=bool)
  starts[1:] = (user[1:] != user[:-1]) | (score[1:] != score[:-1])
  group = np.cumsum(starts) - 1
  group_user = user[starts]
  group_pos = np.bincount(group, pos_weight)
  group_neg = np.bincount(group, neg_weight)

  user_pos = np.bincount(group_user, group_pos, minlength=num_users)
  user_neg = np.bincount(group_user, group_neg, minlength=num_users)
  # Negative weight scored strictly below each group, within its own user.
  neg_before_user = np.concatenate([[0.0], np.cumsum(user_neg)[:-1]])
  neg_below = np.cumsum(group_neg) - group_neg - neg_before_user[group_user]
  # Mann-Whitney: a positive beats the negatives below it, ties count half.
  wins = np.bincount(group_user, group_pos * (neg_below + 0.5 * group_neg),
                     minlength=num_users)

  both = (user_pos > 0) & (user_neg > 0)
  if not both.any():
    return float("nan")
  auc = wins[both] / (user_pos[both] * user_neg[both])
  user_weight = user_pos[both] + user_neg[both]
  return float(np.sum(user_weight * auc) / np.sum(user_weight))
