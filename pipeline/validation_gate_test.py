"""The CuratedSchemaGen and ValidationGate executors on artifacts laid out as TFX does,
without a pipeline run: the schema file, blocking anomalies, a split left unvalidated,
and the drift property of a pass."""

import json
import os

import pytest
from tensorflow_data_validation.statistics import stats_impl
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils, standard_artifacts
from tfx.utils import io_utils
from tfx_bsl.coders import example_coder

from components import events, histories
from components.events import Event
from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig
from pipeline import curated_schema_gen, validation_gate
from pipeline.anomalies import DataValidationError
from pipeline.pipeline import COMPONENT_IDS, create_pipeline
from pipeline.schema import build_schema, parse_schema, schema_text

CONFIG = IngestConfig(max_history=8)


def _artifact(artifact_type, uri, splits=None):
  artifact = artifact_type()
  artifact.uri = str(uri)
  if splits is not None:
    artifact.split_names = artifact_utils.encode_split_names(list(splits))
  os.makedirs(artifact.uri, exist_ok=True)
  return artifact


def _schema_artifact(tmp_path):
  schema = _artifact(standard_artifacts.Schema, tmp_path / "schema")
  curated_schema_gen.Executor().Do({}, {"schema": [schema]}, {
      "schema_text": schema_text(build_schema(CONFIG))})
  return schema


def _statistics_artifact(tmp_path):
  """train: one user's first 4 events, eval: the rest (longer histories)."""
  ingest = IngestConfig(max_history=8, eval_fraction=0.34, valid_fraction=0)
  statistics = _artifact(standard_artifacts.ExampleStatistics, tmp_path / "stats",
                         ingest.split_names)
  records = {split: [] for split in ingest.split_names}
  user_events = [Event("u", f"i{k}", f"c{k % 2}", 10 * k, 1) for k in range(6)]
  for kind, payload in histories.build_user_examples("u", user_events, ingest):
    if kind == histories.EXAMPLE:
      records[payload[0]].append(payload[1])
  for split, split_records in records.items():
    stats = stats_impl.generate_statistics_in_memory(
        example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(split_records))
    directory = artifact_utils.get_split_uri([statistics], split)
    io_utils.write_bytes_file(os.path.join(directory, "FeatureStats.pb"),
                              stats.SerializeToString())
  return statistics


def _anomalies_artifact(tmp_path, per_split):
  anomalies = _artifact(standard_artifacts.ExampleAnomalies, tmp_path / "anomalies",
                        per_split)
  for split, proto in per_split.items():
    io_utils.write_bytes_file(os.path.join(
        artifact_utils.get_split_uri([anomalies], split), "SchemaDiff.pb"),
        proto.SerializeToString())
  return anomalies


def _run_gate(tmp_path, anomalies):
  output = _artifact(standard_artifacts.Schema, tmp_path / "validated")
  validation_gate.Executor().Do(
      {"statistics": [_statistics_artifact(tmp_path)], "anomalies": [anomalies],
       "schema": [_schema_artifact(tmp_path)]},
      {"validated_schema": [output]}, {})
  return output


def _missing(feature):
  proto = anomalies_pb2.Anomalies()
  proto.anomaly_info[feature].reason.add(
      type=anomalies_pb2.AnomalyInfo.SCHEMA_MISSING_COLUMN, short_description="Column dropped",
      description="Column is completely missing")
  return proto


def test_curated_schema_gen_writes_the_one_schema_file(tmp_path):
  schema = _schema_artifact(tmp_path)
  assert os.listdir(schema.uri) == ["schema.pbtxt"]
  with open(os.path.join(schema.uri, "schema.pbtxt")) as handle:
    assert parse_schema(handle.read()) == build_schema(CONFIG)


def test_a_clean_log_passes_with_its_schema_and_drift(tmp_path):
  clean = {split: anomalies_pb2.Anomalies() for split in events.SPLITS}
  output = _run_gate(tmp_path, _anomalies_artifact(tmp_path, clean))
  assert os.listdir(output.uri) == ["schema.pbtxt"]  # Transform reads the only file
  with open(os.path.join(output.uri, "schema.pbtxt")) as handle:
    assert parse_schema(handle.read()) == build_schema(CONFIG)
  drift = json.loads(output.get_string_custom_property("drift"))
  assert drift == ["hist_item_ids: eval histories reach 5 behaviours, train's at most 3 "
                   "(mean 4.5 vs 1.5)"]


def test_a_missing_feature_stops_the_gate_and_names_it(tmp_path):
  anomalies = _anomalies_artifact(tmp_path, {events.SPLIT_TRAIN: _missing("item_id"),
                                             events.SPLIT_EVAL: anomalies_pb2.Anomalies()})
  with pytest.raises(DataValidationError, match=r"1 blocking anomaly(.|\n)*  train: item_id: "
                     r"Column dropped: Column is completely missing \(SCHEMA_MISSING_COLUMN\)"):
    _run_gate(tmp_path, anomalies)
  assert not os.listdir(tmp_path / "validated")


def test_a_split_the_validator_skipped_blocks(tmp_path):
  anomalies = _anomalies_artifact(tmp_path, {events.SPLIT_TRAIN: anomalies_pb2.Anomalies()})
  with pytest.raises(DataValidationError, match="eval: \\(dataset\\): ExampleValidator did "
                     "not check this split \\(NOT_VALIDATED\\)"):
    _run_gate(tmp_path, anomalies)


def test_the_pipeline_validates_against_the_configs_schema_or_a_pinned_one():
  config = EtaConfig(source=SourceConfig(format="csv", path="/data/log.csv"),
                     ingest=IngestConfig(max_history=64, history_includes_non_clicked=True))
  pinned = build_schema(IngestConfig(max_history=3))
  for schema, expected in ((None, build_schema(config.ingest)), (pinned, pinned)):
    pipeline = create_pipeline(config, "p", "/tmp/root", "/tmp/serving", schema=schema)
    nodes = {node.id: node for node in pipeline.components}
    assert set(nodes) == set(COMPONENT_IDS)
    text = nodes["CuratedSchemaGen"].exec_properties["schema_text"]
    assert parse_schema(text) == expected
    transform_schema = nodes["Transform"].inputs["schema"]
    assert transform_schema.producer_component_id == "ValidationGate"
