"""Drift of eval against train on hand-built statistics: new categories, longer histories,
and TFDV's L-infinity comparator on the category distribution."""

from tensorflow_metadata.proto.v0 import statistics_pb2

from components import events
from eta_ctr.config import IngestConfig
from pipeline import drift
from pipeline.schema import CATEGORY_DRIFT_THRESHOLD, build_schema

SCHEMA = build_schema(IngestConfig(max_history=100))


def _statistics(categories, max_history, mean_history=1.0, unique=None):
  """Statistics of one split: {category: count}, the history lengths' max and mean."""
  total = sum(categories.values())
  stats = statistics_pb2.DatasetFeatureStatisticsList()
  dataset = stats.datasets.add(num_examples=total)
  category = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
  category.path.step.append(events.CATEGORY)
  strings = category.string_stats
  strings.common_stats.num_non_missing = total
  strings.common_stats.min_num_values = strings.common_stats.max_num_values = 1
  strings.unique = len(categories) if unique is None else unique
  for rank, (label, count) in enumerate(sorted(categories.items(), key=lambda kv: -kv[1])):
    strings.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=label,
                                       sample_count=count)
    strings.top_values.add(value=label, frequency=count)
  history = dataset.features.add(type=statistics_pb2.FeatureNameStatistics.STRING)
  history.path.step.append(events.HIST_ITEM_IDS)
  history.string_stats.common_stats.num_non_missing = total
  history.string_stats.common_stats.max_num_values = max_history
  history.string_stats.common_stats.avg_num_values = mean_history
  return stats


def test_no_drift_between_alike_splits():
  train = _statistics({"a": 50, "b": 50}, max_history=10)
  assert drift.split_drift(train, _statistics({"a": 10, "b": 10}, max_history=10), SCHEMA) == []


def test_new_categories_longer_histories_and_skew_are_each_a_line():
  train = _statistics({"a": 50, "b": 50}, max_history=10, mean_history=4.0)
  eval_ = _statistics({"a": 2, "c": 5, "d": 3, "e": 1, "f": 1, "g": 1, "h": 1, "b": 6},
                      max_history=25, mean_history=12.5)
  lines = drift.split_drift(train, eval_, SCHEMA)
  assert lines[0] == ("category: 6 values in eval never seen in train (60.0% of eval "
                      "examples): c, d, e, f, g and 1 more")
  assert lines[1] == ("hist_item_ids: eval histories reach 25 behaviours, train's at most "
                      "10 (mean 12.5 vs 4.0)")
  # L-infinity: the largest difference of shares, |0.1 - 0.5| for `a`.
  assert lines[2] == ("category: distribution shift from train to eval: L_INFTY 0.400 > "
                      f"threshold {CATEGORY_DRIFT_THRESHOLD:g}")
  assert len(lines) == 3


def test_new_categories_need_trains_whole_histogram():
  """Train's rank histogram cut off at 2 of 3000 values: absence from it proves nothing."""
  train = _statistics({"a": 50, "b": 50}, max_history=10, unique=3000)
  assert drift.new_categories(train.datasets[0],
                              _statistics({"z": 5}, max_history=1).datasets[0]) is None


def test_an_empty_split_has_no_drift():
  empty = statistics_pb2.DatasetFeatureStatisticsList()
  empty.datasets.add(num_examples=0)
  assert drift.split_drift(_statistics({"a": 1}, 1), empty, SCHEMA) == []
