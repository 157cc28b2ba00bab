"""Offline metrics of a trained model on transformed eval examples: AUC, GAUC, logloss,
logloss over the base rate and calibration (the blessing's definitions)."""

from typing import Dict

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from sklearn import metrics as sk_metrics

from models import base_rate, data, features
from models.gauc import group_auc


def evaluate(model, eval_files, tf_transform_output: tft.TFTransformOutput,
             top_k: int) -> Dict[str, float]:
  """auc, gauc, logloss, logloss_over_base_rate, calibration, examples, and the share
  of examples whose history is longer than k."""
  dataset = data.transformed_dataset(eval_files, tf_transform_output, 1024, shuffle=False,
                                     num_epochs=1, keep=(features.USER_ID,))
  users, labels, logits, lengths = [], [], [], []
  for batch in dataset:
    logits.append(model(batch).numpy())
    users.append(batch[features.USER_ID].numpy().reshape(-1))
    labels.append(batch[features.LABEL].numpy().reshape(-1))
    lengths.append(batch[features.LONG_LENGTH].numpy().reshape(-1))
  users, labels = np.concatenate(users), np.concatenate(labels).astype(np.float64)
  logits, lengths = np.concatenate(logits), np.concatenate(lengths)
  probabilities = 1.0 / (1.0 + np.exp(-logits))
  return {
      "auc": float(sk_metrics.roc_auc_score(labels, probabilities)),
      "gauc": float(group_auc(users, labels, probabilities)),
      "logloss": float(sk_metrics.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7))),
      "logloss_over_base_rate": base_rate.logloss_over_base_rate(labels, probabilities),
      "calibration": base_rate.calibration(labels, probabilities),
      "examples": int(len(labels)),
      "history_longer_than_k": float(np.mean(lengths > top_k)),
  }
