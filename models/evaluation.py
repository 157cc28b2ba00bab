"""Offline metrics of a trained model on transformed eval examples: AUC, GAUC, logloss,
logloss over the base rate and calibration (the blessing's definitions), and for
retrieval models (ETA, SIM) what the retrieval keeps."""

from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from sklearn import metrics as sk_metrics

from models import base_rate, data, features
from models.gauc import group_auc


def retrieval_category_counts(model, batch, top_k: int) -> np.ndarray:
  """[4] counts over the examples whose history is longer than k: retrieved
  behaviours, those in the candidate's category, history behaviours, those in the
  candidate's category. Zeros for a model without `retrieve` (ETA, SIM hard)."""
  if not hasattr(model, "retrieve"):
    return np.zeros(4)
  if hasattr(model, "per_candidate"):  # the side features' candidate tensors too
    per_candidate = model.per_candidate(batch)
  else:
    per_candidate = dict(batch, **{name: tf.reshape(batch[name], [-1, 1])
                                   for name in (features.ITEM, features.CATEGORY)})
  retrieved = model.retrieve(per_candidate)
  indices, valid = retrieved[0].numpy()[:, 0], retrieved[-1].numpy()[:, 0]   # [B, k]
  history = batch[features.LONG_CATEGORIES].numpy()                           # [B, L]
  candidate = batch[features.CATEGORY].numpy().reshape(-1, 1)
  long_rows = batch[features.LONG_LENGTH].numpy().reshape(-1) > top_k
  same_retrieved = (np.take_along_axis(history, indices, 1) == candidate) & valid
  in_history = history > 0
  return np.array([valid[long_rows].sum(), same_retrieved[long_rows].sum(),
                   in_history[long_rows].sum(),
                   ((history == candidate) & in_history)[long_rows].sum()], np.float64)


def evaluate(model, eval_files, tf_transform_output: tft.TFTransformOutput,
             top_k: int) -> Dict[str, float]:
  """auc, gauc, logloss, logloss_over_base_rate, calibration, examples, the share
  of examples whose history is longer than k, and for retrieval models, over those
  examples: retrieved_same_category (share of the retrieved behaviours in the
  candidate's category) and history_same_category (the same share over the whole
  history: what a random choice would get)."""
  dataset = data.transformed_dataset(eval_files, tf_transform_output, 1024, shuffle=False,
                                     num_epochs=1, keep=(features.USER_ID,))
  users, labels, logits, lengths = [], [], [], []
  counts = np.zeros(4)
  for batch in dataset:
    logits.append(model(batch).numpy())
    counts += retrieval_category_counts(model, batch, top_k)
    users.append(batch[features.USER_ID].numpy().reshape(-1))
    labels.append(batch[features.LABEL].numpy().reshape(-1))
    lengths.append(batch[features.LONG_LENGTH].numpy().reshape(-1))
  users, labels = np.concatenate(users), np.concatenate(labels).astype(np.float64)
  logits, lengths = np.concatenate(logits), np.concatenate(lengths)
  probabilities = 1.0 / (1.0 + np.exp(-logits))
  shares = {}
  if hasattr(model, "retrieve"):
    shares = {"retrieved_same_category": float(counts[1] / max(counts[0], 1)),
              "history_same_category": float(counts[3] / max(counts[2], 1))}
  return {
      **shares,
      "auc": float(sk_metrics.roc_auc_score(labels, probabilities)),
      "gauc": float(group_auc(users, labels, probabilities)),
      "logloss": float(sk_metrics.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7))),
      "logloss_over_base_rate": base_rate.logloss_over_base_rate(labels, probabilities),
      "calibration": base_rate.calibration(labels, probabilities),
      "examples": int(len(labels)),
      "history_longer_than_k": float(np.mean(lengths > top_k)),
  }
