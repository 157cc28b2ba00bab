"""The TFMA evaluation config: metrics and the blessing thresholds."""

from typing import List

import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.metrics import metric_specs

from components import events
from eta_ctr.config import EvaluationConfig
from models import signatures


def make_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
  """AUC, GAUC, logloss, logloss over the base rate, calibration, mean label and
  prediction, and example count, on the eval split. Blessing needs all of:

    auc >= evaluation.auc_floor
    auc no more than evaluation.max_auc_regression below the last blessed model's
    logloss_over_base_rate <= evaluation.max_logloss_over_base_rate
      (eval logloss minus that of predicting the eval label mean)
    |calibration - 1| <= evaluation.max_calibration_error
      (calibration = mean prediction / mean label)
  """
  auc_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={"value": evaluation.auc_floor}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={"value": -evaluation.max_auc_regression}))
  base_rate_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
      upper_bound={"value": evaluation.max_logloss_over_base_rate}))
  calibration_threshold = tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(
      lower_bound={"value": 1.0 - evaluation.max_calibration_error},
      upper_bound={"value": 1.0 + evaluation.max_calibration_error}))
  return tfma.EvalConfig(
      model_specs=[tfma.ModelSpec(signature_name=signatures.DEFAULT_SIGNATURE,
                                  label_key=events.LABEL,
                                  prediction_key=signatures.PROBABILITIES,
                                  model_type=tfma.TF_GENERIC)],
      metrics_specs=[tfma.MetricsSpec(metrics=[
          tfma.MetricConfig(class_name="ExampleCount"),
          tfma.MetricConfig(class_name="AUC", threshold=auc_threshold),
          tfma.MetricConfig(class_name="GAUC", module="pipeline.gauc_metric"),
          tfma.MetricConfig(class_name="BinaryCrossentropy", config='{"name": "logloss"}'),
          tfma.MetricConfig(class_name="LoglossOverBaseRate",
                            module="pipeline.base_rate_metric", threshold=base_rate_threshold),
          tfma.MetricConfig(class_name="Calibration", threshold=calibration_threshold),
          tfma.MetricConfig(class_name="MeanLabel"),
          tfma.MetricConfig(class_name="MeanPrediction"),
          tfma.MetricConfig(class_name="CalibrationPlot"),
      ])],
      slicing_specs=[tfma.SlicingSpec()])


def blessing_rules(eval_config: tfma.EvalConfig) -> List[str]:
  """The thresholds of `eval_config` as readable lines, e.g. 'auc >= 0.6',
  'calibration in [0.8, 1.2]', 'auc change vs last blessed >= -0.01'."""
  rules = []
  for spec in eval_config.metrics_specs:
    for metric in spec.metrics:
      if not metric.HasField("threshold"):
        continue
      name = _metric_name(metric)
      threshold = metric.threshold
      if threshold.HasField("value_threshold"):
        value = threshold.value_threshold
        low = value.lower_bound.value if value.HasField("lower_bound") else None
        high = value.upper_bound.value if value.HasField("upper_bound") else None
        if low is not None and high is not None:
          rules.append(f"{name} in [{low:g}, {high:g}]")
        elif low is not None:
          rules.append(f"{name} >= {low:g}")
        elif high is not None:
          rules.append(f"{name} <= {high:g}")
      if threshold.HasField("change_threshold"):
        change = threshold.change_threshold
        if change.HasField("absolute"):
          higher = change.direction == tfma.MetricDirection.HIGHER_IS_BETTER
          rules.append(f"{name} change vs last blessed {'>=' if higher else '<='} "
                       f"{change.absolute.value:g}")
  return rules


def _metric_name(metric: tfma.MetricConfig) -> str:
  """The name TFMA reports the metric under (e.g. AUC -> auc)."""
  return metric_specs.metric_instance(metric).name
