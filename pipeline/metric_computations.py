"""The boilerplate every custom TFMA metric of ours shares: one computation per
model and output (TFMA's `metric_types.Metric` contract)."""

from typing import Callable, List, Optional

from tensorflow_model_analysis.metrics import metric_types


def per_model_and_output(name: str, model_names: Optional[List[str]],
                         output_names: Optional[List[str]], example_weighted: bool,
                         make_combiner: Callable[[metric_types.MetricKey], object],
                         preprocessors: Optional[list] = None
                         ) -> metric_types.MetricComputations:
  """One MetricComputation per (model, output), each with the combiner
  `make_combiner(key)` builds for its MetricKey."""
  computations = []
  for model_name in model_names or [""]:
    for output_name in output_names or [""]:
      key = metric_types.MetricKey(name=name, model_name=model_name, output_name=output_name,
                                   example_weighted=example_weighted)
      computations.append(metric_types.MetricComputation(
          keys=[key], preprocessors=preprocessors, combiner=make_combiner(key)))
  return computations
