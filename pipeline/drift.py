"""Drift between the train and the eval split, from StatisticsGen's statistics.

The split is chronological, so eval is the newest part of the log: what it holds
that train does not is what the model meets after training. Reported, never
blocking:

  new categories     `category` values in eval that train never has (their
                     embeddings are untrained OOV buckets); exact while train's
                     distinct categories fit TFDV's rank histogram (1,000 by default)
  longer histories   eval histories longer than any in train
  distribution skew  TFDV's drift comparators of the schema (L-infinity distance
                     of the `category` distribution above its threshold)
"""

from typing import List, Optional

import tensorflow_data_validation as tfdv
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from components import events

_SHOWN_VALUES = 5


def _feature(stats: statistics_pb2.DatasetFeatureStatistics,
             name: str) -> Optional[statistics_pb2.FeatureNameStatistics]:
  for feature in stats.features:
    if feature.path.step == [name] or feature.name == name:
      return feature
  return None


def _common(feature: statistics_pb2.FeatureNameStatistics):
  kind = feature.WhichOneof("stats")
  return getattr(feature, kind).common_stats if kind else None


def new_categories(train, eval_, name: str = events.CATEGORY) -> Optional[str]:
  """A drift line for values of `name` in eval that are not in train, or None."""
  train_feature, eval_feature = _feature(train, name), _feature(eval_, name)
  if train_feature is None or eval_feature is None:
    return None
  train_ranks = train_feature.string_stats.rank_histogram.buckets
  if train_feature.string_stats.unique > len(train_ranks):
    return None  # train's histogram is cut off: a value missing from it may be in train
  seen = {bucket.label for bucket in train_ranks}
  new = [(bucket.sample_count, bucket.label)
         for bucket in eval_feature.string_stats.rank_histogram.buckets
         if bucket.label not in seen]
  if not new:
    return None
  total = max(eval_.num_examples, 1)
  share = sum(count for count, _ in new) / total
  new.sort(key=lambda pair: (-pair[0], pair[1]))
  shown = ", ".join(label for _, label in new[:_SHOWN_VALUES])
  more = f" and {len(new) - _SHOWN_VALUES} more" if len(new) > _SHOWN_VALUES else ""
  return (f"{name}: {len(new)} value{'s' if len(new) != 1 else ''} in eval never seen in "
          f"train ({share:.1%} of eval examples): {shown}{more}")


def longer_histories(train, eval_, name: str = events.HIST_ITEM_IDS) -> Optional[str]:
  """A drift line when eval's longest history is longer than train's, or None."""
  train_feature, eval_feature = _feature(train, name), _feature(eval_, name)
  if train_feature is None or eval_feature is None:
    return None
  train_common, eval_common = _common(train_feature), _common(eval_feature)
  if train_common is None or eval_common is None:
    return None
  if eval_common.max_num_values <= train_common.max_num_values:
    return None
  longest = eval_common.max_num_values
  return (f"{name}: eval histories reach {longest} behaviour{'s' if longest != 1 else ''}, "
          f"train's at most {train_common.max_num_values} (mean "
          f"{eval_common.avg_num_values:.1f} vs {train_common.avg_num_values:.1f})")


def distribution_skew(train: statistics_pb2.DatasetFeatureStatisticsList,
                      eval_: statistics_pb2.DatasetFeatureStatisticsList,
                      schema: schema_pb2.Schema) -> List[str]:
  """Drift lines for the schema's drift comparators that eval exceeds against train."""
  result = tfdv.validate_statistics(eval_, schema, previous_statistics=train)
  lines = []
  for info in result.drift_skew_info:
    name = ".".join(info.path.step)
    for measurement in info.drift_measurements:
      if measurement.value > measurement.threshold:
        lines.append(f"{name}: distribution shift from train to eval: "
                     f"{_measure_name(measurement.type)} {measurement.value:.3f} > "
                     f"threshold {measurement.threshold:g}")
  return lines


def _measure_name(measurement_type: int) -> str:
  return anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(measurement_type)


def split_drift(train: statistics_pb2.DatasetFeatureStatisticsList,
                eval_: statistics_pb2.DatasetFeatureStatisticsList,
                schema: schema_pb2.Schema) -> List[str]:
  """Every drift line (see the module doc) from eval against train; [] when none."""
  train_set, eval_set = train.datasets[0], eval_.datasets[0]
  if not train_set.num_examples or not eval_set.num_examples:
    return []
  lines = [line for line in (new_categories(train_set, eval_set),
                             longer_histories(train_set, eval_set)) if line]
  return lines + distribution_skew(train, eval_, schema)
