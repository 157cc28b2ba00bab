"""Blessing refuses a model worse than the base rate or far from calibrated: the metric
against sklearn, the thresholds of make_eval_config, and TFMA's verdict on examples."""

import math
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_util
from sklearn.metrics import log_loss
from tensorflow_model_analysis.metrics import metric_util

from eta_ctr.config import EvaluationConfig
from models import base_rate
from pipeline import base_rate_metric
from pipeline.evaluation import blessing_rules, make_eval_config


def test_base_rate_logloss_is_the_constant_predictors_logloss():
  labels = np.array([1] * 3 + [0] * 7)
  assert base_rate.base_rate_logloss(0.3) == pytest.approx(log_loss(labels, [0.3] * 10))
  assert base_rate.logloss_over_base_rate(labels, np.full(10, 0.3)) == pytest.approx(0, abs=1e-12)
  assert base_rate.logloss_over_base_rate(labels, np.full(10, 0.5)) == pytest.approx(
      math.log(2) - log_loss(labels, [0.3] * 10))
  informative = np.where(labels == 1, 0.8, 0.1)
  assert base_rate.logloss_over_base_rate(labels, informative) < 0
  assert base_rate.calibration(labels, np.full(10, 0.6)) == pytest.approx(2.0)
  assert math.isnan(base_rate.calibration(np.zeros(3), np.full(3, 0.1)))


def _extracts(labels, scores, weights):
  return [{"labels": np.array([label]), "predictions": np.array([score], np.float32),
           "example_weights": np.array([weight])}
          for label, score, weight in zip(labels, scores, weights)]


def test_the_tfma_combiner_matches_the_numpy_definition_with_weights():
  rng = np.random.default_rng(0)
  labels = (rng.random(300) < 0.25).astype(np.int64)
  scores = rng.random(300)
  weights = rng.uniform(0.5, 2.0, 300)
  computation, = base_rate_metric.LoglossOverBaseRate().computations(example_weighted=True)
  key = computation.keys[0]
  expected = base_rate.logloss_over_base_rate(labels, scores.astype(np.float32), weights)
  expected_sklearn = (log_loss(labels, scores, sample_weight=weights)
                      - base_rate.base_rate_logloss(np.average(labels, weights=weights)))
  assert expected == pytest.approx(expected_sklearn, abs=1e-6)

  def check(got):
    (result,) = got
    assert result[key] == pytest.approx(expected, abs=1e-9)

  with beam.Pipeline() as p:
    out = (p | beam.Create(_extracts(labels, scores, weights), reshuffle=False)
           | beam.Map(metric_util.to_standard_metric_inputs)
           | beam.Map(lambda x: ((), x))
           | beam.CombinePerKey(computation.combiner)
           | beam.Map(lambda kv: kv[1]))
    beam_util.assert_that(out, check)


def test_make_eval_config_bounds_base_rate_and_calibration_from_the_config():
  evaluation = EvaluationConfig(auc_floor=0.55, max_auc_regression=0.02,
                                max_logloss_over_base_rate=0.01, max_calibration_error=0.15)
  assert blessing_rules(make_eval_config(evaluation)) == [
      "auc >= 0.55", "auc change vs last blessed >= -0.02",
      "logloss_over_base_rate <= 0.01", "calibration in [0.85, 1.15]"]


def _write_examples(path, labels, scores):
  with tf.io.TFRecordWriter(path) as writer:
    for user, (label, score) in enumerate(zip(labels, scores)):
      example = tf.train.Example()
      example.features.feature["user_id"].bytes_list.value.append(b"u%d" % (user % 7))
      example.features.feature["label"].int64_list.value.append(int(label))
      example.features.feature["probabilities"].float_list.value.append(float(score))
      writer.write(example.SerializeToString())


def _verdict(tmp_path, name, labels, scores):
  """TFMA's blessing of `scores` as a model's predictions (no model: the ModelSpec's
  prediction_key reads them from the examples): (ok, failed metric names, metrics)."""
  data = str(tmp_path / f"{name}.tfrecord")
  _write_examples(data, labels, scores)
  eval_config = make_eval_config(EvaluationConfig(auc_floor=0.0))
  for spec in eval_config.metrics_specs:
    for metric in spec.metrics:
      metric.threshold.ClearField("change_threshold")  # needs a baseline model
  output = str(tmp_path / name)
  result = tfma.run_model_analysis(eval_config=eval_config, data_location=data,
                                   output_path=output)
  metrics = {key: value["doubleValue"] for key, value in
             result.slicing_metrics[0][1][""][""].items() if "doubleValue" in value}
  validation = tfma.load_validation_result(output)
  failed = {failure.metric_key.name for per_slice in validation.metric_validations_per_slice
            for failure in per_slice.failures}
  return validation.validation_ok, failed, metrics


def test_blessing_refuses_worse_than_base_rate_and_miscalibrated_accepts_a_good_model(
    tmp_path):
  rng = np.random.default_rng(1)
  labels = (rng.random(400) < 0.2).astype(np.int64)
  # Ranks perfectly (AUC 1) but predicts ~0.5 for a 20% click rate: the logloss is worse
  # than the constant 0.2, and it predicts 2.5x the clicks there are.
  overconfident = np.where(labels == 1, 0.55, 0.45)
  ok, failed, metrics = _verdict(tmp_path, "bad", labels, overconfident)
  assert metrics["auc"] == pytest.approx(1.0)
  assert metrics["logloss_over_base_rate"] > 0 and metrics["calibration"] > 2
  assert not ok and failed == {"logloss_over_base_rate", "calibration"}

  good = np.clip(np.where(labels == 1, 0.6, 0.1) + rng.normal(0, 0.02, 400), 0.01, 0.99)
  ok, failed, metrics = _verdict(tmp_path, "good", labels, good)
  assert metrics["logloss_over_base_rate"] < 0
  assert abs(metrics["calibration"] - 1) < 0.2
  assert ok and not failed
