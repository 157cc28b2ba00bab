"""Blocking vs drift on hand-built Anomalies protos, and on TFDV's own for a missing feature."""

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx_bsl.coders import example_coder

from components import events, histories
from components.events import Event
from eta_ctr.config import IngestConfig
from pipeline import anomalies as rules
from pipeline.schema import build_schema

T = anomalies_pb2.AnomalyInfo.Type
SCHEMA = build_schema(IngestConfig(max_history=8))


def _anomalies(*entries, data_missing=False, dataset_reasons=()):
  """An Anomalies proto from (feature, [(type, short, long), ...]) entries."""
  proto = anomalies_pb2.Anomalies(data_missing=data_missing)
  for feature, reasons in entries:
    info = proto.anomaly_info[feature]
    for anomaly_type, short, long in reasons:
      info.reason.add(type=anomaly_type, short_description=short, description=long)
  for anomaly_type, short, long in dataset_reasons:
    proto.dataset_anomaly_info.reason.add(type=anomaly_type, short_description=short,
                                          description=long)
  return proto


@pytest.mark.parametrize("feature, anomaly_type, blocking", [
    (events.HIST_LABELS, T.SCHEMA_MISSING_COLUMN, True),           # a missing feature
    (events.USER_ID, T.UNEXPECTED_DATA_TYPE, True),                # a wrong type
    (events.TIMESTAMP, T.INT_TYPE_NOT_INT_STRING, True),
    (events.ITEM_ID, T.FEATURE_TYPE_LOW_FRACTION_PRESENT, True),   # absent from some examples
    (events.ITEM_ID, T.FEATURE_TYPE_HIGH_NUMBER_VALUES, True),     # a scalar with 2 values
    (events.ITEM_ID, T.INVALID_FEATURE_SHAPE, True),
    (events.LABEL, T.INT_TYPE_BIG_INT, True),                      # a label of 2
    (events.HIST_ITEM_IDS, T.FEATURE_TYPE_HIGH_NUMBER_VALUES, False),  # longer histories
    (events.CATEGORY, T.ENUM_TYPE_UNEXPECTED_STRING_VALUES, False),  # new categories
    (events.CATEGORY, T.COMPARATOR_L_INFTY_HIGH, False),           # distribution skew
    ("extra_column", T.SCHEMA_NEW_COLUMN, False),                  # Transform ignores it
    (events.ITEM_ID, T.UNKNOWN_TYPE, True),                        # unknown: fail closed
])
def test_one_reason(feature, anomaly_type, blocking):
  (finding,) = rules.classify(_anomalies((feature, [(anomaly_type, "short", "long")])),
                              SCHEMA, "train")
  assert finding == rules.Finding("train", feature, T.Name(anomaly_type), "short: long",
                                  blocking)


def test_an_empty_split_blocks():
  (finding,) = rules.classify(_anomalies(data_missing=True), SCHEMA, "eval")
  assert finding.blocking and finding.anomaly == rules.NO_DATA
  (finding,) = rules.classify(_anomalies(dataset_reasons=[
      (T.DATASET_LOW_NUM_EXAMPLES, "Low num examples in dataset.", "0 < 1")]), SCHEMA, "eval")
  assert finding.blocking and finding.feature == rules.DATASET


def test_several_reasons_of_one_feature_are_classified_each():
  findings = rules.classify(_anomalies(
      (events.CATEGORY, [(T.ENUM_TYPE_UNEXPECTED_STRING_VALUES, "Unexpected values", "c9"),
                         (T.UNEXPECTED_DATA_TYPE, "Wrong type", "INT, not BYTES")]),
      (events.HIST_ITEM_IDS, [(T.FEATURE_TYPE_HIGH_NUMBER_VALUES, "Superfluous values", "")])),
      SCHEMA, "eval")
  assert [(f.feature, f.blocking) for f in findings] == [
      (events.CATEGORY, False), (events.CATEGORY, True), (events.HIST_ITEM_IDS, False)]
  assert str(findings[2]) == ("eval: hist_item_ids: Superfluous values "
                              "(FEATURE_TYPE_HIGH_NUMBER_VALUES)")


def test_the_error_names_every_blocking_anomaly_and_no_drift():
  findings = (rules.classify(_anomalies(
      (events.HIST_LABELS, [(T.SCHEMA_MISSING_COLUMN, "Column dropped",
                             "Column is completely missing")]),
      (events.CATEGORY, [(T.ENUM_TYPE_UNEXPECTED_STRING_VALUES, "Unexpected", "c9")])),
      SCHEMA, "train") + rules.classify(_anomalies(data_missing=True), SCHEMA, "eval"))
  message = str(rules.DataValidationError(findings, "/root/ExampleValidator/anomalies/5"))
  assert message.splitlines() == [
      "2 blocking anomalies in the examples (they do not fit the pipeline's schema, and "
      "Transform or the Trainer would fail on them):",
      "  train: hist_labels: Column dropped: Column is completely missing "
      "(SCHEMA_MISSING_COLUMN)",
      "  eval: (dataset): the split has no examples (NO_DATA)",
      "ExampleValidator's anomalies: /root/ExampleValidator/anomalies/5"]


def test_tfdvs_anomalies_for_examples_without_an_expected_feature():
  """Examples built without hist_labels against a schema that expects them."""
  config = IngestConfig(max_history=8)
  records = [payload[1] for kind, payload in histories.build_user_examples(
      "u", [Event("u", f"i{k}", "c", 10 * k, 1) for k in range(5)], config)
             if kind == histories.EXAMPLE]
  statistics = stats_impl.generate_statistics_in_memory(
      example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records))
  expects_labels = build_schema(IngestConfig(max_history=8,
                                             history_includes_non_clicked=True))
  findings = rules.classify(tfdv.validate_statistics(statistics, expects_labels),
                            expects_labels, "train")
  assert [(f.feature, f.anomaly, f.blocking) for f in findings] == [
      (events.HIST_LABELS, "SCHEMA_MISSING_COLUMN", True)]
