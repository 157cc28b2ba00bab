"""The TFMA evaluation config: metrics and the blessing thresholds."""

import tensorflow_model_analysis as tfma

from components import events
from eta_ctr.config import EvaluationConfig
from models import signatures


def make_eval_config(evaluation: EvaluationConfig) -> tfma.EvalConfig:
  """AUC, GAUC, logloss, calibration and example count; blessing needs
  AUC >= evaluation.auc_floor and no drop of more than
  evaluation.max_auc_regression against the last blessed model."""
  auc_threshold = tfma.MetricThreshold(
      value_threshold=tfma.GenericValueThreshold(lower_bound={"value": evaluation.auc_floor}),
      change_threshold=tfma.GenericChangeThreshold(
          direction=tfma.MetricDirection.HIGHER_IS_BETTER,
          absolute={"value": -evaluation.max_auc_regression}))
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
          tfma.MetricConfig(class_name="Calibration"),
          tfma.MetricConfig(class_name="MeanLabel"),
          tfma.MetricConfig(class_name="MeanPrediction"),
          tfma.MetricConfig(class_name="CalibrationPlot"),
      ])],
      slicing_specs=[tfma.SlicingSpec()])
