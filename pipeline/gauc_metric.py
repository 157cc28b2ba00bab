"""GAUC (group AUC): per-user AUC averaged with impression weights, for TFMA.

Registered in the EvalConfig as
  tfma.MetricConfig(class_name="GAUC", module="pipeline.gauc_metric")
and reported under the metric name "gauc".
"""

import array
from typing import Dict, Hashable, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from tensorflow_model_analysis import constants
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.metrics import metric_util
from tensorflow_model_analysis.proto import config_pb2
from tensorflow_model_analysis.utils import util

from components import events
from models.gauc import group_auc
from pipeline.metric_computations import per_model_and_output

GAUC_NAME = "gauc"


class GAUC(metric_types.Metric):
  """Group AUC: sum_u w_u * AUC_u / sum_u w_u over users with both labels.

  AUC_u is the ROC AUC of user u's examples (ties count 1/2, as in
  sklearn.metrics.roc_auc_score) and w_u is u's number of examples (their
  summed example weight when the metrics spec is example weighted). Users
  whose examples are all clicks or all non-clicks have no AUC and are left
  out of both sums. The value is NaN when no user has both labels. Labels
  > 0 count as clicks. Examples without a user id are skipped (and counted
  in the Beam counter "gauc_examples_without_user_id"). The value is computed
  by models.gauc.group_auc, the definition `eta compare` uses too
  (models.evaluation).

  The user id is read from the raw features (needs the features extract,
  which the stock Evaluator provides for tf.Examples), so no query_key is
  needed and the metric is exact for any slicing spec.

  Memory: the combiner keeps every example's (label, score, weight) per user
  of a slice, in compact arrays (~17 bytes an example plus a few hundred
  bytes a user), until extract_output. That is fine for eval sets of a few
  million examples; beyond that, switch to MetricsSpec(query_key="user_id")
  so that Beam groups the users instead.
  """

  def __init__(self, name: str = GAUC_NAME, user_key: str = events.USER_ID):
    """Initializes GAUC.

    Args:
      name: Metric name.
      user_key: Feature that holds the user id (one value an example).
    """
    super().__init__(_gauc, name=name, user_key=user_key)


def _gauc(name: str = GAUC_NAME,
          user_key: str = events.USER_ID,
          eval_config: Optional[config_pb2.EvalConfig] = None,
          model_names: Optional[List[str]] = None,
          output_names: Optional[List[str]] = None,
          example_weighted: bool = False) -> metric_types.MetricComputations:
  """Returns one computation per model and output."""
  return per_model_and_output(
      name, model_names, output_names, example_weighted,
      lambda key: _GAUCCombiner(key, eval_config, example_weighted, user_key),
      # Adds features[user_key] to the shared StandardMetricInputs.
      preprocessors=[metric_types.FeaturePreprocessor(feature_keys=[user_key])])


class _UserExamples:
  """One user's labels, scores and example weights."""
  __slots__ = ["labels", "scores", "weights"]

  def __init__(self):
    # array.array rather than lists: 17 bytes an example instead of ~100, and
    # they pickle as raw buffers between Beam stages.
    self.labels = array.array("b")
    self.scores = array.array("d")
    self.weights = array.array("d")


_Accumulator = Dict[Hashable, _UserExamples]


class _GAUCCombiner(beam.CombineFn):
  """Collects examples per user and computes GAUC at the end."""

  def __init__(self, key: metric_types.MetricKey,
               eval_config: Optional[config_pb2.EvalConfig],
               example_weighted: bool, user_key: str):
    self._key = key
    self._eval_config = eval_config
    self._example_weighted = example_weighted
    self._user_key = user_key
    self._without_user_id = beam.metrics.Metrics.counter(
        constants.METRICS_NAMESPACE, "gauc_examples_without_user_id")

  def create_accumulator(self) -> _Accumulator:
    return {}

  def add_input(self, accumulator: _Accumulator,
                element: metric_types.StandardMetricInputs) -> _Accumulator:
    features = element.features or {}
    user = util.get_by_keys(features, [self._user_key], optional=True)
    if user is None or np.size(user) == 0:
      self._without_user_id.inc()
      return accumulator
    user = metric_util.to_scalar(user, tensor_name=self._user_key)
    examples = accumulator.get(user)
    if examples is None:
      examples = accumulator[user] = _UserExamples()
    for label, prediction, example_weight in (
        metric_util.to_label_prediction_example_weight(
            element,
            eval_config=self._eval_config,
            model_name=self._key.model_name,
            output_name=self._key.output_name,
            example_weighted=self._example_weighted)):
      examples.labels.append(1 if label.item() > 0 else 0)
      examples.scores.append(float(prediction.item()))
      examples.weights.append(float(example_weight.item()))
    return accumulator

  def merge_accumulators(self, accumulators: Iterable[_Accumulator]) -> _Accumulator:
    accumulators = iter(accumulators)
    result = next(accumulators)
    for accumulator in accumulators:
      for user, other in accumulator.items():
        examples = result.get(user)
        if examples is None:
          result[user] = other
        else:
          examples.labels.extend(other.labels)
          examples.scores.extend(other.scores)
          examples.weights.extend(other.weights)
    return result

  def extract_output(self, accumulator: _Accumulator) -> Dict[metric_types.MetricKey, float]:
    users = [u for u in accumulator.values() if len(u.labels)]
    if not users:
      return {self._key: float("nan")}
    # Users as indices 0..n-1: the ids themselves need not be sortable together.
    return {self._key: group_auc(
        np.repeat(np.arange(len(users)), [len(u.labels) for u in users]),
        np.concatenate([np.frombuffer(u.labels, dtype=np.int8) for u in users]),
        np.concatenate([np.frombuffer(u.scores, dtype=np.float64) for u in users]),
        np.concatenate([np.frombuffer(u.weights, dtype=np.float64) for u in users]))}
