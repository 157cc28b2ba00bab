"""Logloss over the base rate, for TFMA: the blessing's "better than knowing nothing".

Registered in the EvalConfig as
  tfma.MetricConfig(class_name="LoglossOverBaseRate", module="pipeline.base_rate_metric")
and reported under the metric name "logloss_over_base_rate": the eval logloss
minus the logloss of predicting the eval label mean for every example
(models/base_rate.py). Blessing needs it <= EvaluationConfig.max_logloss_over_base_rate.
"""

from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2

from models.base_rate import base_rate_logloss, logloss_sum
from pipeline.metric_computations import per_model_and_output

LOGLOSS_OVER_BASE_RATE_NAME = "logloss_over_base_rate"


class LoglossOverBaseRate(metric_types.Metric):
  """mean logloss - H(mean label), weighted by example weights when the spec is.

  Labels > 0 are clicks; predictions are clipped to [1e-7, 1 - 1e-7] as Keras's
  logloss does. The value is NaN for a slice without weight. Memory: three floats.
  """

  def __init__(self, name: str = LOGLOSS_OVER_BASE_RATE_NAME):
    super().__init__(_logloss_over_base_rate, name=name)


def _logloss_over_base_rate(name: str = LOGLOSS_OVER_BASE_RATE_NAME,
                            eval_config: Optional[config_pb2.EvalConfig] = None,
                            model_names: Optional[List[str]] = None,
                            output_names: Optional[List[str]] = None,
                            example_weighted: bool = False
                           ) -> metric_types.MetricComputations:
  """One computation per model and output."""
  return per_model_and_output(
      name, model_names, output_names, example_weighted,
      lambda key: _Combiner(key, eval_config, example_weighted))


class _Combiner(beam.CombineFn):
  """Accumulates [weight, weighted clicks, weighted logloss]."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[config_pb2.EvalConfig], example_weighted: bool):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted

  def create_accumulator(self) -> np.ndarray:
    return np.zeros(3)

  def add_input(self, accumulator: np.ndarray,
                element: metric_types.StandardMetricInputs) -> np.ndarray:
    for label, prediction, weight in metric_util.to_label_prediction_example_weight(
        element, eval_config=self._eval_config, model_name=self._key.model_name,
        output_name=self._key.output_name, example_weighted=self._example_weighted):
      label, weight = float(label.item() > 0), float(weight.item())
      accumulator += (weight, weight * label,
                      logloss_sum([label], [float(prediction.item())], [weight]))
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[np.ndarray]) -> np.ndarray:
    return np.sum(list(accumulators), axis=0)

  def extract_output(self, accumulator: np.ndarray) -> Dict[metric_types.MetricKey, float]:
    weight, clicks, loss = accumulator
    if weight <= 0:
      return {self._key: float("nan")}
    return {self._key: float(loss / weight - base_rate_logloss(clicks / weight))}
