"""ClickLogExampleGen through the KFP v2 entry points, as the compiled spec calls them:
the driver hook (span, fingerprint), then the executor, with the spec's own parameters.
A local directory stands in for the bucket."""

import argparse
import json
import os

import pytest

from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig
from pipeline import kubeflow_v2_runner as runner

pytestmark = pytest.mark.e2e


def _write_log(path, users=20, events_per_user=30):
  rows = ["user_id,item_id,category,timestamp,label"]
  for user in range(users):
    for event in range(events_per_user):
      rows.append(f"u{user},i{(user * 7 + event) % 50},c{event % 5},"
                  f"{1_600_000_000 + 60 * event},{(user + event) % 2}")
  path.write_text("\n".join(rows) + "\n")
  return len(rows) - 1


def test_example_gen_runs_through_the_kfp_v2_entry_points(tmp_path):
  from tfx.orchestration.kubeflow.v2.container import kubeflow_v2_run_executor
  from tfx.orchestration.kubeflow.v2.file_based_example_gen import driver
  from kfp.pipeline_spec import pipeline_spec_pb2
  from google.protobuf import json_format

  (tmp_path / "logs").mkdir()
  events = _write_log(tmp_path / "logs" / "part-0.csv")
  config = EtaConfig(source=SourceConfig(format="csv", path=f"{tmp_path}/logs/*.csv"),
                     ingest=IngestConfig(max_history=16))
  root = str(tmp_path / "root")
  job = runner.compile_pipeline(config, str(tmp_path / "pipeline.json"), image="img:1",
                                pipeline_root=root, allow_local_paths=True,
                                beam_pipeline_args=["--direct_running_mode=in_memory"])
  spec = job["pipelineSpec"]
  task = spec["root"]["dag"]["tasks"]["ClickLogExampleGen"]
  container = spec["deploymentSpec"]["executors"]["ClickLogExampleGen_executor"]["container"]
  task_root = f"{root}/ClickLogExampleGen_1"
  # What the KFP launcher hands the container as {{$}} (schema 2.0: `parameters`).
  invocation = json.dumps({
      "inputs": {"parameters": {name: value["runtimeValue"]["constantValue"]
                                for name, value in task["inputs"]["parameters"].items()}},
      "outputs": {"artifacts": {"examples": {"artifacts": [{
          "name": "projects/p/locations/l/metadataStores/default/artifacts/1",
          "type": {"schemaTitle": "tfx.Examples"}, "uri": f"{task_root}/examples"}]}},
          "outputFile": f"{task_root}/executor_output.json"}})

  executor_input = pipeline_spec_pb2.ExecutorInput()
  json_format.Parse(invocation, executor_input)
  driver._run_driver(executor_input)  # the preCacheCheck hook
  with open(f"{task_root}/executor_output.json") as handle:
    assert "input_fingerprint" in json.load(handle)["parameterValues"]

  args = container["args"]
  executor_class = args[args.index("--executor_class_path") + 1]
  beam_args = args[args.index("--json_serialized_invocation_args") + 2:]
  kubeflow_v2_run_executor._run_executor(
      argparse.Namespace(executor_class_path=executor_class,
                         json_serialized_invocation_args=invocation), beam_args)

  with open(f"{task_root}/executor_output.json") as handle:
    output = json.load(handle)
  metadata = output["artifacts"]["examples"]["artifacts"][0]["metadata"]
  assert metadata["rows_read"] == events and metadata["rows_rejected"] == 0
  for split in ("Split-train", "Split-valid", "Split-eval"):
    assert os.listdir(f"{task_root}/examples/{split}")
  with open(f"{task_root}/examples/ingest_report.json") as handle:
    assert json.load(handle)["examples_total"] == events
