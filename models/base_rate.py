"""What a CTR model must beat: the base-rate predictor, and calibration.

The base-rate predictor predicts the label mean q for every example; its logloss
is the label entropy -(q log q + (1 - q) log(1 - q)). A model whose logloss is
above it ranks perhaps, but its probabilities are worse than knowing nothing
about the example. Calibration is mean prediction / mean label (TFMA's
`calibration`): 1 when the model predicts as many clicks as there are.

One definition for the Evaluator's blessing metric (pipeline/base_rate_metric.py)
and `eta compare` (models/evaluation.py).
"""

import math
from typing import Optional

import numpy as np

# Probabilities are clipped to [EPSILON, 1 - EPSILON], as Keras's logloss does.
EPSILON = 1e-7


def _clip(p):
  return np.clip(p, EPSILON, 1.0 - EPSILON)


def logloss_sum(labels: np.ndarray, probabilities: np.ndarray,
                weights: Optional[np.ndarray] = None) -> float:
  """sum_i w_i * -(y_i log p_i + (1 - y_i) log(1 - p_i)) (labels > 0 are clicks)."""
  y = (np.asarray(labels) > 0).astype(np.float64)
  p = _clip(np.asarray(probabilities, dtype=np.float64))
  w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
  return float(-np.sum(w * (y * np.log(p) + (1.0 - y) * np.log1p(-p))))


def base_rate_logloss(label_mean: float) -> float:
  """The logloss of predicting `label_mean` for every example of that label mean
  (the label entropy, in nats); NaN for a NaN mean."""
  if math.isnan(label_mean):
    return float("nan")
  q = float(_clip(label_mean))
  return -(q * math.log(q) + (1.0 - q) * math.log1p(-q))


def logloss_over_base_rate(labels: np.ndarray, probabilities: np.ndarray,
                           weights: Optional[np.ndarray] = None) -> float:
  """The (weighted) mean logloss minus the base-rate predictor's; <= 0 is no worse
  than predicting the label mean. NaN without examples."""
  y = (np.asarray(labels) > 0).astype(np.float64)
  w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
  total = float(np.sum(w))
  if total <= 0:
    return float("nan")
  return (logloss_sum(y, probabilities, w) / total
          - base_rate_logloss(float(np.sum(w * y)) / total))


def calibration(labels: np.ndarray, probabilities: np.ndarray) -> float:
  """sum(probabilities) / sum(labels): 1 is calibrated on the whole; NaN without clicks."""
  clicks = float(np.sum(np.asarray(labels) > 0))
  return float(np.sum(probabilities)) / clicks if clicks else float("nan")
