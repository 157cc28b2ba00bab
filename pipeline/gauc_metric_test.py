"""The TFMA GAUC metric against sklearn, through TFMA's Beam computation."""

import math
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_analysis as tfma
from apache_beam.testing import util as beam_util
from sklearn.metrics import roc_auc_score
from tensorflow_model_analysis.metrics import metric_specs
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util

from eta_ctr.config import EvaluationConfig
from pipeline import gauc_metric
from pipeline.evaluation import make_eval_config


def _reference_gauc(users, labels, scores, weights=None):
  """Per-user sklearn AUC, weighted by impressions (or summed weights)."""
  weights = np.ones(len(labels)) if weights is None else np.asarray(weights)
  total = norm = 0.0
  for user in sorted(set(users)):
    mask = np.array([u == user for u in users])
    if len(set(labels[mask])) < 2:
      continue  # one-class user: no AUC
    auc = roc_auc_score(labels[mask], scores[mask], sample_weight=weights[mask])
    total += weights[mask].sum() * auc
    norm += weights[mask].sum()
  return total / norm if norm else float("nan")


def _random_examples(seed=0, num_users=12, num_examples=200):
  rng = np.random.default_rng(seed)
  users = [f"u{i}".encode() for i in rng.integers(0, num_users, num_examples)]
  labels = rng.integers(0, 2, num_examples)
  # Coarse scores, so that there are ties within users.
  scores = np.round(rng.random(num_examples), 1)
  users += [b"all_clicks"] * 3 + [b"no_clicks"] * 4  # one-class users
  labels = np.concatenate([labels, [1, 1, 1], [0, 0, 0, 0]])
  scores = np.concatenate([scores, [0.1, 0.2, 0.3], [0.9, 0.8, 0.7, 0.6]])
  return users, labels, scores


def _extracts(users, labels, scores, weights=None):
  """Per-example extracts shaped like the Evaluator's after unbatching."""
  extracts = []
  for i, (user, label, score) in enumerate(zip(users, labels, scores)):
    extract = {
        "labels": np.array([label], dtype=np.int64),
        "predictions": np.array([score], dtype=np.float32),
        "example_weights": np.array([1.0 if weights is None else weights[i]]),
        "features": {"label": np.array([label], dtype=np.int64)},
    }
    if user is not None:
      extract["features"]["user_id"] = np.array([user], dtype=object)
    extracts.append(extract)
  return extracts


def _run(computation, extracts, check):
  """Runs the combiner over one slice, as TFMA does, and calls check({key: value}).

  check runs inside the pipeline (the runner pickles it), so it asserts there.
  """
  def check_single(got):
    assert len(got) == 1
    check(got[0])

  with beam.Pipeline() as p:
    out = (p
           | beam.Create(extracts, reshuffle=False)
           | beam.Map(metric_util.to_standard_metric_inputs, include_features=True)
           | beam.Map(lambda x: ((), x))
           | beam.CombinePerKey(computation.combiner)
           | beam.Map(lambda kv: kv[1]))
    beam_util.assert_that(out, check_single)


def test_gauc_matches_sklearn_per_user_weighted_by_impressions():
  users, labels, scores = _random_examples()
  computation, = gauc_metric.GAUC().computations()
  key = metric_types.MetricKey(name="gauc", example_weighted=False)
  expected = _reference_gauc(users, labels, scores)

  def check(result):
    assert result[key] == pytest.approx(expected, abs=1e-9)

  _run(computation, _extracts(users, labels, scores), check)
  # GAUC is not the pooled AUC: a guard against a per-user grouping bug.
  assert not math.isclose(expected, roc_auc_score(labels, scores), abs_tol=1e-3)


def test_gauc_example_weighted_uses_weighted_auc_and_summed_weights():
  users, labels, scores = _random_examples(seed=1)
  weights = np.random.default_rng(2).uniform(0.5, 3.0, len(labels))
  computation, = gauc_metric.GAUC().computations(example_weighted=True)
  key = metric_types.MetricKey(name="gauc", example_weighted=True)
  expected = _reference_gauc(users, labels, scores, weights)

  def check(result):
    assert result[key] == pytest.approx(expected, abs=1e-9)

  _run(computation, _extracts(users, labels, scores, weights), check)


def test_gauc_small_hand_computed_case_and_missing_user_ids():
  users = [b"a", b"a", b"a", b"a", b"b", b"b", b"c", None]
  labels = np.array([1, 0, 1, 0, 1, 0, 1, 1])
  scores = np.array([0.9, 0.1, 0.4, 0.6, 0.2, 0.8, 0.5, 0.5])
  computation, = gauc_metric.GAUC().computations()
  key = computation.keys[0]

  def check(result):
    # a: AUC 0.75 on 4 examples, b: AUC 0 on 2, c: one class; the None row is skipped.
    assert result[key] == pytest.approx((4 * 0.75 + 2 * 0.0) / 6)

  _run(computation, _extracts(users, labels, scores), check)


def test_gauc_is_nan_without_users_having_both_labels():
  computation, = gauc_metric.GAUC().computations()
  key = computation.keys[0]

  def check(result):
    assert math.isnan(result[key])

  _run(computation, _extracts([b"a", b"a", b"b"], np.array([1, 1, 0]), np.array([0.2, 0.3, 0.4])),
       check)


def test_group_auc_is_independent_of_how_examples_are_merged():
  users, labels, scores = _random_examples(seed=3)
  combiner = gauc_metric.GAUC().computations()[0].combiner
  inputs = [metric_util.to_standard_metric_inputs(e, include_features=True)
            for e in _extracts(users, labels, scores)]
  parts = []
  for chunk in (inputs[:50], inputs[50:120], inputs[120:]):
    acc = combiner.create_accumulator()
    for element in chunk:
      acc = combiner.add_input(acc, element)
    parts.append(acc)
  merged = combiner.merge_accumulators(parts)
  value = combiner.extract_output(merged)[combiner._key]  # pylint: disable=protected-access
  assert value == pytest.approx(_reference_gauc(users, labels, scores), abs=1e-9)


def test_eval_config_has_gauc_and_tfma_can_load_it():
  eval_config = make_eval_config(EvaluationConfig(auc_floor=0.5, max_auc_regression=0.01))
  configs = [m for spec in eval_config.metrics_specs for m in spec.metrics
             if m.class_name == "GAUC"]
  assert len(configs) == 1
  assert configs[0].module == "pipeline.gauc_metric"
  instance = metric_specs.metric_instance(configs[0])
  assert isinstance(instance, gauc_metric.GAUC) and instance.name == "gauc"
  keys = {key for computation in metric_specs.to_computations(
      eval_config.metrics_specs, eval_config=eval_config) for key in computation.keys}
  assert metric_types.MetricKey(name="gauc", example_weighted=False) in keys


def _write_examples(path, users, labels, scores):
  with tf.io.TFRecordWriter(path) as writer:
    for user, label, score in zip(users, labels, scores):
      example = tf.train.Example()
      example.features.feature["user_id"].bytes_list.value.append(user)
      example.features.feature["label"].int64_list.value.append(int(label))
      example.features.feature["probabilities"].float_list.value.append(float(score))
      writer.write(example.SerializeToString())


def test_gauc_through_tfma_evaluator_on_tf_examples(tmp_path):
  """Raw tf.Examples through TFMA's extractors and evaluator, as in the Evaluator.

  No model: the ModelSpec's prediction_key reads the scores from the examples.
  """
  users, labels, scores = _random_examples(seed=4)
  data = os.path.join(tmp_path, "eval.tfrecord")
  _write_examples(data, users, labels, scores)
  eval_config = make_eval_config(EvaluationConfig(auc_floor=0.5, max_auc_regression=0.01))
  for metric in eval_config.metrics_specs[0].metrics:
    metric.ClearField("threshold")  # change thresholds need a baseline model
  result = tfma.run_model_analysis(eval_config=eval_config, data_location=data,
                                   output_path=str(tmp_path / "out"))
  (slice_key, metrics), = result.slicing_metrics
  assert slice_key == ()
  value = metrics[""][""]["gauc"]["doubleValue"]
  assert value == pytest.approx(_reference_gauc(users, labels, scores), abs=1e-6)
