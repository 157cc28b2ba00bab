"""The curated schema: exactly the ingest's features and types, what Transform read before,
and the ingest's own examples pass TFDV's validation against it."""

import pytest
import tensorflow_data_validation as tfdv
from tensorflow_data_validation.statistics import stats_impl
from tensorflow.core.example import example_pb2
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import schema_utils
from tfx_bsl.coders import example_coder

from components import events, histories
from components.events import Event
from eta_ctr.config import IngestConfig
from pipeline import schema as curated

_KIND_TYPES = {"bytes_list": schema_pb2.BYTES, "int64_list": schema_pb2.INT,
               "float_list": schema_pb2.FLOAT}


def _examples(config, users=4, events_per_user=6):
  """Serialized tf.Examples of the ingest's history builder (clicks and non-clicks)."""
  out = []
  for user in range(users):
    user_events = [Event(f"u{user}", f"i{(user + k) % 5}", f"c{k % 3}", 100 + 10 * k,
                         k % 2) for k in range(events_per_user)]
    out += [payload[1] for kind, payload in
            histories.build_user_examples(f"u{user}", user_events, config)
            if kind == histories.EXAMPLE]
  return out


@pytest.fixture(scope="module", params=[False, True], ids=["clicked", "with_labels"])
def ingest_output(request):
  """(config, serialized examples, their TFDV statistics) for one history setting."""
  config = IngestConfig(max_history=4, history_includes_non_clicked=request.param)
  records = _examples(config)
  batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
  statistics = stats_impl.generate_statistics_in_memory(batch)  # in process, no Beam
  return config, records, statistics


def test_features_and_types_are_the_ingests(ingest_output):
  config, records, _ = ingest_output
  schema = curated.build_schema(config)
  example = example_pb2.Example.FromString(records[-1])
  written = {name: _KIND_TYPES[feature.WhichOneof("kind")]
             for name, feature in example.features.feature.items()}
  assert {f.name: f.type for f in schema.feature} == written
  assert curated.feature_names(config) == sorted(written)
  assert (events.HIST_LABELS in written) == config.history_includes_non_clicked


def test_presence_value_counts_and_domains(ingest_output):
  config, _, _ = ingest_output
  schema = curated.build_schema(config)
  features = {f.name: f for f in schema.feature}
  for name, feature in features.items():
    assert feature.presence.min_fraction == 1.0 and feature.presence.min_count == 1, name
    assert feature.lifecycle_stage == schema_pb2.UNKNOWN_STAGE, name  # never DEPRECATED
    if name in curated.SCALAR_FEATURES:
      assert [d.size for d in feature.shape.dim] == [1], name
      assert not feature.HasField("value_count"), name
    else:
      assert not feature.HasField("shape"), name
      assert (feature.value_count.min, feature.value_count.max) == (0, config.max_history)
  assert (features[events.LABEL].int_domain.min, features[events.LABEL].int_domain.max) == (0, 1)
  for name in (events.TIMESTAMP, events.HIST_TIMESTAMPS):
    assert features[name].int_domain.min == 0 and not features[name].int_domain.HasField("max")
  assert features[events.CATEGORY].drift_comparator.infinity_norm.threshold > 0
  assert schema.dataset_constraints.min_examples_count == curated.MIN_EXAMPLES_PER_SPLIT
  assert curated.parse_schema(curated.schema_text(schema)) == schema


def test_transform_reads_the_same_tensors_as_with_the_inferred_schema(ingest_output):
  """Scalars dense [B, 1], history lists SparseTensor: what SchemaGen(infer_feature_shape=True)
  gave preprocessing_fn before."""
  config, _, statistics = ingest_output
  inferred = tfdv.infer_schema(statistics, infer_feature_shape=True)
  curated_spec = schema_utils.schema_as_feature_spec(curated.build_schema(config)).feature_spec
  assert curated_spec == schema_utils.schema_as_feature_spec(inferred).feature_spec


def test_the_ingests_examples_have_no_anomalies(ingest_output):
  config, _, statistics = ingest_output
  anomalies = tfdv.validate_statistics(statistics, curated.build_schema(config))
  assert not anomalies.anomaly_info and not anomalies.data_missing
  assert not anomalies.HasField("dataset_anomaly_info")


def test_history_features_are_the_lists():
  schema = curated.build_schema(IngestConfig(history_includes_non_clicked=True))
  assert curated.is_history_feature(schema, events.HIST_LABELS)
  assert not curated.is_history_feature(schema, events.ITEM_ID)
  assert not curated.is_history_feature(schema, "no_such_feature")


def test_declared_side_features_are_in_the_schema_as_the_ingest_writes_them():
  from eta_ctr.config import FeatureSpec
  features = (FeatureSpec("age", "user", "categorical"),
              FeatureSpec("price", "item", "numeric", in_history=True),
              FeatureSpec("genres", "item", "categorical_list"))
  config = IngestConfig(max_history=4)
  records = []
  for user in range(3):
    user_events = [Event(f"u{user}", f"i{k}", "c", 100 + 10 * k, 1,
                         side=(str(user), (float(k), k % 2), ("A", "B")[:k % 3]))
                   for k in range(5)]
    records += [payload[1] for kind, payload in histories.build_user_examples(
        f"u{user}", user_events, config, features=features) if kind == histories.EXAMPLE]
  schema = curated.build_schema(config, features)
  example = example_pb2.Example.FromString(records[-1])
  written = {name: _KIND_TYPES[feature.WhichOneof("kind")]
             for name, feature in example.features.feature.items()}
  assert {f.name: f.type for f in schema.feature} == written
  assert curated.feature_names(config, features) == sorted(written)
  spec = schema_utils.schema_as_feature_spec(schema).feature_spec
  assert spec["age"].shape == [1] and spec["price"].shape == [1]
  assert spec["price_missing"].shape == [1]
  assert type(spec["genres"]).__name__ == "VarLenFeature"
  assert type(spec["hist_price"]).__name__ == "VarLenFeature"
  by_name = {f.name: f for f in schema.feature}
  assert (by_name["price_missing"].int_domain.min, by_name["price_missing"].int_domain.max) == (
      0, 1)
  batch = example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records)
  anomalies = tfdv.validate_statistics(stats_impl.generate_statistics_in_memory(batch), schema)
  assert not anomalies.anomaly_info, anomalies
  # Without features, the schema is the one it always was.
  assert curated.build_schema(config, ()) == curated.build_schema(config)
