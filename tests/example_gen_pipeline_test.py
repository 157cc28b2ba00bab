"""ClickLogExampleGen inside a TFX LocalDagRunner pipeline (Beam DirectRunner, SQLite MLMD)."""

import glob
import json
import os

import pytest
from tfx import v1 as tfx
from tfx.orchestration import metadata
from tfx.orchestration.portable.mlmd import execution_lib

from components import events, example_io, synth
from components.example_gen import ClickLogExampleGen
from eta_ctr.config import EtaConfig, IngestConfig, SourceConfig

pytestmark = pytest.mark.e2e


def _run_pipeline(root, config):
  example_gen = ClickLogExampleGen(config=config)
  pipeline = tfx.dsl.Pipeline(
      pipeline_name="ingest_only", pipeline_root=str(root / "pipeline"),
      components=[example_gen], enable_cache=True,
      metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
          str(root / "metadata.sqlite")),
      beam_pipeline_args=["--direct_running_mode=in_memory"])
  tfx.orchestration.LocalDagRunner().run(pipeline)


def _examples_artifacts(root):
  config = metadata.sqlite_metadata_connection_config(str(root / "metadata.sqlite"))
  with metadata.Metadata(config) as store:
    return store.store.get_artifacts_by_type("Examples"), store.store.get_executions()


def test_example_gen_runs_in_local_dag_runner_and_caches(tmp_path):
  log_path = tmp_path / "data" / "log.csv"
  rows = synth.write(synth.SynthConfig(events=2000, mean_events_per_user=80, seed=9),
                     str(log_path))
  config = EtaConfig(source=SourceConfig(format="csv", path=str(log_path)),
                     ingest=IngestConfig(max_history=64))
  _run_pipeline(tmp_path, config)

  artifacts, executions = _examples_artifacts(tmp_path)
  assert len(artifacts) == 1
  artifact = artifacts[0]
  assert json.loads(artifact.properties["split_names"].string_value) == [
      "train", "valid", "eval"]
  assert artifact.custom_properties["rows_read"].int_value == rows
  assert artifact.custom_properties["rows_rejected"].int_value == 0
  with open(os.path.join(artifact.uri, "ingest_report.json")) as handle:
    report = json.load(handle)
  counted = {split: sum(1 for _ in example_io.read_records(artifact.uri, split))
             for split in events.SPLITS}
  assert counted == report["examples"]
  assert sum(counted.values()) == rows
  for ex in example_io.read_examples(artifact.uri, "eval"):
    assert all(t < ex["timestamp"][0] for t in ex["hist_timestamps"])
    assert len(ex["hist_item_ids"]) <= 64

  # Unchanged input: the second run reuses the cached artifact.
  _run_pipeline(tmp_path, config)
  artifacts, executions = _examples_artifacts(tmp_path)
  assert len(artifacts) == 1
  states = sorted(execution_lib.is_execution_successful(e) for e in executions)
  assert len(executions) == 2 and all(states)
  assert executions[-1].last_known_state == executions[-1].CACHED

  # A changed input file changes the fingerprint: a new artifact.
  with open(log_path, "a") as handle:
    handle.write("u_new,i1,c1,1700000000,1\n")
  _run_pipeline(tmp_path, config)
  artifacts, _ = _examples_artifacts(tmp_path)
  assert len(artifacts) == 2
  assert artifacts[-1].custom_properties["rows_read"].int_value == rows + 1


def test_eta_run_stops_in_the_ingest_when_the_eval_split_is_empty(tmp_path, capsys):
  """300 users with 2 events each: nothing in eval. The run stops in ClickLogExampleGen
  with the counts and the fixes; the report and the dead letters are kept."""
  from eta_ctr import cli
  from components.split_check_test import BAD_ROWS, write_small_log
  log_path = tmp_path / "clicks.csv"
  rows = write_small_log(log_path)
  root = tmp_path / "pipeline"
  assert cli.main(["run", "--data", str(log_path), "--pipeline-root", str(root),
                   "--serving-dir", str(tmp_path / "serving")]) == 1
  err = capsys.readouterr().err
  assert ("eta run FAILED in ClickLogExampleGen: SplitTooSmall: the eval split is empty: "
          "0 examples, train 600, valid 0.\nthe valid split is empty: 0 examples, eval 0, "
          "train 600.\nOf 300 users, 0 have fewer than 2 events, 300 have no event in eval "
          "and 0 none in train, 300 none in valid.\n") in err
  assert "--eval-cutoff TIME" in err and "a larger --eval-fraction" in err
  assert "--valid-fraction 0" in err  # both fixes in one message
  (kept,) = glob.glob(str(root / "ClickLogExampleGen" / "failed_ingest" / "*"))
  assert f"The ingest report and the dead letters are in {kept}" in err
  with open(os.path.join(kept, "ingest_report.json")) as handle:
    assert json.load(handle)["rows_read"] == rows
  dead = [line for f in glob.glob(os.path.join(kept, "dead_letter", "*.jsonl"))
          for line in open(f)]
  assert len(dead) == len(BAD_ROWS)
