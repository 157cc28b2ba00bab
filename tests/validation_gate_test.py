"""The curated schema and the validation gate in real runs: examples that lack a feature
the (pinned) schema requires stop the run before Transform, naming the anomaly; a good
run validates against the curated schema and reports its drift in the summary."""

import json
import os

import pytest
from ml_metadata.proto import metadata_store_pb2
from tfx.orchestration import metadata

from components import synth
from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig
from pipeline.anomalies import DataValidationError
from pipeline.local_runner import METADATA_FILE, run_local
from pipeline.progress import ComponentProgress
from pipeline.schema import build_schema, parse_schema
from pipeline.summary import format_summary

pytestmark = pytest.mark.e2e


def _executions_by_component(pipeline_root):
  config = metadata.sqlite_metadata_connection_config(os.path.join(pipeline_root,
                                                                   METADATA_FILE))
  with metadata.Metadata(config) as handle:
    store = handle.store
    types = {t.id: t.name for t in store.get_execution_types()}
    return {types[e.type_id].rsplit(".", 1)[-1]: e for e in store.get_executions()}


def test_examples_without_a_required_feature_stop_at_the_gate(tmp_path):
  """A schema reviewed for histories with labels (--history-includes-non-clicked) is
  pinned; this log is ingested without them, so no example has hist_labels."""
  log_path = str(tmp_path / "log.csv")
  synth.write(synth.SynthConfig(events=1500, mean_events_per_user=60, items=200, seed=2),
              log_path)
  config = EtaConfig(source=SourceConfig(format="csv", path=log_path),
                     ingest=IngestConfig(max_history=32))
  pinned = build_schema(IngestConfig(max_history=32, history_includes_non_clicked=True))
  root = str(tmp_path / "pipeline")
  progress = ComponentProgress(["ClickLogExampleGen", "StatisticsGen", "CuratedSchemaGen",
                                "ExampleValidator", "ValidationGate", "Transform"])
  with pytest.raises(DataValidationError) as raised, progress:
    run_local(config, root, str(tmp_path / "serving"), through_transform=True,
              schema=pinned)
  assert progress.current == "ValidationGate"  # what `eta run FAILED in ...` names
  lines = str(raised.value).splitlines()
  assert lines[0].startswith("3 blocking anomalies in the examples")
  assert lines[1:4] == [
      f"  {split}: hist_labels: Column dropped: Column is completely missing "
      "(SCHEMA_MISSING_COLUMN)" for split in ("train", "valid", "eval")]
  assert lines[4].startswith("ExampleValidator's anomalies: ")
  executions = _executions_by_component(root)
  assert "Transform" not in executions
  assert executions["ExampleValidator"].last_known_state == metadata_store_pb2.Execution.COMPLETE
  assert executions["ValidationGate"].last_known_state == metadata_store_pb2.Execution.FAILED


def test_a_good_run_is_validated_against_the_curated_schema_and_reports_drift(pipeline_run):
  """The session's `eta run` (tests/conftest.py): Transform read the gate's schema, which is
  the curated one, and the summary carries the gate's drift lines."""
  with open(os.path.join(pipeline_run["pipeline_root"], "run_summary.json")) as handle:
    summary = json.load(handle)
  assert isinstance(summary["drift"], list)
  assert all(isinstance(line, str) for line in summary["drift"])
  printed = format_summary(summary)
  assert printed.count("\ndrift:    ") == len(summary["drift"])
  config = metadata.sqlite_metadata_connection_config(
      os.path.join(pipeline_run["pipeline_root"], METADATA_FILE))
  with metadata.Metadata(config) as handle:
    schemas = handle.store.get_artifacts_by_type("Schema")
  gate_outputs = [a for a in schemas if "drift" in a.custom_properties]
  assert json.loads(gate_outputs[-1].custom_properties["drift"].string_value) == (
      summary["drift"])
  assert os.listdir(gate_outputs[-1].uri) == ["schema.pbtxt"]  # Transform reads the only file
  with open(os.path.join(gate_outputs[-1].uri, "schema.pbtxt")) as handle:
    validated = handle.read()
  names = sorted(f.name for f in parse_schema(validated).feature)
  assert names == ["category", "hist_categories", "hist_item_ids", "hist_timestamps",
                   "item_id", "label", "timestamp", "user_id"]
